"""Committed notebooks carry no outputs; the runner executes them in order and names failures."""

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from ptacl_core import paths
from ptacl_core.tools.runner import NotebookFailed, list_notebooks, parse_value, run_notebooks

NOTEBOOKS = list_notebooks()
ALL_NOTEBOOKS = sorted(paths.notebooks_dir().glob("[0-9][0-9]_*.ipynb"))  # with the interactive 06


def test_there_are_numbered_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].name.startswith("00_")


def as_git_stores_it(notebook) -> dict:
    """The working-copy notebook stripped in memory exactly as the output guard's git filter strips it on
    ``git add`` (``ptacl_core.tools.notebook_guard``, what ``make notebook-guard`` configures)."""
    from ptacl_core.tools.notebook_guard import strip_text

    return json.loads(strip_text(notebook.read_text()))


@pytest.mark.parametrize("notebook", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_has_no_outputs_and_a_parameters_cell(notebook):
    """Outputs JupyterLab autosaves into the working copy are no failure (the guard strips them on commit); a
    working copy that lost its parameters tag or ``fast`` is, committed or not."""
    stored = [cell for cell in as_git_stores_it(notebook)["cells"] if cell["cell_type"] == "code"]
    assert all(not cell.get("outputs") and cell.get("execution_count") is None for cell in stored)
    code = [cell for cell in json.loads(notebook.read_text())["cells"] if cell["cell_type"] == "code"]
    parameters = [cell for cell in code if "parameters" in cell.get("metadata", {}).get("tags", [])]
    assert parameters, f"{notebook.name}: no cell tagged parameters (papermill)"
    assert any("fast" in "".join(cell["source"]) for cell in parameters), f"{notebook.name}: no fast parameter"


def test_only_selects_notebooks_and_rejects_unknown_numbers():
    assert [p.name[:2] for p in list_notebooks(only=["0"])] == ["00"]
    with pytest.raises(ValueError, match="no notebook numbered"):
        list_notebooks(only=["97"])


def test_parameter_values_are_typed():
    assert parse_value("3") == 3 and parse_value("0.5") == 0.5 and parse_value("True") is True
    assert parse_value("none") is None and parse_value("data/x") == "data/x"
    assert parse_value("007") == "007" and parse_value("nan") == "nan" and parse_value("0") == 0


def _notebook(folder, name, sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("fast = False", metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(source) for source in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / name)
    return folder / name


@pytest.mark.slow
def test_runner_stops_at_the_first_failure_and_names_notebook_and_cell(tmp_path):
    first = _notebook(tmp_path, "00_ok.ipynb", ["x = 1"])
    second = _notebook(tmp_path, "01_broken.ipynb", ["y = 2", "raise RuntimeError('bad cohort path')"])
    third = _notebook(tmp_path, "02_never.ipynb", ["z = 3"])
    with pytest.raises(NotebookFailed, match=r"01_broken.ipynb failed at cell 2: RuntimeError: bad cohort path") as error:
        run_notebooks([first, second, third], tmp_path / "out", progress_bar=False, log=lambda *a, **k: None)
    assert error.value.executed.exists()
    assert not (tmp_path / "out/02_never.ipynb").exists()


@pytest.mark.slow
def test_all_notebooks_run_in_fast_mode(tmp_path):
    """The whole sequence through the command-line runner, as `make reproduce` runs it, with tiny parameters."""
    command = [sys.executable, "-m", "ptacl_core", "run", "--fast", "--no-progress", "--output-dir", str(tmp_path / "out"),
               "-p", "cohort_dir", str(tmp_path / "cohort"), "-p", "figures_dir", str(tmp_path / "figures"),
               "-p", "cache_dir", str(tmp_path / "cache"), "-p", "runs_dir", str(tmp_path / "runs"),
               "-p", "embeddings_dir", str(tmp_path / "embeddings")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=paths.project_root())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for notebook in NOTEBOOKS:
        assert (tmp_path / "out" / notebook.name).exists()
        assert f"{notebook.name} done in" in result.stdout
    assert (tmp_path / "figures/00_example_cine.png").exists()
    assert (tmp_path / "cohort/manifest.csv").exists()
    assert (tmp_path / "cache/index.csv").exists() and (tmp_path / "figures/01_cine_crops.png").exists()
    assert (tmp_path / "figures/02_phase_similarity.png").exists() and (tmp_path / "figures/tables/02_probe_r2.csv").exists()
    assert (tmp_path / "runs/ptacl_tiny_seed0_fast/checkpoints/last.pt").exists()
    for method in ("ptacl_cross", "ptacl_sham", "supervised"):  # the variants, the sham arm and the baseline
        assert (tmp_path / f"runs/{method}_tiny_seed0_fast/checkpoints/last.pt").exists()
    assert not (tmp_path / "runs/null_twin/ptacl_sham_tiny_seed0_fast").exists()  # the twin: headline comparison only
    assert (tmp_path / "figures/02_learning_curves.png").exists()
    margins = pd.read_csv(tmp_path / "figures/tables/02_phase_clock_margin.csv")
    assert {"ptacl", "global", "ptacl_cross", "ptacl_sham"} <= set(margins.method)
    tables = tmp_path / "figures/tables"
    for name in ("probe_summary", "probe_differences", "probe_predictions", "retrieval_summary", "retrieval_differences"):
        assert (tables / f"{name}.csv").exists(), name
    for figure in ("probe_r2", "predicted_vs_true", "retrieval_panel", "phase_alignment", "embedding_map", "label_efficiency"):
        assert (tmp_path / f"figures/05_{figure}.png").exists() and (tmp_path / f"figures/05_{figure}.pdf").exists(), figure
    report = (tmp_path / "figures/results.md").read_text()
    assert "## Reading" in report and "PTACL" in report and (tmp_path / "figures/results.json").exists()
    # the null twin went through the same notebooks, and the report holds both cohorts' endpoints
    assert (tmp_path / "cohort_null/cohort.json").exists() and "null twin) done in" in result.stdout
    assert (tmp_path / "runs/null_twin/ptacl_tiny_seed0_fast/checkpoints/last.pt").exists()
    assert (tmp_path / "figures/null_twin/results.md").exists()
    endpoints = json.loads((tmp_path / "figures/results.json").read_text())["endpoints"]
    assert {e["cohort"] for e in endpoints} == {"physiological", "null twin", "physiological − null twin"}
    assert {e["method"] for e in endpoints if e["cohort"] == "physiological"} == {"ptacl", "ptacl_cross", "ptacl_sham"}
    assert {e["method"] for e in endpoints if e["cohort"] == "null twin"} == {"ptacl"}
    payload = json.loads((tmp_path / "figures/results.json").read_text())
    assert set(payload["phase_clock_margins"]) == {"physiological", "null twin"} and payload["sham"]
    assert set(payload["minimal_detectable_difference"]) >= {"physiological", "null twin"}
    assert "## What reproduces" in report and "Phase-clock margins, physiological cohort" in report
    heart_rate = pd.read_csv(tmp_path / "figures/tables/heart_rate_probe.csv")
    assert {"global", "ptacl"} <= set(heart_rate.method) and "heart rate from the ECG embedding" in report
    for endpoint in endpoints:
        assert {"cohort", "endpoint", "comparison", "difference", "ci_low", "ci_high", "p_adjusted", "verdict", "criterion", "mdd"} <= set(endpoint)
    assert "## Pre-registered endpoints" in report and "R² within condition" in report and "null twin" in report
    assert (tmp_path / "figures/tables/00_information_audit_physiological.csv").exists()
    assert list((tmp_path / "embeddings").glob("*.npz"))  # the embedding cache went where it was told
    for notebook in NOTEBOOKS:
        _assert_figures_inline(tmp_path / "out" / notebook.name)
        _assert_figures_inline(tmp_path / "out" / "null_twin" / notebook.name, required=False)


def test_the_scaling_profile_runs_in_fast_mode(tmp_path):
    """``--profile scaling`` at two small N through the command-line runner: both points on both cohorts, the
    larger cohort grown from the smaller one's files, and notebook 07's figure, table and times."""
    import os

    roots = {"PTACL_DATA": "data", "PTACL_RUNS": "runs", "PTACL_FIGURES": "figures", "PTACL_OUTPUTS": "outputs"}
    environment = {**os.environ, **{variable: str(tmp_path / folder) for variable, folder in roots.items()}}
    command = [sys.executable, "-m", "ptacl_core", "run", "--profile", "scaling", "--fast", "--no-progress",
               "--output-dir", str(tmp_path / "out"), "-p", "scaling_sizes", "30,40"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=paths.project_root(), env=environment)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "[19/19] 07_scaling.ipynb done in" in result.stdout  # 2 x (00 + 01-04 on each cohort), then 07
    for n in (30, 40):
        for folder in ("", "null_twin/"):
            assert (tmp_path / f"figures/scaling/n{n}/{folder}tables/probe_per_seed.csv").exists(), (n, folder)
            assert (tmp_path / f"out/scaling/n{n}/{folder}03_linear_probing.ipynb").exists()
    small, large = (tmp_path / f"data/scaling/n{n}/synthetic/ecg/SYN000029.dat" for n in (30, 40))
    assert small.stat().st_ino == large.stat().st_ino  # linked, not generated again
    assert (tmp_path / "data/scaling/n40/synthetic/ecg/SYN000039.dat").exists()
    assert len(pd.read_csv(tmp_path / "data/scaling/n40/synthetic_null/manifest.csv")) == 40
    table = pd.read_csv(tmp_path / "figures/scaling/tables/scaling.csv")
    assert set(table.n) == {30, 40} and {"method", "reference", "difference", "contrast"} <= set(table.kind)
    timings = pd.read_csv(tmp_path / "figures/scaling/tables/scaling_timings.csv")
    assert timings.n.tolist() == [30, 40] and (timings.notebooks == 9).all() and (timings.seconds > 0).all()
    assert (tmp_path / "figures/scaling/07_scaling.png").exists() and (tmp_path / "figures/scaling/07_scaling.pdf").exists()
    _assert_figures_inline(tmp_path / "out/07_scaling.ipynb")


def test_the_encoders_profile_runs_in_fast_mode(tmp_path):
    """``--profile encoders``: one cohort and cache, the ViT and the ResNet trained and evaluated in their own
    folders, the choice made by notebook 08 from the validation probes."""
    command = [sys.executable, "-m", "ptacl_core", "run", "--profile", "encoders", "--fast", "--no-progress",
               "--output-dir", str(tmp_path / "out"), "-p", "cohort_dir", str(tmp_path / "cohort"),
               "-p", "cache_dir", str(tmp_path / "cache"), "-p", "runs_dir", str(tmp_path / "runs"),
               "-p", "embeddings_dir", str(tmp_path / "embeddings"), "-p", "figures_dir", str(tmp_path / "figures")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=paths.project_root())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "[9/9] 08_encoders.ipynb done in" in result.stdout and not (tmp_path / "cohort_null").exists()
    for preset in ("tiny", "tiny_resnet"):
        assert (tmp_path / f"runs/ptacl_{preset}_seed0_fast/checkpoints/last.pt").exists(), preset
        validation = pd.read_csv(tmp_path / f"figures/encoders/{preset}/tables/probe_validation.csv")
        assert {"ptacl", "global"} <= set(validation.method) and (validation.split == "val").all()
    table = pd.read_csv(tmp_path / "figures/encoders/tables/encoder_choice.csv")
    assert set(table.preset) == {"tiny", "tiny_resnet"} and table[table.chosen].preset.nunique() == 1
    assert set(table.split) == {"val", "test"}
    executed = json.loads((tmp_path / "out/08_encoders.ipynb").read_text())
    assert any("Chosen on validation" in "".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
    assert (tmp_path / "figures/encoders/08_encoder_choice.png").exists()
    _assert_figures_inline(tmp_path / "out/08_encoders.ipynb")


MAX_WIDGET_OUTPUTS = 4  # progress bars: one per long loop, never one per epoch or run


def _assert_figures_inline(executed: Path, required: bool = True) -> None:
    """Every figure cell of an executed notebook shows its figures (one PNG output per ``show_figure`` call), no
    cell prints the paths of a saved figure, and progress bars stay a handful."""
    if not executed.exists():
        assert not required, executed
        return
    cells = json.loads(executed.read_text())["cells"]
    widgets = 0
    for cell in (c for c in cells if c["cell_type"] == "code"):
        source = "".join(cell["source"])
        outputs = cell.get("outputs", [])
        images = sum("image/png" in o.get("data", {}) for o in outputs)
        widgets += sum("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
        calls = len(re.findall(r"^\s*plotting\.show_figure\(", source, flags=re.M))
        assert images >= calls, f"{executed.name}: a figure cell shows {images} of its {calls} figure(s):\n{source[:300]}"
        assert "save_figure(" not in source, f"{executed.name}: a figure saved but not shown:\n{source[:300]}"
        assert not any("PosixPath(" in "".join(o.get("data", {}).get("text/plain", "")) for o in outputs), executed.name
        texts = "".join("".join(o.get("text", "")) for o in outputs)
        assert "breaks the kit's figure standard" not in texts, f"{executed.name}: {texts[:1500]}"
    assert widgets <= MAX_WIDGET_OUTPUTS, f"{executed.name}: {widgets} widget outputs"


def test_unknown_parameter_is_refused_before_running(tmp_path):
    with pytest.raises(ValueError, match="n_subjectz"):
        run_notebooks(NOTEBOOKS, tmp_path, parameters={"n_subjectz": 3}, log=lambda *a, **k: None)


def test_profiles_are_declared_notebook_parameters():
    import papermill

    from ptacl_core.tools.runner import PROFILES, profile_parameters

    every = sorted(paths.notebooks_dir().glob("[0-9][0-9]_*.ipynb"))  # the scaling notebook 07 declares its sizes
    declared = set().union(*(papermill.inspect_notebook(str(n)) for n in every))
    for name in PROFILES:
        assert set(profile_parameters(name)) <= declared, name
    assert profile_parameters("full")["epochs"] > 12 and profile_parameters("paper")["preset"] == "paper"
    with pytest.raises(ValueError, match="unknown profile"):
        profile_parameters("huge")


def test_the_twin_pass_gets_its_own_folders(tmp_path):
    from ptacl_core.tools.runner import TWIN_LABEL, plan_steps, twin_parameters

    twin = twin_parameters({"cohort_dir": "/x/cohort", "runs_dir": "/x/runs", "figures_dir": "/x/fig", "seeds": 5})
    assert twin["cohort_dir"] == "/x/cohort_null" and twin["runs_dir"] == "/x/runs/null_twin"
    assert twin["figures_dir"] == "/x/fig/null_twin" and twin["cohort_label"] == TWIN_LABEL and twin["seeds"] == 5
    assert twin["variants"] == "" and twin["baselines"] == ""  # the headline comparison only, with the cohort's seeds
    steps = plan_steps(NOTEBOOKS, tmp_path, {"cohort_dir": "/x/cohort"})
    names = [(s.notebook.name[:2], s.label) for s in steps]
    assert names[0] == ("00", "") and names[1] == ("01", TWIN_LABEL) and names[-1] == ("05", "")
    assert steps[-1].parameters["twin_figures_dir"].endswith("null_twin")
    assert [s.label for s in plan_steps(NOTEBOOKS, tmp_path, {}, twin=False)] == [""] * len(NOTEBOOKS)


@pytest.mark.slow
def test_a_missing_twin_is_skipped_with_a_note(tmp_path):
    notebook = _notebook(tmp_path, "03_one.ipynb", ["x = 1"])
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[0].source = "fast = False\ncohort_dir = None\nrun_dir = None"
    nbformat.write(nb, notebook)
    lines = []
    runs = run_notebooks([notebook], tmp_path / "out", {"cohort_dir": str(tmp_path / "cohort")}, twin=True, progress_bar=False,
                         log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    assert len(runs) == 1 and any("no null twin" in line for line in lines)


def test_each_interpreter_gets_its_own_kernel_spec(monkeypatch):
    """Two checkouts running notebooks at once (e.g. `make reproduce` and `make test`) must not overwrite each
    other's kernel spec: a notebook would run with the other checkout's interpreter and package."""
    from ptacl_core.tools import runner

    mine = runner._kernel_spec_dir()
    assert json.loads((mine / "kernels/python3/kernel.json").read_text())["argv"][0] == sys.executable
    monkeypatch.setattr(sys, "executable", "/elsewhere/.venv/bin/python")
    other = runner._kernel_spec_dir()
    assert other != mine and json.loads((mine / "kernels/python3/kernel.json").read_text())["argv"][0] != "/elsewhere/.venv/bin/python"
