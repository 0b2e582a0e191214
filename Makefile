# Two commands do all set-up:  `make reproduce` (every notebook, end to end, on the default cohort)
# and `make test` (ruff + pytest). Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
# A CPU wheel by default; for a CUDA build e.g. `make reproduce TORCH="torch==2.13.0 --index-url ..."`.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.ptacl-installed

.PHONY: setup reproduce test lint clean-outputs

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

reproduce: setup
	$(BIN)/python -m ptacl_core run

test: setup lint
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check ptacl_core tests benchmarks

clean-outputs:
	rm -rf outputs figures/*.png figures/*.pdf
