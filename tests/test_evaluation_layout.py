"""The evaluation stage's homes: the endpoint plan's headline comparison reaches the written reading, the results
tables have one layout module, the retrieval directions one spelling, the folders one resolution, the t-interval
one function."""

import ast
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ptacl_core import paths
from ptacl_core.evaluation import tables as layout
from ptacl_core.evaluation.endpoints import EndpointPlan
from ptacl_core.evaluation.findings import heart_rate_methods, sham_methods
from ptacl_core.evaluation.inputs import EvaluationInputs, runs_for_cache
from ptacl_core.evaluation.report import reading, write_report
from ptacl_core.evaluation.statistics import t_interval
from ptacl_core.methods import label

sys.path.insert(0, str(Path(__file__).parent))
from test_report import _cohort, _tables  # noqa: E402

PACKAGE = Path(__file__).resolve().parent.parent / "ptacl_core"


def _renamed(tables, old: str, new: str):
    """The same tables with method ``old`` called ``new`` (as if another method had been trained)."""
    for name in ("probe", "probe_differences", "retrieval", "retrieval_differences"):
        frame = getattr(tables, name).copy()
        frame["method"] = frame.method.replace(old, new)
        if "baseline" in frame:
            frame["baseline"] = frame.baseline.replace(old, new)
        setattr(tables, name, frame)
    return tables


def _write_plan(folder: Path, method: str) -> Path:
    values = json.loads((paths.project_root() / "configs" / "endpoints.json").read_text())
    values["method"] = method
    values["variants"] = [v for v in values["variants"] if v != method]
    path = folder / "configs" / "endpoints.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values))
    return path


@pytest.fixture(scope="module")
def cross_tables():
    phenotypes, splits, ids, informative, noise = _cohort()
    return _renamed(_tables(informative, noise, phenotypes, splits, ids), "ptacl", "ptacl_cross")


def test_a_changed_endpoint_plan_changes_the_written_reading(cross_tables, tmp_path, monkeypatch):
    """configs/endpoints.json names ptacl_cross as the headline method: the default reading compares it."""
    _write_plan(tmp_path, "ptacl_cross")
    monkeypatch.setattr(paths, "project_root", lambda: tmp_path)  # EndpointPlan.load's default file
    assert EndpointPlan.load().method == "ptacl_cross"
    lines = reading(cross_tables)
    headline = next(line for line in lines if line.startswith("LVEF_pct (all training labels)"))
    assert f"for {label('ptacl_cross')} vs" in headline and f"for {label('global')}." in headline
    assert not any(line.startswith("No ") for line in lines)
    text = write_report(cross_tables, tmp_path / "out", {"cohort": "physiological"}).read_text()
    assert f"R² is above {label('global')}'s" in text and f"{label('ptacl_cross')}'s R² is above" in text
    payload = json.loads((tmp_path / "out/results.json").read_text())
    assert {f["difference"]["method"] for f in payload["findings"] if f["kind"] == "ProbeHeadline"} == {"ptacl_cross"}


def test_the_default_plan_reads_ptacl_against_global(cross_tables):
    """With the kit's configs/endpoints.json (PTACL vs global) these tables have no PTACL: nothing to compare."""
    assert reading(cross_tables) == [f"No {label('ptacl')} results: nothing to compare."]
    plan = EndpointPlan.load()
    assert heart_rate_methods(plan) == ("global", "ptacl", "ptacl_cross", "ptacl_sham")
    assert sham_methods(plan) == ["ptacl_sham"]


def test_results_json_carries_findings_with_numbers_and_verdicts(tmp_path):
    phenotypes, splits, ids, informative, noise = _cohort()
    tables = _tables(informative, noise, phenotypes, splits, ids)
    write_report(tables, tmp_path, {"subjects": 300})
    findings = json.loads((tmp_path / "results.json").read_text())["findings"]
    headline = [f for f in findings if f["kind"] == "ProbeHeadline"]
    assert [f["phenotype"] for f in headline] == ["LVEF_pct", "LVEDV_mL", "LVM_g"]
    row = tables.probe_differences.query("baseline == 'global' and phenotype == 'LVEF_pct' and fraction == 1.0").iloc[0]
    assert headline[0]["difference"]["value"] == pytest.approx(row.difference)
    assert headline[0]["difference"]["verdict"] == "better"


def test_the_table_layout_round_trips(tmp_path):
    frame = pd.DataFrame({"subject_id": ["=1+2", "007"], "value": [1.0, 2.0]})
    layout.write_table(frame, tmp_path / "tables", layout.PROBE_PREDICTIONS, formula_safe=True)
    back = layout.read_table(tmp_path / "tables", layout.PROBE_PREDICTIONS, ids=True)
    assert back.subject_id.tolist() == ["=1+2", "007"]
    assert layout.read_table(tmp_path, layout.HEART_RATE, required=False) is None
    with pytest.raises(FileNotFoundError, match="heart_rate_probe.csv"):
        layout.read_table(tmp_path, layout.HEART_RATE)
    assert layout.endpoints_name("probe") == "endpoints_probe.csv"
    with pytest.raises(ValueError, match="endpoint kind"):
        layout.endpoints_name("figures")
    assert layout.tables_dir(tmp_path) == tmp_path / "tables"


def _string_constants(path: Path) -> list[str]:
    return [node.value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


@pytest.mark.parametrize("literal", [*layout.DIRECTIONS, "probe_summary.csv", "retrieval_differences.csv",
                                     "02_phase_clock_margin.csv", "heart_rate_probe.csv"])
def test_table_names_and_directions_have_one_home(literal):
    """Spelled as a whole string constant only in evaluation/tables.py (titles may mention a direction)."""
    holders = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if literal in _string_constants(p)}
    assert holders == {"evaluation/tables.py"}


@pytest.mark.parametrize("notebook", ["03_linear_probing", "04_retrieval", "05_figures", "06_explore"])
def test_the_evaluation_notebooks_resolve_their_folders_through_evaluation_inputs(notebook):
    cells = json.loads((paths.notebooks_dir() / f"{notebook}.ipynb").read_text())["cells"]
    code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "EvaluationInputs.resolve(" in code
    assert "paths." not in code and "Path(" not in code and '"tables"' not in code and ".csv\"" not in code
    assert '"ptacl"' not in code and '"global"' not in code  # the headline comparison is the endpoint plan's


def test_evaluation_inputs_resolve_the_kit_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("PTACL_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("PTACL_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv("PTACL_OUTPUTS", str(tmp_path / "outputs"))
    inputs = EvaluationInputs.resolve(cohort_dir=tmp_path / "cohort", cache_dir=tmp_path / "cache")
    assert inputs.runs_dir == tmp_path / "runs" and inputs.figures_dir == tmp_path / "figures"
    assert inputs.embeddings_dir == tmp_path / "outputs" / "embeddings"
    assert inputs.tables_dir == tmp_path / "figures" / "tables"
    given = EvaluationInputs.resolve(tmp_path / "c", tmp_path / "k", "tiny", tmp_path / "r", tmp_path / "e", tmp_path / "f")
    assert (given.cohort_dir, given.cache_dir, given.runs_dir, given.embeddings_dir, given.figures_dir) == tuple(
        tmp_path / name for name in "ckref")


def test_runs_of_another_cache_are_left_out_with_a_note():
    class Run:
        def __init__(self, name, fingerprint):
            self.folder, self.data_fingerprint = Path(name), fingerprint

    class Cache:
        fingerprint = "a" * 40

    own, unknown, foreign = Run("own", "a" * 40), Run("old", None), Run("other", "b" * 40)
    kept, notes = runs_for_cache([own, unknown, foreign], Cache())
    assert kept == [own, unknown] and len(notes) == 1 and notes[0].startswith("other: trained on another cache")


@pytest.mark.parametrize("values", [[0.1, 0.3, 0.2], [1.0, 2.0], [0.5, 0.5, 0.7, 0.1, 0.0]])
def test_t_interval_is_the_textbook_one(values):
    n, mean, sd = len(values), np.mean(values), np.std(values, ddof=1)
    half = stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n)
    assert t_interval(values) == pytest.approx((mean - half, mean + half))
    assert all(np.isnan(t_interval([1.0])))


def test_no_t_quantile_outside_statistics():
    callers = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if ".ppf(" in p.read_text()}
    assert callers == {"evaluation/statistics.py"}
