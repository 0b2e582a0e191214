"""The realism report's tables, on the test cohort and on constructed inputs."""

import numpy as np
import pandas as pd
import pytest

from ptacl_core.realism import ECG_MEASURES, ecg_realism_table, phenotype_realism_table, realism_report


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
    assert report["ecg"].loc["heart rate (bpm)", "n real"] == 6
    assert 40 < report["ecg"].loc["heart rate (bpm)", "real mean"] < 120
    assert np.all(np.abs(report["ecg_vs_ground_truth"][("heart rate error (bpm)", "mean")]) < 2)
