"""The information audit: timing carries function within condition on the physiological cohort, nothing on
the null twin; the cross-validated R² against brute-force references."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold

from ptacl_core.synthetic import SynthConfig, generate_cohort
from ptacl_core.synthetic.audit import (
    ALPHAS,
    _design,
    audit_summary,
    cross_validated_r2,
    ecg_measurement_table,
    information_audit,
)


def test_design_matches_a_loop():
    rng = np.random.default_rng(0)
    features, conditions = rng.normal(size=(6, 2)), np.array(["a", "b", "a", "c", "b", "a"])
    levels = ["a", "b", "c"]
    design = _design(features, conditions, levels)
    for i in range(6):
        one_hot = [1.0 if conditions[i] == level else 0.0 for level in levels]
        expected = list(features[i]) + one_hot + [features[i, f] * one_hot[c] for f in range(2) for c in range(3)]
        assert np.allclose(design[i], expected)
    assert _design(np.zeros((6, 0)), conditions, levels).shape == (6, 3)


def test_within_condition_r2_against_a_loop_and_known_cases():
    rng = np.random.default_rng(1)
    conditions = np.repeat(["a", "b"], 200)
    x = rng.normal(size=(400, 1))
    offset = np.where(conditions == "a", 0.0, 10.0)
    y = offset + 2.0 * x[:, 0] + rng.normal(0.0, 1.0, 400)  # within-condition R² = 4 / 5
    scores = cross_validated_r2(x, y, conditions, n_splits=5, seed=0)
    assert scores["within condition"] == pytest.approx(0.8, abs=0.05)
    assert scores["a"] == pytest.approx(0.8, abs=0.08) and scores["overall"] > 0.95
    label_only = cross_validated_r2(np.zeros((400, 0)), y, conditions)
    assert abs(label_only["within condition"]) < 0.02 and label_only["overall"] > 0.8  # offset 10 vs total SD ~5.5
    noise = cross_validated_r2(rng.normal(size=(400, 3)), y, conditions)
    assert noise["within condition"] < 0.03
    # brute force: the pooled within-condition R² from out-of-fold predictions with explicit loops
    residual = baseline = 0.0
    for train, test in KFold(5, shuffle=True, random_state=0).split(x):
        mean, std = x[train].mean(0), x[train].std(0) + 1e-9
        model = RidgeCV(alphas=np.asarray(ALPHAS)).fit(_design((x[train] - mean) / std, conditions[train], ["a", "b"]), y[train])
        predicted = model.predict(_design((x[test] - mean) / std, conditions[test], ["a", "b"]))
        for j, i in enumerate(test):
            mean_c = np.mean([y[k] for k in train if conditions[k] == conditions[i]])
            residual += (y[i] - predicted[j]) ** 2
            baseline += (y[i] - mean_c) ** 2
    assert scores["within condition"] == pytest.approx(1 - residual / baseline, rel=1e-9)


@pytest.fixture(scope="module")
def twin_cohorts(tmp_path_factory):
    folders = {}
    for coupling in ("physiological", "none"):
        folder = tmp_path_factory.mktemp(f"audit_{coupling}")
        generate_cohort(folder, 360, seed=11, config=replace(SynthConfig(), coupling=coupling), workers=2, progress=False)
        folders[coupling] = folder
    return folders


@pytest.mark.slow
def test_timing_adds_information_within_condition_only_on_the_physiological_cohort(twin_cohorts):
    gains = {coupling: audit_summary(information_audit(folder))["timing adds"] for coupling, folder in twin_cohorts.items()}
    physiological, null = gains["physiological"], gains["none"]
    assert physiological["LVEF_pct"] > 0.1 and physiological["LV_atrial_fraction_pct"] > 0.1
    assert physiological["LV_time_to_ES_ms"] > 0.05
    assert (null < 0.03).all(), null[null >= 0.03]
    # the twins share every heart: the same phenotypes, so the difference is the ECG's timing alone
    a = pd.read_csv(twin_cohorts["physiological"] / "phenotypes.csv")
    b = pd.read_csv(twin_cohorts["none"] / "phenotypes.csv")
    assert a.drop(columns=["PR_ms", "QRS_ms", "QT_ms"]).equals(b.drop(columns=["PR_ms", "QRS_ms", "QT_ms"]))


@pytest.mark.slow
def test_ecg_measurements_feed_the_audit(twin_cohorts):
    folder = twin_cohorts["physiological"]
    ids = pd.read_csv(folder / "manifest.csv", dtype={"subject_id": str}).subject_id.head(40).tolist()
    measured = ecg_measurement_table(folder, ids)
    assert list(measured.index) == ids and {"HR", "QRS", "QT", "amp_V5"} <= set(measured.columns)
    assert measured.HR.notna().all() and measured.QT.between(250, 600).mean() > 0.9
    audit = information_audit(folder, phenotypes=("LVEF_pct",), measurements=measured)
    assert set(audit.features) == {"condition", "ECG measurements", "latents without timing", "latents with timing"}
