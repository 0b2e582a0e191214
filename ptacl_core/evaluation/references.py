"""Reference rows of the comparison (METHOD.md §5): feature matrices that bound what an ECG encoder can learn,
probed exactly like the encoders' embeddings.

- ``condition_label``: the condition one-hot alone (how much of a phenotype is condition recognition);
- ``ecg_measures``: the kit's hand-crafted measurements of each cached ECG (heart rate, QRS duration, QT, the
  12 QRS amplitudes);
- ``median_beat``: the R-peak aligned median beat of every lead (``ecg_measures.median_beat``, 250 ms before to
  450 ms after R), flattened, reduced by a PCA fitted on the training split (``MEDIAN_BEAT_COMPONENTS``): what a
  linear probe reads from the raw signal's average beat (METHOD.md §5, pre-registered 2026-12-06 as "the raw
  signal's linear ceiling"; a ceiling of linear reading of the median beat, not of what an encoder can learn);
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

from ptacl_core import paths
from ptacl_core.preprocessing.cache import Cache
from ptacl_core.preprocessing.ecg_measures import MEASURE_FEATURES, measure_ecg, median_beat
from ptacl_core.synthetic.audit import latent_features
from ptacl_core.synthetic.cohort import LATENTS_FILE

MEASURES_VERSION = 1
MEDIAN_BEAT_WINDOW_S = (0.25, 0.45)  # before and after the R peak: QRS and T at any rate the cohorts have
MEDIAN_BEAT_COMPONENTS = 50  # PCA components (fewer when the training split is smaller)
MEDIAN_BEAT_VERSION = 1


def condition_features(cache: Cache) -> np.ndarray | None:
    """(N, C) condition one-hot, or None when the cache has no condition column."""
    if "condition" not in cache.index:
        return None
    conditions = cache.index.condition.astype(str).to_numpy()
    levels = sorted(set(conditions))
    return (conditions[:, None] == np.array(levels)[None, :]).astype(np.float32)


def _stored(path: Path, ids: np.ndarray, key: str) -> np.ndarray | None:
    """``key`` of a per-cache ``.npz`` in the store, when it was computed for these very subject ids; else None."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            return stored[key] if np.array_equal(stored["subject_id"], ids) else None
    except (OSError, ValueError, KeyError, EOFError):  # a damaged or foreign file: computed again and replaced
        return None


def _store(path: Path, ids: np.ndarray, **arrays: np.ndarray) -> None:
    """Write the store's ``.npz`` atomically (a kill mid-write leaves the previous file, or none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with paths.written_atomically(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, subject_id=ids, **arrays)


def ecg_measure_features(cache: Cache, store: Path | str, progress: bool = False) -> np.ndarray:
    """(N, 15) heart rate, QRS duration, QT and the 12 QRS amplitudes measured on each cached ECG (a failed
    measurement is filled with the column median), cached in ``store``."""
    store = Path(store)
    path = store / f"ecg_measures_{cache.fingerprint[:24]}_v{MEASURES_VERSION}.npz"
    ids = np.array(cache.index.subject_id.astype(str).tolist(), dtype=str)
    stored = _stored(path, ids, "features")
    if stored is not None:
        return stored
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
    _store(path, ids, features=features)
    return features


def median_beats(cache: Cache, store: Path | str, progress: bool = False) -> np.ndarray:
    """(N, 12 * W) every cached ECG's median beat, flattened (NaN rows where no complete beat exists), cached in
    ``store`` (keyed by the cache's fingerprint)."""
    store = Path(store)
    path = store / f"median_beats_{cache.fingerprint[:24]}_v{MEDIAN_BEAT_VERSION}.npz"
    ids = np.array(cache.index.subject_id.astype(str).tolist(), dtype=str)
    stored = _stored(path, ids, "beats")
    if stored is not None:
        return stored
    fs = float(cache.config.ecg.fs)
    before, after = MEDIAN_BEAT_WINDOW_S
    width = int(round(before * fs)) + int(round(after * fs))
    beats = np.full((len(ids), cache.ecg.shape[1] * width), np.nan, dtype=np.float32)
    for position, row in enumerate(tqdm(cache.index.row.to_numpy(dtype=int), desc="median beats", disable=not progress)):
        try:
            beat = median_beat(np.asarray(cache.ecg[row], dtype=np.float64), fs, cache.rpeaks(position), before, after)
            beats[position] = beat[:, :width].ravel()
        except ValueError:  # no complete beat: the row stays NaN (filled with the training mean below)
            pass
    _store(path, ids, beats=beats)
    return beats


def median_beat_features(cache: Cache, store: Path | str, progress: bool = False,
                         components: int = MEDIAN_BEAT_COMPONENTS) -> np.ndarray | None:
    """(N, K) the median beats projected on the first K principal components of the training split's beats
    (centred on the training mean; a subject without a beat sits at the mean); None when fewer than 3 training
    subjects have a beat. The components come from the (F, F) covariance, accumulated in float64 over row chunks,
    so memory stays near one float32 copy of the beats at any cohort size."""
    beats = median_beats(cache, store, progress)
    train = cache.index.split.to_numpy() == "train"
    usable = train & np.isfinite(beats).all(axis=1)
    if usable.sum() < 3:
        return None
    rows = np.flatnonzero(usable)
    mean = beats[rows].mean(axis=0, dtype=np.float64)
    covariance = np.zeros((beats.shape[1], beats.shape[1]))
    for start in range(0, len(rows), 2048):
        chunk = beats[rows[start:start + 2048]].astype(np.float64) - mean
        covariance += chunk.T @ chunk
    k = int(min(components, len(rows) - 1, beats.shape[1]))
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    axes = eigenvectors[:, np.argsort(eigenvalues)[::-1][:k]].astype(np.float32)
    centred = np.where(np.isfinite(beats), beats - mean.astype(np.float32), np.float32(0.0))
    return centred @ axes


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
    beats = median_beat_features(cache, store, progress)
    if beats is not None:
        references[("median_beat", 0)] = beats
    latents = generator_latent_features(cache)
    if latents is not None:
        references[("generator_latents", 0)] = latents
    return references
