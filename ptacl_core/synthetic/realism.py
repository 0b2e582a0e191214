"""How realistic is the synthetic cohort? The same measurements on synthetic and real recordings.

- ECG: heart rate, QRS duration and per-lead QRS amplitude, measured from the signals by
  ``ecg_measures.measure_ecg`` on synthetic subjects and on the real ECGs in ``../shared/realdata``.
- CMR: phenotype distributions of the synthetic normals beside UK Biobank reference ranges (Petersen 2017).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ptacl_core.io.cohort_tables import read_cohort
from ptacl_core.io.ecg import ECG_SUFFIXES, EcgReadError, read_ecg
from ptacl_core.leads import LEAD_NAMES
from ptacl_core.phenotypes import PHENOTYPES, REFERENCE_RANGES
from ptacl_core.preprocessing.ecg_measures import measure_ecg
from ptacl_core.synthetic.latent import WEISSLER_MS

ECG_MEASURES = ("heart rate (bpm)", "QRS duration (ms)", *(f"QRS amplitude {lead} (mV)" for lead in LEAD_NAMES))


def _measure_rows(paths: list[Path]) -> pd.DataFrame:
    rows = []
    for path in paths:
        try:
            ecg = read_ecg(path)
            measures = measure_ecg(ecg.signal, ecg.fs)
        except (EcgReadError, ValueError) as error:
            rows.append({"record": path.name, "error": str(error)})
            continue
        rows.append({
            "record": path.name, "heart rate (bpm)": measures.heart_rate_bpm, "QRS duration (ms)": measures.qrs_ms,
            **{f"QRS amplitude {lead} (mV)": value for lead, value in zip(LEAD_NAMES, measures.qrs_amplitude_mv, strict=True)},
        })
    return pd.DataFrame(rows)


def real_ecg_paths(realdata_dir: Path | None) -> list[Path]:
    """Every ECG file in the real-data folder (``io.ecg.ECG_SUFFIXES``: WFDB headers, XML exports, SCP-ECG, ...; one
    that cannot be read is a row with its error)."""
    if realdata_dir is None or not (Path(realdata_dir) / "ecg").is_dir():
        return []
    ecg_dir = Path(realdata_dir) / "ecg"
    return sorted(path for path in ecg_dir.rglob("*") if path.is_file() and path.suffix.lower() in ECG_SUFFIXES)


def measure_synthetic_ecgs(cohort_dir: Path | str, max_subjects: int = 200) -> pd.DataFrame:
    """Measures of the first ``max_subjects`` synthetic ECGs, with their condition and latent HR / QRS."""
    cohort_dir = Path(cohort_dir)
    table = read_cohort(cohort_dir).head(max_subjects)
    measured = _measure_rows([cohort_dir / path for path in table.ecg])
    measured["subject_id"] = table.subject_id.values
    return measured.merge(table[["subject_id", "condition", "HR_bpm", "QRS_ms", "LVM_g"]], on="subject_id")


def ecg_realism_table(synthetic: pd.DataFrame, real: pd.DataFrame) -> pd.DataFrame:
    """Per measure: synthetic normals and all synthetic (mean, SD) beside the real recordings (mean, SD, range)."""
    normal = synthetic[synthetic.condition == "normal"]
    rows = []
    for measure in ECG_MEASURES:
        real_values = real[measure].dropna() if measure in real else pd.Series(dtype=float)
        rows.append({
            "measure": measure,
            "synthetic normal mean": normal[measure].mean(), "synthetic normal SD": normal[measure].std(),
            "synthetic all mean": synthetic[measure].mean(), "synthetic all SD": synthetic[measure].std(),
            "real mean": real_values.mean() if len(real_values) else np.nan,
            "real SD": real_values.std() if len(real_values) > 1 else np.nan,
            "real min": real_values.min() if len(real_values) else np.nan,
            "real max": real_values.max() if len(real_values) else np.nan,
            "n real": len(real_values),
        })
    return pd.DataFrame(rows).set_index("measure")


def phenotype_realism_table(phenotypes: pd.DataFrame) -> pd.DataFrame:
    """Synthetic normals by sex (mean, SD) beside the UK Biobank healthy reference (Petersen et al. 2017)."""
    rows = []
    normal = phenotypes[phenotypes.condition == "normal"]
    for sex in ("male", "female"):
        group = normal[normal.sex == sex]
        for name in PHENOTYPES:
            reference_mean, reference_sd = REFERENCE_RANGES[sex][name]
            rows.append({
                "sex": sex, "phenotype": name, "synthetic mean": group[name].mean(), "synthetic SD": group[name].std(),
                "UK Biobank mean": reference_mean, "UK Biobank SD": reference_sd,
                "difference in reference SDs": (group[name].mean() - reference_mean) / reference_sd, "n": len(group),
            })
    return pd.DataFrame(rows).set_index(["sex", "phenotype"])


def realism_report(cohort_dir: Path | str, realdata_dir: Path | None, max_subjects: int = 200) -> dict[str, pd.DataFrame]:
    """All realism tables: ``ecg`` (synthetic vs real), ``phenotypes`` (vs reference ranges),
    ``ecg_vs_ground_truth`` (measured vs latent HR and QRS), ``real_records`` (each real ECG's measures)."""
    synthetic = measure_synthetic_ecgs(cohort_dir, max_subjects)
    real = _measure_rows(real_ecg_paths(realdata_dir))
    truth = pd.DataFrame({
        "heart rate error (bpm)": synthetic["heart rate (bpm)"] - synthetic["HR_bpm"],
        "QRS duration error (ms)": synthetic["QRS duration (ms)"] - synthetic["QRS_ms"],
        "condition": synthetic["condition"],
    })
    phenotypes = read_cohort(cohort_dir)
    return {
        "ecg": ecg_realism_table(synthetic, real),
        "phenotypes": phenotype_realism_table(phenotypes),
        "ecg_vs_ground_truth": truth.groupby("condition").agg(["mean", "std", "min", "max"]),
        "real_records": real.set_index("record") if len(real) else real,
        "synthetic_measures": synthetic,
    }


def systolic_time_interval_table(latents: pd.DataFrame) -> pd.DataFrame:
    """PEP, LVET and QS2 of the normal synthetic hearts regressed on heart rate, by sex, beside Weissler et al.'s
    published regressions (Circulation 1968): intercept (ms), slope (ms/bpm), the value at 70 bpm, and the
    residual SD. latents: ``latents.csv`` of a synthetic cohort."""
    normal = latents[latents.condition == "normal"]
    rows = []
    for sex in ("male", "female"):
        group = normal[normal.sex == sex]
        values = {"PEP": group.pep_s * 1000.0, "LVET": group.lvet_s * 1000.0, "QS2": (group.pep_s + group.lvet_s) * 1000.0}
        for interval, ms in values.items():
            published_intercept, published_slope = WEISSLER_MS[sex][interval]
            if len(group) >= 3:
                slope, intercept = np.polyfit(group.heart_rate_bpm, ms, 1)
                residual_sd = float(np.std(ms - (intercept + slope * group.heart_rate_bpm), ddof=2))
            else:
                slope = intercept = residual_sd = float("nan")
            rows.append({"sex": sex, "interval": interval, "n": len(group),
                         "synthetic intercept (ms)": intercept, "Weissler intercept (ms)": published_intercept,
                         "synthetic slope (ms/bpm)": slope, "Weissler slope (ms/bpm)": published_slope,
                         "synthetic at 70 bpm (ms)": intercept + 70.0 * slope,
                         "Weissler at 70 bpm (ms)": published_intercept + 70.0 * published_slope,
                         "synthetic residual SD (ms)": residual_sd})
    return pd.DataFrame(rows).set_index(["sex", "interval"])
