"""Reference rows of the comparison (METHOD.md §5): feature matrices that bound what an ECG encoder can learn,
probed exactly like the encoders' embeddings.

- ``condition_label``: the condition one-hot alone (how much of a phenotype is condition recognition);
- ``ecg_measures``: the kit's hand-crafted measurements of each cached ECG (heart rate, QRS duration, QT, the
  12 QRS amplitudes);
- ``generator_latents``: on a synthetic cohort, the latents the generator draws the ECG from (with timing), plus
  the condition: the ceiling. LV mass and infarct size reach the ECG only through noisy amplitudes, so this row
  can exceed what any reader of the ECG could reach.

Each is (N, F) in the cache's index order; ``ecg_measures`` is cached beside the embeddings (keyed by the cache).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ptacl_core.preprocessing.cache import Cache
from ptacl_core.preprocessing.ecg_measures import MEASURE_FEATURES, measure_ecg
from ptacl_core.synthetic.audit import latent_features
from ptacl_core.synthetic.cohort import LATENTS_FILE

MEASURES_VERSION = 1


def condition_features(cache: Cache) -> np.ndarray | None:
    """(N, C) condition one-hot, or None when the cache has no condition column."""
    if "condition" not in cache.index:
        return None
    conditions = cache.index.condition.astype(str).to_numpy()
    levels = sorted(set(conditions))
    return (conditions[:, None] == np.array(levels)[None, :]).astype(np.float32)


def ecg_measure_features(cache: Cache, store: Path | str, progress: bool = False) -> np.ndarray:
    """(N, 15) heart rate, QRS duration, QT and the 12 QRS amplitudes measured on each cached ECG (a failed
    measurement is filled with the column median), cached in ``store``."""
    store = Path(store)
    path = store / f"ecg_measures_{cache.fingerprint[:24]}_v{MEASURES_VERSION}.npz"
    ids = np.array(cache.index.subject_id.astype(str).tolist(), dtype=str)
    if path.exists():
        with np.load(path, allow_pickle=False) as stored:
            if np.array_equal(stored["subject_id"], ids):
                return stored["features"]
    fs = float(cache.config.ecg.fs)
    rows = []
    for row in tqdm(cache.index.row.to_numpy(dtype=int), desc="measuring cached ECGs", disable=not progress):
        try:
            measures = measure_ecg(np.asarray(cache.ecg[row], dtype=np.float64), fs)
            rows.append(measures.features())
        except ValueError:
            rows.append(np.full(len(MEASURE_FEATURES), np.nan))
    features = np.asarray(rows, dtype=np.float64)
    train = features[cache.index.split.to_numpy() == "train"]  # filled from training rows only
    medians = np.nanmedian(train, axis=0) if np.isfinite(train).any() else np.zeros(features.shape[1])
    features = np.where(np.isfinite(features), features, np.nan_to_num(medians)[None, :]).astype(np.float32)
    store.mkdir(parents=True, exist_ok=True)
    np.savez(path, features=features, subject_id=ids)
    return features


def generator_latent_features(cache: Cache) -> np.ndarray | None:
    """(N, F) the generator's ECG-side latents with timing and the condition one-hot, for a cache built from a
    synthetic cohort (``latents.csv`` beside its manifest); None otherwise."""
    latents_path = Path(cache.cohort) / LATENTS_FILE
    if not latents_path.exists():
        return None
    latents = pd.read_csv(latents_path, dtype={"subject_id": str}).set_index("subject_id")
    ids = cache.index.subject_id.astype(str)
    if not set(ids) <= set(latents.index):
        return None
    features = latent_features(latents.loc[ids], timing=True).to_numpy(dtype=np.float32)
    condition = condition_features(cache)
    return features if condition is None else np.hstack([features, condition])


def reference_features(cache: Cache, store: Path | str, progress: bool = False) -> dict[tuple[str, int], np.ndarray]:
    """{(name, 0): (N, F)} for every reference row this cache supports."""
    references = {}
    condition = condition_features(cache)
    if condition is not None:
        references[("condition_label", 0)] = condition
    references[("ecg_measures", 0)] = ecg_measure_features(cache, store, progress)
    latents = generator_latent_features(cache)
    if latents is not None:
        references[("generator_latents", 0)] = latents
    return references
