"""The information audit of a synthetic cohort (METHOD.md §6): what an ECG could tell about each phenotype, and
through which channel. It is what makes a null result of the PTACL-vs-global comparison informative.

Cross-validated R² of each phenotype from four feature sets:

- ``condition``: the condition label alone (one-hot);
- ``ECG measurements``: what the kit measures on the ECG files (heart rate, QRS duration, QT, the 12 QRS
  amplitudes), with the condition label;
- ``latents without timing``: the latents the generator draws the ECG from, except timing (sex, age, body size,
  heart rate, electrical axis, LV mass, infarct size and territory), with the condition label. LV mass and infarct
  size reach the ECG only through noisy amplitudes (lognormal voltage, per-lead gains), so these rows are upper
  bounds of what an ECG carries, not what a perfect reader of this ECG would reach;
- ``latents with timing``: the same plus the ECG's timing latents (QRS duration, QTc, PR, P-wave duration).

The model is a ridge regression on standardised features, the condition one-hot and their interactions (a slope
per condition), penalty by CV inside the training folds. R² is reported overall and *within condition*: the
residual against the training folds' condition means (how much beyond recognising the condition), pooled and
per condition. On the physiological cohort the timing latents add within-condition information; on the null
twin they must not (the gap is the experiment's headroom for temporal alignment).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold
from tqdm.auto import tqdm

from ptacl_core.io.cohort_tables import read_cohort
from ptacl_core.io.ecg import EcgReadError, read_ecg
from ptacl_core.phenotypes import PHENOTYPES, TEMPORAL_PHENOTYPES
from ptacl_core.preprocessing.ecg_measures import MEASURE_FEATURES, measure_ecg
from ptacl_core.synthetic.cohort import LATENTS_FILE

TIMING_LATENTS = ("qrs_duration_s", "qtc_s", "pr_interval_s", "p_duration_s")
OTHER_LATENTS = ("male", "age_years", "height_cm", "weight_kg", "heart_rate_bpm", "electrical_axis_deg", "lv_mass_g",
                 "infarct_size", "territory_anterior", "territory_inferior", "territory_lateral")
FEATURE_SETS = ("condition", "ECG measurements", "latents without timing", "latents with timing")
AUDIT_PHENOTYPES = (*PHENOTYPES, *TEMPORAL_PHENOTYPES)
ALPHAS = tuple(np.logspace(-3, 4, 15))


def ecg_measurement_table(cohort_dir: Path | str, subject_ids: list[str] | None = None, progress: bool = False) -> pd.DataFrame:
    """The kit's hand-crafted measurements of each subject's ECG file, indexed by subject_id (NaN where a
    measurement fails): heart rate, QRS duration, QT and the 12 QRS amplitudes."""
    cohort_dir = Path(cohort_dir)
    table = read_cohort(cohort_dir).set_index("subject_id")
    subject_ids = list(table.index) if subject_ids is None else subject_ids
    rows = {}
    for subject in tqdm(subject_ids, desc="measuring ECGs", disable=not progress):
        try:
            ecg = read_ecg(cohort_dir / table.loc[subject, "ecg"])
            measures = measure_ecg(ecg.signal, ecg.fs)
        except (EcgReadError, ValueError):
            rows[subject] = {}
            continue
        rows[subject] = dict(zip(MEASURE_FEATURES, measures.features(), strict=True))
    return pd.DataFrame.from_dict(rows, orient="index")


def latent_features(latents: pd.DataFrame, timing: bool) -> pd.DataFrame:
    features = pd.DataFrame(index=latents.index)
    features["male"] = (latents.sex == "male").astype(float)
    for territory in ("anterior", "inferior", "lateral"):
        features[f"territory_{territory}"] = (latents.infarct_territory.fillna("") == territory).astype(float)
    for column in OTHER_LATENTS:
        if column not in features:
            features[column] = latents[column].astype(float)
    if timing:
        for column in TIMING_LATENTS:
            features[column] = latents[column].astype(float)
    return features


def _design(features: np.ndarray, conditions: np.ndarray, levels: list[str]) -> np.ndarray:
    """[features, condition one-hot, features x one-hot] (features already standardised)."""
    one_hot = (conditions[:, None] == np.array(levels)[None, :]).astype(float)
    if features.shape[1] == 0:
        return one_hot
    interactions = (features[:, :, None] * one_hot[:, None, :]).reshape(len(features), -1)
    return np.hstack([features, one_hot, interactions])


def cross_validated_r2(features: np.ndarray, target: np.ndarray, conditions: np.ndarray, n_splits: int = 5,
                       seed: int = 0) -> dict[str, float]:
    """Out-of-fold R² of a ridge model (slopes per condition): ``overall``, ``within condition`` (pooled, against
    the training folds' condition means) and one entry per condition (within that condition).

    features: (N, F) (F may be 0: the condition label alone); target: (N,); conditions: (N,) labels. Rows with a
    missing target or feature are left out."""
    usable = np.isfinite(target) & np.isfinite(features).all(axis=1)
    x, y, groups = features[usable], target[usable], conditions[usable]
    levels = sorted(set(groups))
    predicted, baseline = np.empty(len(y)), np.empty(len(y))
    for train, test in KFold(n_splits, shuffle=True, random_state=seed).split(x):
        mean, std = x[train].mean(0), x[train].std(0) + 1e-9
        model = RidgeCV(alphas=np.asarray(ALPHAS)).fit(_design((x[train] - mean) / std, groups[train], levels), y[train])
        predicted[test] = model.predict(_design((x[test] - mean) / std, groups[test], levels))
        condition_means = pd.Series(y[train]).groupby(groups[train]).mean()
        baseline[test] = pd.Series(groups[test]).map(condition_means).fillna(y[train].mean()).to_numpy()
    residual = (y - predicted) ** 2
    result = {"overall": float(1.0 - residual.sum() / ((y - y.mean()) ** 2).sum()),
              "within condition": float(1.0 - residual.sum() / ((y - baseline) ** 2).sum())}
    for level in levels:  # within one condition, against the same out-of-fold condition means
        rows = groups == level
        result[level] = float(1.0 - residual[rows].sum() / ((y[rows] - baseline[rows]) ** 2).sum()) if rows.sum() > 2 else float("nan")
    return result


def information_audit(cohort_dir: Path | str, phenotypes=AUDIT_PHENOTYPES, measurements: pd.DataFrame | None = None,
                      n_splits: int = 5, seed: int = 0) -> pd.DataFrame:
    """Long table: phenotype, features (one of ``FEATURE_SETS``), scope ("overall", "within condition" or a
    condition), r2, n (subjects scored). ``measurements``: ``ecg_measurement_table`` of the cohort (the
    ECG-measurement rows are left out when None); when given, every feature set is scored on the measured
    subjects only, so the rows are comparable."""
    cohort_dir = Path(cohort_dir)
    table = read_cohort(cohort_dir).set_index("subject_id")
    latents = pd.read_csv(cohort_dir / LATENTS_FILE, dtype={"subject_id": str}).set_index("subject_id").loc[table.index]
    conditions = table.condition.astype(str).to_numpy()
    if measurements is not None:  # every set on the measured subjects: comparable rows
        table = table.loc[[s for s in table.index if s in measurements.index]]
        latents = latents.loc[table.index]
        conditions = table.condition.astype(str).to_numpy()
    feature_sets = {"condition": np.zeros((len(table), 0)),
                    "latents without timing": latent_features(latents, timing=False).to_numpy(),
                    "latents with timing": latent_features(latents, timing=True).to_numpy()}
    if measurements is not None:
        feature_sets["ECG measurements"] = measurements.reindex(table.index).to_numpy(dtype=float)
    rows = []
    for phenotype in phenotypes:
        if phenotype not in table:
            continue
        target = table[phenotype].to_numpy(dtype=float)
        for name in FEATURE_SETS:
            if name not in feature_sets:
                continue
            for scope, r2 in cross_validated_r2(feature_sets[name], target, conditions, n_splits, seed).items():
                rows.append({"phenotype": phenotype, "features": name, "scope": scope, "r2": r2, "n": len(table)})
    return pd.DataFrame(rows)


def audit_summary(audit: pd.DataFrame, scope: str = "within condition") -> pd.DataFrame:
    """Phenotypes x feature sets at one scope, with the information the timing latents add."""
    wide = audit[audit.scope == scope].pivot_table(index="phenotype", columns="features", values="r2", sort=False)
    wide = wide[[name for name in FEATURE_SETS if name in wide]]
    wide["timing adds"] = wide["latents with timing"] - wide["latents without timing"]
    return wide
