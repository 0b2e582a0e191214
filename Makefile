# Two commands do all set-up:  `make reproduce` (every notebook, end to end, on the default cohort)
# and `make test` (ruff + pytest). Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
# A CPU wheel by default; for a CUDA build e.g. `make reproduce TORCH="torch==2.13.0 --index-url ..."`.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.ptacl-installed

.PHONY: setup reproduce test lint clean-outputs notebook-guard

setup: $(STAMP) notebook-guard

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# Output guard (.gitattributes: *.ipynb filter=nbstripout): git stores notebooks through nbstripout, so outputs
# saved by JupyterLab never reach a commit. Local git config of this clone only (no user config needed); skipped
# outside a git work tree. ptacl_core/tools/notebook_guard.py: nbstripout with cell ids kept, and the metadata JupyterLab
# rewrites on open (kernelspec display name, language_info details) pinned, so an opened notebook stays unmodified.
NBSTRIPOUT = "$(abspath $(BIN))/python" -m ptacl_core.tools.notebook_guard
notebook-guard:
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  git config filter.nbstripout.clean '$(NBSTRIPOUT)' && git config filter.nbstripout.smudge cat && \
	  git config filter.nbstripout.required true && git config diff.ipynb.textconv '$(NBSTRIPOUT)' || \
	  echo "notebook-guard: could not configure the nbstripout git filter (outputs are not stripped on commit)"; \
	fi

reproduce: setup
	$(BIN)/python -m ptacl_core run

test: setup lint
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check ptacl_core tests benchmarks examples

clean-outputs:
	rm -rf outputs figures/*.png figures/*.pdf
