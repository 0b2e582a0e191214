"""The realism report's tables, on the test cohort and on constructed inputs."""

import numpy as np
import pandas as pd
import pytest

from ptacl_core.synthetic.realism import ECG_MEASURES, ecg_realism_table, phenotype_realism_table, realism_report


def test_ecg_table_statistics_are_those_of_the_inputs():
    rng = np.random.default_rng(0)
    synthetic = pd.DataFrame({m: rng.normal(1.0, 0.2, 20) for m in ECG_MEASURES})
    synthetic["condition"] = ["normal"] * 10 + ["lv_hypertrophy"] * 10
    real = pd.DataFrame({m: [0.5, 1.5] for m in ECG_MEASURES})
    table = ecg_realism_table(synthetic, real)
    measure = ECG_MEASURES[3]
    assert table.loc[measure, "synthetic normal mean"] == pytest.approx(synthetic[measure][:10].mean())
    assert table.loc[measure, "real mean"] == 1.0 and table.loc[measure, "real max"] == 1.5
    assert (table["n real"] == 2).all()


def test_phenotype_table_compares_with_reference(cohort):
    phenotypes = pd.read_csv(cohort / "phenotypes.csv")
    table = phenotype_realism_table(phenotypes)
    assert table.loc[("male", "LVEDV_mL"), "UK Biobank mean"] == 166
    assert np.all(np.abs(table["difference in reference SDs"]) < 1.5)


def test_full_report_with_real_recordings(cohort, realdata):
    report = realism_report(cohort, realdata, max_subjects=12)
    # 5 WFDB records, 1 UK Biobank XML, 2 GE MUSE XML, 2 Philips XML, 1 SCP-ECG (the V3R/V7 one refused: an error row)
    assert report["ecg"].loc["heart rate (bpm)", "n real"] == 11
    assert 40 < report["ecg"].loc["heart rate (bpm)", "real mean"] < 120
    assert np.all(np.abs(report["ecg_vs_ground_truth"][("heart rate error (bpm)", "mean")]) < 2)


def test_systolic_time_intervals_table_against_weissler(cohort):
    from ptacl_core.synthetic.realism import systolic_time_interval_table

    table = systolic_time_interval_table(pd.read_csv(cohort / "latents.csv"))
    assert set(table.index.get_level_values("interval")) == {"PEP", "LVET", "QS2"}
    difference = (table["synthetic at 70 bpm (ms)"] - table["Weissler at 70 bpm (ms)"]).abs()
    assert (difference < 20.0).all(), difference
    assert table.loc[("male", "QS2"), "Weissler slope (ms/bpm)"] == -2.1


def test_systolic_time_interval_regressions_are_those_of_the_inputs():
    from ptacl_core.synthetic.realism import systolic_time_interval_table

    hr = np.array([50.0, 60.0, 70.0, 80.0])
    latents = pd.DataFrame({"condition": "normal", "sex": "male", "heart_rate_bpm": hr,
                            "pep_s": (100.0 - 0.5 * hr) / 1000.0, "lvet_s": (400.0 - 1.5 * hr) / 1000.0})
    table = systolic_time_interval_table(latents)
    assert table.loc[("male", "PEP"), "synthetic slope (ms/bpm)"] == pytest.approx(-0.5)
    assert table.loc[("male", "QS2"), "synthetic intercept (ms)"] == pytest.approx(500.0)
    assert np.isnan(table.loc[("female", "PEP"), "synthetic slope (ms/bpm)"])
