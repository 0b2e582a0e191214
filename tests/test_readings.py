"""The readings printed under each figure: every number they state is recomputed here by brute force."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import r2_score

from ptacl_core.evaluation import readings


def test_ecg_reading_states_the_heart_rate_of_the_median_rr():
    fs = 500.0
    rpeaks = np.array([100, 560, 1040, 1500, 1990])  # RR 460, 480, 460, 490 samples
    text = readings.ecg_reading(rpeaks, fs, 5000)
    median_rr_ms = np.median(np.diff(rpeaks)) / fs * 1000
    assert f"median RR {median_rr_ms:.0f} ms" in text
    assert f"{60000 / median_rr_ms:.0f} bpm" in text and "5 R peaks in 10 s" in text
    assert "too few" in readings.ecg_reading(np.array([3]), fs, 5000)


def test_cine_reading_matches_the_volume_curve():
    volume = np.array([150.0, 140, 90, 60, 70, 120, 148])
    text = readings.cine_reading(volume, 20.0)
    assert "150 mL at end-diastole" in text and "60 mL at end-systole" in text and "frame 3 of 7" in text
    assert "60 ms after" in text and f"{100 * 90 / 150:.0f} %" in text


def test_conditions_reading_names_the_largest_departures():
    rng = np.random.default_rng(0)
    normal = pd.DataFrame({"condition": "normal", "LVEDV_mL": rng.normal(150, 20, 50), "LVEF_pct": rng.normal(60, 5, 50),
                           "QRS_ms": rng.normal(90, 10, 50)})
    dcm = pd.DataFrame({"condition": "dilated_cardiomyopathy", "LVEDV_mL": rng.normal(300, 20, 20),
                        "LVEF_pct": rng.normal(59, 5, 20), "QRS_ms": rng.normal(90, 10, 20)})
    cohort = pd.concat([normal, dcm], ignore_index=True)
    text = readings.conditions_reading(cohort, ["LVEDV_mL", "LVEF_pct", "QRS_ms"], top=1)
    shift = (dcm.LVEDV_mL.median() - normal.LVEDV_mL.median()) / normal.LVEDV_mL.std()
    assert "dilated cardiomyopathy (n = 20): LVEDV" in text and f"{shift:+.1f} SD" in text
    assert "LVEF" not in text.split("dilated cardiomyopathy")[1]  # only the top one
    assert "No 'normal'" in readings.conditions_reading(dcm, ["LVEDV_mL"])


def test_neighbour_agreement_matches_a_loop():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 6))
    conditions = rng.choice(["a", "b", "c"], size=40)
    k = 5
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    agree = []
    for i in range(len(x)):
        scores = [(unit[i] @ unit[j], j) for j in range(len(x)) if j != i]
        nearest = [j for _, j in sorted(scores, reverse=True)[:k]]
        agree += [conditions[j] == conditions[i] for j in nearest]
    assert readings.neighbour_agreement(x, conditions, k) == pytest.approx(np.mean(agree))


def test_embedding_map_reading_gives_chance_of_the_condition_mix():
    conditions = np.array(["a"] * 30 + ["b"] * 10)
    x = np.random.default_rng(2).normal(size=(40, 4))
    text = readings.embedding_map_reading({"random": x}, conditions, k=3)
    assert f"chance for this condition mix: {0.75 ** 2 + 0.25 ** 2:.0%}" in text
    assert f"random init {readings.neighbour_agreement(x, conditions, 3):.0%}" in text


def test_predicted_reading_r2_mae_and_worst_condition():
    true = np.array([50.0, 60, 55, 40, 30, 65])
    predicted = np.array([52.0, 58, 57, 47, 41, 63])
    predictions = pd.DataFrame({"method": "ptacl", "seed": 0, "phenotype": "LVEF_pct",
                                "subject_id": [f"s{i}" for i in range(6)], "true": true, "predicted": predicted})
    conditions = {"s0": "normal", "s1": "normal", "s2": "normal", "s3": "myocardial_infarction", "s4": "myocardial_infarction",
                  "s5": "normal"}
    text = readings.predicted_reading(predictions, conditions, "ptacl", 0, phenotypes=("LVEF_pct",))
    assert f"R² {r2_score(true, predicted):.2f}" in text
    assert f"MAE {np.abs(predicted - true).mean():.1f} %" in text
    assert "largest mean error in myocardial infarction (+9.0 %)" in text


def test_probe_reading_counts_wins_and_losses_from_the_intervals():
    summary = pd.DataFrame({"method": ["global", "ptacl", "condition_label", "global", "ptacl", "condition_label"],
                            "fraction": 1.0, "phenotype": ["LVEF_pct"] * 3 + ["LVM_g"] * 3,
                            "r2": [0.4, 0.5, 0.9, 0.3, 0.2, 0.95]})
    differences = pd.DataFrame({"method": "ptacl", "baseline": "global", "fraction": 1.0, "metric": "r2",
                                "phenotype": ["LVEF_pct", "LVM_g", "RVEF_pct"], "low": [0.01, -0.3, -0.1],
                                "high": [0.2, -0.01, 0.1]})
    text = readings.probe_reading(summary, differences, 1.0, "ptacl", "global")
    assert "LVEF: PTACL 0.50" in text and "LV mass: global only 0.30" in text  # the reference row is not "best"
    assert "higher on LVEF, lower on LV mass, undecided on the other 1 of 3" in text


def test_retrieval_and_alignment_readings():
    queries = [{"condition": "normal", "lvef": 61.0, "retrieved": [{"condition": "normal", "lvef": 58.0},
                                                                   {"condition": "lv_hypertrophy", "lvef": 66.0}]}]
    text = readings.retrieval_panel_reading(queries)
    assert text.startswith("Query 1 (normal, LVEF 61 %): 1 of 2 retrieved share its condition, their LVEF 58-66 %")
    matrix = np.array([[0.9, 0.1], [0.3, 0.7]])
    text = readings.phase_alignment_reading({"ptacl": matrix})
    assert "PTACL 0.800 vs 0.200 (gap +0.600)" in text


def test_signed_never_reads_minus_zero():
    assert readings._signed(-0.00004) == "0.000" and readings._signed(-0.01) == "-0.010"
    assert readings.condition_name("lv_hypertrophy") == "LV hypertrophy"


def test_readings_of_a_cohort_without_conditions_or_rhythm():
    unknown = np.array(["unknown"] * 20)
    assert "no condition labels" in readings.embedding_map_reading({"ptacl": np.eye(20)}, unknown)
    queries = [{"condition": "unknown", "lvef": 50.0, "retrieved": [{"condition": "unknown", "lvef": 40.0}]}]
    assert "share its condition" not in readings.retrieval_panel_reading(queries)
    assert readings.rhythm_reading(np.array([]), pd.Series(dtype=int), 3).startswith("No RR interval")


def test_learning_curves_reading_says_when_epochs_are_too_few():
    table = pd.DataFrame({"method": ["ptacl", "ptacl"], "val_loss": [2.0, 3.0], "val_margin": [0.1, 0.3],
                          "flattened": [np.nan, np.nan]})
    text = readings.learning_curves_reading(table)
    assert text.startswith("Too few epochs") and "PTACL 2.500 (margin +0.200)" in text
    table["flattened"] = [True, False]
    assert readings.learning_curves_reading(table).startswith("1 of 2 runs flattened")
