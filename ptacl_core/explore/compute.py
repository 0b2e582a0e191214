"""The computations behind notebook 06's widgets: plain functions of arrays, each checked against a brute-force
reference in ``tests/test_explore.py``. No widget, figure or cache here."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ptacl_core.evaluation.embedding_maps import embedding_map
from ptacl_core.evaluation.probing import fit_ridge, label_subset

MAX_OPTIONS = 200  # subjects listed in a dropdown at once: the browser never receives the whole cohort
MAP_MAX_POINTS_TSNE = 5000  # t-SNE is O(N log N) but slow in absolute terms: a seeded subset beyond this
HOVER_PIXELS = 8.0  # a point is "under the pointer" within this many screen pixels



def select_subjects(index: pd.DataFrame, condition: str | None = None, split: str | None = None, text: str = "",
                    limit: int = MAX_OPTIONS) -> list[str]:
    """Subject ids of ``index`` (columns subject_id, split and optionally condition) matching every given filter,
    in index order, at most ``limit``. text: a case-insensitive substring of the id ("" for any)."""
    keep = np.ones(len(index), dtype=bool)
    if condition:
        if "condition" not in index:
            raise ValueError("this cohort has no condition column; leave the condition filter empty")
        keep &= index["condition"].astype(str).to_numpy() == condition
    if split:
        keep &= index["split"].astype(str).to_numpy() == split
    ids = index["subject_id"].astype(str)
    if text:
        keep &= ids.str.contains(text, case=False, regex=False).to_numpy()
    return ids.to_numpy()[keep][:limit].tolist()


def worst_predicted(true: np.ndarray, predicted: np.ndarray, scale: np.ndarray | None = None,
                    n: int = 20) -> np.ndarray:
    """Rows of the ``n`` worst predictions, worst first.

    true, predicted: (N,) or (N, P); scale: (P,) per-phenotype scale (e.g. the training SD) dividing the errors,
    so that several phenotypes are comparable. The error of a row is the mean absolute (scaled) error over its
    known phenotypes; rows with none known are never listed. Ties keep index order."""
    true, predicted = np.atleast_2d(np.asarray(true, float).T).T, np.atleast_2d(np.asarray(predicted, float).T).T
    if true.shape != predicted.shape:
        raise ValueError(f"true {true.shape} and predicted {predicted.shape} differ in shape")
    error = np.abs(predicted - true) / (1.0 if scale is None else np.asarray(scale, float)[None, :])
    known = np.isfinite(error)
    counts = known.sum(1)
    mean_error = np.where(counts > 0, np.where(known, error, 0.0).sum(1) / np.maximum(counts, 1), -np.inf)
    order = np.argsort(-mean_error, kind="stable")
    return order[:min(n, int((counts > 0).sum()))]


def centred_cosine(queries: np.ndarray, gallery: np.ndarray, query_mean: np.ndarray,
                   gallery_mean: np.ndarray) -> np.ndarray:
    """Cosine similarity after subtracting a mean embedding (the training split's) from each side.

    queries: (Q, D) or (D,); gallery: (G, D); means: (D,). Returns (Q, G) (or (G,)). Pooled embeddings share a
    large common component (raw cosines of a test ECG's top-5 neighbours at 0.82-0.995 in a default run); once it is
    removed the scores spread out."""
    single = np.ndim(queries) == 1
    q = np.atleast_2d(np.asarray(queries, np.float64)) - np.asarray(query_mean, np.float64)
    g = np.asarray(gallery, np.float64) - np.asarray(gallery_mean, np.float64)
    q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    g /= np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    scores = q @ g.T
    return scores[0] if single else scores


def phase_similarity_matrix(u_ecg: np.ndarray, u_cmr: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(K, K) cosine similarity of one patient's ECG phase segments (rows) and CMR phase frames (columns).

    u_ecg, u_cmr: (K, d) projections (normalised or not); mask: (K,) bins present in both. NaN in every row and
    column of an absent bin."""
    e = np.asarray(u_ecg, np.float64)
    c = np.asarray(u_cmr, np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    valid = np.asarray(mask, bool)
    return np.where(valid[:, None] & valid[None, :], e @ c.T, np.nan)


def phase_samples(rpeaks: np.ndarray, phase: float) -> np.ndarray:
    """Sample position of cardiac ``phase`` (in [0, 1)) in every complete RR interval: r_j + phase (r_j+1 - r_j),
    the phase definition of ``phases.ecg_token_phases``. rpeaks: sample indices. Returns (n_intervals,) float."""
    peaks = np.sort(np.asarray(rpeaks, np.float64))
    return peaks[:-1] + phase * np.diff(peaks)


def phase_bin_edges(rpeaks: np.ndarray, num_bins: int) -> np.ndarray:
    """(n_intervals, K + 1) sample positions of the phase-bin edges of every complete RR interval."""
    return np.stack([phase_samples(rpeaks, k / num_bins) for k in range(num_bins + 1)], axis=1) if len(rpeaks) > 1 \
        else np.zeros((0, num_bins + 1))


def cine_frames_rgb(image: np.ndarray, masks: np.ndarray | None, clim: tuple[float, float], colours: dict,
                    alpha: float = 0.35) -> np.ndarray:
    """(T, H, W, 3) uint8: every frame of a cine (T, H, W) in grey, ``clim`` (low, high) mapped to 0..255 and
    clipped (NaN black), each mask label of ``colours`` ({label: (r, g, b) in 0..1}) blended over it with weight
    ``alpha``. masks: (T, H, W) labels, or None for the grey cine."""
    low, high = float(clim[0]), float(clim[1])
    grey = np.clip(np.nan_to_num((np.asarray(image, np.float64) - low) / max(high - low, 1e-12)), 0.0, 1.0)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    if masks is not None:
        for value, colour in colours.items():
            inside = np.asarray(masks) == value
            rgb[inside] = (1.0 - alpha) * rgb[inside] + alpha * np.asarray(colour, np.float64)
    return np.round(rgb * 255.0).astype(np.uint8)


def nearest_point(points: np.ndarray, x: float, y: float, max_distance: float = np.inf) -> int | None:
    """Row of the point of ``points`` (N, 2) nearest to (x, y), or None when none lies within ``max_distance``
    (same units: screen pixels for hovering). NaN points are never chosen."""
    points = np.asarray(points, np.float64)
    if len(points) == 0:
        return None
    distance = np.hypot(points[:, 0] - x, points[:, 1] - y)
    distance = np.where(np.isfinite(distance), distance, np.inf)
    best = int(np.argmin(distance))
    return best if distance[best] <= max_distance else None


def probe_predictions(x: np.ndarray, phenotypes: np.ndarray, splits: np.ndarray, fraction: float = 1.0, seed: int = 0,
                      min_labels: int = 5) -> np.ndarray:
    """(N, P) predictions of every subject by notebook 03's ridge probe (``probing.fit_ridge``), fitted on
    ``fraction`` of the training labels (``probing.label_subset``, nested per seed); NaN where a phenotype has
    fewer than 3 known training labels. Train subjects' predictions are in-sample. No encoder is retrained."""

    train = np.flatnonzero(np.asarray(splits) == "train")
    if len(train) < 3:
        raise ValueError(f"the probe needs training subjects; the cache has {len(train)}")
    subset = train[label_subset(len(train), fraction, seed, min_labels)]
    out = np.full(phenotypes.shape, np.nan)
    groups: dict[tuple[int, ...], list[int]] = {}  # phenotypes known on the same rows share one fit, as in notebook 03
    for column in range(phenotypes.shape[1]):
        rows = subset[np.isfinite(phenotypes[subset, column])]
        if len(rows) >= 3:
            groups.setdefault(tuple(rows), []).append(column)
    for rows, columns in groups.items():
        rows = np.asarray(rows)
        probe = fit_ridge(x[rows], phenotypes[np.ix_(rows, columns)])
        out[:, columns] = probe.predict(x).reshape(len(x), -1)
    return out


def map_coordinates(x: np.ndarray, how: str = "pca", max_points: int = MAP_MAX_POINTS_TSNE, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """2-D map of standardised embeddings (notebook 05's ``embedding_map``): returns (rows (M,), coordinates
    (M, 2)). PCA maps every row; t-SNE a seeded subset of at most ``max_points`` rows."""

    rows = np.arange(len(x))
    if how == "tsne" and len(x) > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(len(x), max_points, replace=False))
    return rows, embedding_map(x[rows], how, seed)
