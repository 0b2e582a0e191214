"""Quick frozen-encoder checks used while training (notebook 02): test R² of a ridge probe per phenotype (the
probe of ``probing``, all training labels, no intervals), and the K x K phase alignment of ECG segments and CMR
frames that the local loss shapes. The full comparison, with intervals and verdicts, is ``comparison``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from ptacl_core.evaluation.embeddings import cache_embeddings
from ptacl_core.evaluation.heart_rate import ecg_heart_rate
from ptacl_core.evaluation.probing import ProbeConfig, fit_ridge, probe_methods
from ptacl_core.model.encoders import PTACLModel
from ptacl_core.phenotypes import EVALUATED
from ptacl_core.preprocessing.cache import Cache
from ptacl_core.preprocessing.dataset import CacheDataset

QUICK_PHENOTYPES = ("LVEF_pct", "LVEDV_mL")


def quick_probe(models: dict[tuple[str, int], PTACLModel], cache: Cache, phenotypes=QUICK_PHENOTYPES, device: str = "cpu",
                store: Path | str | None = None, split: str = "test") -> pd.DataFrame:
    """R² on ``split`` (test, or val: where settings are chosen) per (method, seed) and phenotype: one row per
    model, one column per phenotype. Embeddings are cached as notebook 03 caches them; the probes are
    ``probing.probe_methods`` fitted on train at 100% of the labels."""
    if split not in ("test", "val"):
        raise ValueError(f"split must be test or val, got {split!r}")
    embeddings = {key: cache_embeddings(model, cache, "ecg", store, device=device) for key, model in models.items()}
    index = cache.index
    splits = index.split.to_numpy()
    if split == "val":  # score on validation: the test split takes no part
        splits = np.where(splits == "test", "unused", np.where(splits == "val", "test", splits))
    config = ProbeConfig(fractions=(1.0,), n_bootstrap=10, phenotypes=tuple(phenotypes))
    results = probe_methods(embeddings, cache.phenotypes(EVALUATED), splits, index.subject_id.to_numpy(), config,
                            names=EVALUATED)
    table = results.per_seed.pivot_table(index=["method", "seed"], columns="phenotype", values="r2").reset_index()
    return table[["method", "seed", *[p for p in phenotypes if p in table]]]


@torch.no_grad()
def phase_similarity(model: PTACLModel, batch: dict, fs: float, num_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity of each patient's projected ECG segments and CMR frames, phase bin by phase bin.

    Returns (B, K, K) similarities (row: ECG phase bin, column: CMR phase bin) and the (B, K) valid mask:
    the picture of what the local loss does (a bright diagonal = segments matched to their own phase).
    """
    features = model.eval().phase_embeddings(batch, fs, num_bins)
    return (features.u_ecg @ features.u_cmr.transpose(1, 2)).numpy(), features.mask.numpy()


def mean_phase_similarity(model: PTACLModel, cache: Cache, split: str, num_bins: int, max_patients: int = 64,
                          batch_size: int = 16) -> np.ndarray:
    """(K, K) ECG-segment x CMR-frame cosine similarity averaged over up to ``max_patients`` of a split,
    each cell over the patients where both phase bins are present (NaN where none)."""
    total, count = np.zeros((num_bins, num_bins)), np.zeros((num_bins, num_bins))
    dataset = CacheDataset(cache, split, None)
    subset = torch.utils.data.Subset(dataset, range(min(max_patients, len(dataset))))
    for batch in DataLoader(subset, batch_size=batch_size, shuffle=False):
        similarity, mask = phase_similarity(model, batch, cache.config.ecg.fs, num_bins)
        both = mask[:, :, None] & mask[:, None, :]
        total += np.where(both, similarity, 0.0).sum(0)
        count += both.sum(0)
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def same_phase_contrast(similarity: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Mean same-phase (diagonal) and other-phase cosine of ``phase_similarity``'s (B, K, K), over valid bins."""
    valid = mask[:, :, None] & mask[:, None, :]
    diagonal = np.array([np.diag(m)[v].mean() for m, v in zip(similarity, mask, strict=True)])
    off = np.array([m[vv & ~np.eye(len(m), dtype=bool)].mean() for m, vv in zip(similarity, valid, strict=True)])
    return float(diagonal.mean()), float(off.mean())


def heart_rate_probe(embeddings: dict[tuple[str, int], np.ndarray], cache: Cache) -> pd.DataFrame:
    """How well each ECG embedding encodes heart rate: test R² of a ridge probe (fitted on train, the probe of
    ``probing.fit_ridge``) from the embedding to the heart rate of the cached R peaks (60 / median RR).

    Heart rate shortens systole (Weissler), so it predicts time-to-ES on any cohort whose hearts share the ECG's
    rate, the null twin included: a local loss that makes the embedding encode the beat timing can gain on the
    temporal phenotypes without any electromechanical coupling. This table tells that channel apart.
    embeddings: {(method, seed): (N, D) in cache order}. Returns rows method, seed, r2.
    """

    rate = ecg_heart_rate(cache)
    split = cache.index.split.to_numpy()
    train, test = (split == "train") & np.isfinite(rate), (split == "test") & np.isfinite(rate)
    rows = []
    for (method, seed), x in embeddings.items():
        if len(x) != len(rate) or train.sum() < 5 or test.sum() < 2:
            continue
        predicted = fit_ridge(x[train], rate[train]).predict(x[test])
        r2 = 1.0 - float(np.mean((predicted - rate[test]) ** 2) / np.var(rate[test]))
        rows.append({"method": method, "seed": seed, "r2": r2})
    return pd.DataFrame(rows, columns=["method", "seed", "r2"])
