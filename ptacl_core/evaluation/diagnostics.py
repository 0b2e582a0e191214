"""Quick frozen-encoder checks used while training (notebook 02): test R² of a ridge probe per phenotype (the
probe of ``probing``, all training labels, no intervals), and the K x K phase alignment of ECG segments and CMR
frames that the local loss shapes. The full comparison, with intervals and verdicts, is ``comparison``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from ptacl_core.dataset import CacheDataset
from ptacl_core.encoders import PTACLModel
from ptacl_core.evaluation.embeddings import cache_embeddings
from ptacl_core.evaluation.probing import ProbeConfig, probe_methods
from ptacl_core.phenotypes import EVALUATED
from ptacl_core.preprocessing.cache import Cache

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
