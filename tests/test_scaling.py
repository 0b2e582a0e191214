"""The scaling profile: its plan (folders, order, cohorts grown from the previous N), the table notebook 07 reads
back (against a brute-force recomputation on fabricated tables), its figure, and the time per point."""

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from ptacl_core.evaluation import tables as layout
from ptacl_core.evaluation.endpoints import Endpoint, EndpointPlan, endpoint_rows, save_samples
from ptacl_core.evaluation.scaling import collect, estimate_seconds, scaling_reading, timings
from ptacl_core.plotting.checks import figure_problems
from ptacl_core.plotting.scaling import plot_scaling
from ptacl_core.tools.runner import (
    PROFILES,
    TWIN_LABEL,
    ScalingPoint,
    list_notebooks,
    parse_sizes,
    scaling_steps,
)

FAMILY = ("LVEF_pct", "LVEDV_mL")
PLAN = EndpointPlan(endpoints=(Endpoint("family R²", "primary", "probe", "r2", FAMILY),
                               Endpoint("ECG→ECG precision@10", "secondary", "retrieval", "precision@10",
                                        direction="ECG→ECG")))
REFERENCES = ("median_beat", "condition_label")


@pytest.fixture
def roots(tmp_path, monkeypatch):
    for variable, folder in (("PTACL_DATA", "data"), ("PTACL_RUNS", "runs"), ("PTACL_FIGURES", "figures")):
        monkeypatch.setenv(variable, str(tmp_path / folder))
    return tmp_path


@pytest.mark.parametrize("value, sizes", [("1000,2000", (1000, 2000)), ("4000, 1000", (1000, 4000)), (2000, (2000,)),
                                          ([30, 20], (20, 30))])
def test_sizes_are_read_in_ascending_order(value, sizes):
    assert parse_sizes(value) == sizes


@pytest.mark.parametrize("bad", ["1000,abc", "1000,1000", "10", "", "-5", "1e3", 1000.0, None])
def test_bad_sizes_are_refused(bad):
    with pytest.raises(ValueError, match="scaling_sizes"):
        parse_sizes(bad)


def test_the_plan_grows_each_cohort_from_the_previous_one_and_draws_the_figure_last(roots):
    notebooks = [Path(f"notebooks/{name}.ipynb") for name in ("00_cohort", "01_preprocessing", "02_pretraining",
                                                               "03_linear_probing", "04_retrieval", "07_scaling")]
    steps = scaling_steps(notebooks, roots / "out", {**PROFILES["scaling"], "scaling_sizes": "2000,1000"})
    assert len(steps) == 2 * 9 + 1  # per N: 00, then 01-04 on the twin, then 01-04 on the cohort
    for block, (n, previous) in enumerate(((1000, None), (2000, 1000))):
        point, chunk = ScalingPoint(n), steps[9 * block: 9 * block + 9]
        assert [s.notebook.name[:2] for s in chunk] == ["00", "01", "02", "03", "04", "01", "02", "03", "04"]
        assert [s.label for s in chunk] == [""] + [TWIN_LABEL] * 4 + [""] * 4
        first, twin, main = chunk[0].parameters, chunk[1].parameters, chunk[5].parameters
        assert first["n_subjects"] == n and first["cohort_dir"] == str(roots / f"data/scaling/n{n}/synthetic")
        assert first["null_dir"] == str(roots / f"data/scaling/n{n}/synthetic_null")
        assert first["reuse_dir"] == (str(ScalingPoint(previous).cohort_dir) if previous else None)
        assert twin["cohort_dir"] == first["null_dir"] and twin["cache_dir"] == str(point.cache_dir) + "_null"
        assert twin["runs_dir"] == str(roots / f"runs/scaling/n{n}/null_twin")
        assert main["figures_dir"] == str(roots / f"figures/scaling/n{n}")
        assert main["twin_figures_dir"] == str(roots / f"figures/scaling/n{n}/null_twin")
        assert chunk[0].output_dir == roots / f"out/scaling/n{n}" and chunk[1].output_dir == roots / f"out/scaling/n{n}/null_twin"
        assert main["methods"] == "global,ptacl" and main["seeds"] == 3 and twin["variants"] == ""
    last = steps[-1]
    assert last.notebook.name == "07_scaling.ipynb" and last.parameters["executed_dir"] == str(roots / "out/scaling")


def test_the_scaling_notebook_runs_only_when_asked_for():
    assert "07_scaling.ipynb" not in [p.name for p in list_notebooks()]
    assert [p.name for p in list_notebooks(only=["07"])] == ["07_scaling.ipynb"]


def _fabricate(tables: Path, rng, gain: float, cohort: str, seeds: int = 3, resamples: int = 50) -> dict:
    """A point's tables as notebooks 03 and 04 write them: probe_per_seed rows of the methods and the reference
    rows, the endpoint samples, and the endpoint rows. Returns the samples {(endpoint, method): (points, samples)}."""
    samples, rows = {}, []
    for endpoint in PLAN.endpoints:
        for method, shift in (("ptacl", gain), ("global", 0.0)):
            draws = rng.normal(0.3 + shift, 0.05, size=(seeds, resamples))
            samples[(endpoint.name, method)] = (draws.mean(1) + rng.normal(0, 0.01, seeds), draws)
    for reference in REFERENCES:
        for phenotype in FAMILY:
            rows.append({"method": reference, "seed": 0, "fraction": 1.0, "phenotype": phenotype, "r2": rng.uniform(-0.5, 0.8)})
    for method in ("ptacl", "global"):  # methods at two fractions: only the plan's fraction counts
        for seed in range(seeds):
            for phenotype in FAMILY:
                for fraction in (0.1, 1.0):
                    rows.append({"method": method, "seed": seed, "fraction": fraction, "phenotype": phenotype,
                                 "r2": rng.uniform(0, 0.5)})
    rows.append({"method": "ecg_measures", "seed": 0, "fraction": 1.0, "phenotype": FAMILY[0], "r2": 0.9})  # lacks one
    layout.write_table(pd.DataFrame(rows), tables, layout.PROBE_PER_SEED)

    def samples_of(endpoint, method):
        return samples.get((endpoint.name, method))
    for kind in layout.ENDPOINT_KINDS:
        save_samples(tables / layout.endpoint_samples_name(kind), PLAN, kind, samples_of)
        layout.write_table(endpoint_rows(PLAN, kind, samples_of, cohort), tables, layout.endpoints_name(kind))
    return samples


def test_the_table_equals_a_brute_force_recomputation(roots):
    rng = np.random.default_rng(3)
    fabricated = {}
    for n, gain in ((1000, 0.0), (2000, 0.1)):
        cohort_tables = layout.tables_dir(ScalingPoint(n).figures_dir)
        twin_tables = layout.tables_dir(ScalingPoint(n).figures_dir / "null_twin")
        fabricated[n] = (_fabricate(cohort_tables, rng, gain, "physiological"), _fabricate(twin_tables, rng, 0.0, TWIN_LABEL))
    table = collect([1000, 2000, 8000], PLAN)  # 8000 was not run: left out
    assert sorted(table.n.unique()) == [1000, 2000]
    for n, (cohort, twin) in fabricated.items():
        at = table[table.n == n].set_index(["cohort", "endpoint", "row"])
        for label, samples in (("physiological", cohort), (TWIN_LABEL, twin)):
            for (endpoint, method), (points, _) in samples.items():
                assert at.loc[(label, endpoint, method), "value"] == pytest.approx(np.mean(points))
                low, high = at.loc[(label, endpoint, method), ["ci_low", "ci_high"]]
                assert low < np.mean(points) < high
            for endpoint in PLAN.endpoints:
                difference = np.mean(samples[(endpoint.name, "ptacl")][0]) - np.mean(samples[(endpoint.name, "global")][0])
                assert at.loc[(label, endpoint.name, "ptacl − global"), "value"] == pytest.approx(difference)
                assert at.loc[(label, endpoint.name, "ptacl − global"), "kind"] == "difference"
        for endpoint in PLAN.endpoints:
            contrast = sum(sign * np.mean(s[(endpoint.name, m)][0]) for s, m, sign in
                           ((cohort, "ptacl", 1), (cohort, "global", -1), (twin, "ptacl", -1), (twin, "global", 1)))
            row = at.loc[("physiological − null twin", endpoint.name, "ptacl − global")]
            assert row.value == pytest.approx(contrast) and row.kind == "contrast" and np.isfinite(row.p_adjusted)
        # Holm across the endpoints, one family per cohort (and the contrast its own), recomputed by hand
        raw = {label: pd.concat([pd.read_csv(folder / layout.endpoints_name(kind)) for kind in layout.ENDPOINT_KINDS])
               for label, folder in (("physiological", layout.tables_dir(ScalingPoint(n).figures_dir)),
                                     (TWIN_LABEL, layout.tables_dir(ScalingPoint(n).figures_dir / "null_twin")))}
        for label, rows in raw.items():
            p = rows.set_index("endpoint").p
            order = np.argsort(p.to_numpy())
            adjusted = np.maximum.accumulate(np.minimum(1.0, (len(p) - np.arange(len(p))) * p.to_numpy()[order]))
            for endpoint, expected in zip(p.index[order], adjusted, strict=True):
                assert at.loc[(label, endpoint, "ptacl − global"), "p_adjusted"] == pytest.approx(expected)
        per_seed = pd.read_csv(layout.tables_dir(ScalingPoint(n).figures_dir) / layout.PROBE_PER_SEED)
        for reference in REFERENCES:
            expected = np.mean([per_seed[(per_seed.method == reference) & (per_seed.phenotype == p)].r2.iloc[0] for p in FAMILY])
            assert at.loc[("physiological", "family R²", reference), "value"] == pytest.approx(expected)
        assert ("physiological", "family R²", "ecg_measures") not in at.index  # a reference row lacking a phenotype
        assert ("physiological", "ECG→ECG precision@10", "median_beat") not in at.index  # references are not searched
    reading = scaling_reading(table, PLAN)
    row = table[(table.n == 2000) & (table.cohort == "physiological") & (table.kind == "difference")
                & (table.endpoint == "family R²")].iloc[0]
    assert f"{row.value:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}] at N = 2,000" in reading
    figure = plot_scaling(table, [e.name for e in PLAN.endpoints])
    assert figure_problems(figure) == []
    assert len(figure.axes) == 2 * len(PLAN.endpoints)
    plt.close(figure)


def test_the_scaling_plan_refuses_what_it_would_silently_ignore(roots):
    notebooks = [Path("notebooks/00_cohort.ipynb"), Path("notebooks/07_scaling.ipynb")]
    for name in ("runs_dir", "cohort_dir", "n_subjects", "figures_dir"):
        with pytest.raises(ValueError, match="sets .* itself"):
            scaling_steps(notebooks, roots, {"scaling_sizes": "1000", name: "x"})
    with pytest.raises(ValueError, match="fast run caps"):
        scaling_steps(notebooks, roots, {"scaling_sizes": "1000,2000", "fast": True})
    assert scaling_steps(notebooks, roots, {"scaling_sizes": "30,40", "fast": True})  # sizes a fast cohort has
    with pytest.raises(ValueError, match="scaling_sizes"):
        scaling_steps(notebooks, roots, {"scaling_sizes": None})


def test_no_point_with_results_is_a_clear_error(roots):
    with pytest.raises(FileNotFoundError, match="--profile scaling"):
        collect([1000], PLAN)


def test_the_time_per_point_sums_papermill_durations_and_a_line_estimates_the_rest(tmp_path):
    for n in (1000, 2000, 4000):
        for index, name in enumerate(("00_cohort", "01_preprocessing", "null_twin/01_preprocessing")):
            path = tmp_path / f"n{n}" / f"{name}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            seconds = 10 + 0.01 * n * (index + 1)  # the point's total: 30 + 0.06 n
            path.write_text(json.dumps({"metadata": {"papermill": {"duration": seconds}}, "cells": []}))
    (tmp_path / "n4000/02_pretraining.ipynb").write_text(json.dumps({"metadata": {"papermill": {"duration": None}}}))
    measured = timings([1000, 2000, 4000, 8000], tmp_path)
    assert measured.n.tolist() == [1000, 2000, 4000]
    assert measured.seconds.tolist() == pytest.approx([30 + 0.06 * n for n in (1000, 2000, 4000)])
    assert measured.unfinished.tolist() == [0, 0, 1]
    assert estimate_seconds(measured, 8000) == pytest.approx(30 + 0.06 * 8000)  # from the two finished points
    assert np.isnan(estimate_seconds(measured[measured.n == 1000], 8000))
