"""Quick frozen-encoder checks used while training (notebook 02): test R² of a ridge probe per phenotype, and
the K x K phase alignment of ECG segments and CMR frames that the local loss shapes. The full comparison
(intervals, label fractions, retrieval) is ``probing``, ``retrieval`` and ``comparison``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import r2_score
from torch.utils.data import DataLoader

from ptacl_core.dataset import CacheDataset
from ptacl_core.embeddings import cache_embeddings, cache_phenotypes
from ptacl_core.encoders import PTACLModel
from ptacl_core.phenotypes import PHENOTYPES
from ptacl_core.preprocessing.cache import Cache
from ptacl_core.probing import fit_ridge


def ridge_probe_r2(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    """Test R² of a ridge regression (standardised inputs, penalty chosen by CV on train); unknown labels skipped."""
    known_train, known_test = np.isfinite(train_y), np.isfinite(test_y)
    probe = fit_ridge(train_x[known_train], train_y[known_train])
    return float(r2_score(test_y[known_test], probe.predict(test_x[known_test])))


def probe_phenotypes(model: PTACLModel, cache: Cache, phenotypes=("LVEF_pct", "LVEDV_mL"), device: str = "cpu",
                     store: Path | str | None = None) -> dict[str, float]:
    """Test R² of a ridge probe on frozen ECG embeddings, per phenotype (embeddings cached as notebook 03 does)."""
    embedding = cache_embeddings(model, cache, "ecg", store, device=device)
    values, splits = cache_phenotypes(cache), cache.index.split.to_numpy()
    train, test = splits == "train", splits == "test"
    return {name: ridge_probe_r2(embedding[train], values[train, PHENOTYPES.index(name)], embedding[test],
                                 values[test, PHENOTYPES.index(name)]) for name in phenotypes}


@torch.no_grad()
def phase_similarity(model: PTACLModel, batch: dict, fs: float, num_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity of each patient's projected ECG segments and CMR frames, phase bin by phase bin.

    Returns (B, K, K) similarities (row: ECG phase bin, column: CMR phase bin) and the (B, K) valid mask:
    the picture of what the local loss does (a bright diagonal = segments matched to their own phase).
    """
    from ptacl_core.losses import PTACLLoss

    model = model.eval()
    ecg_tokens, _ = model.ecg_encoder(batch["ecg"])
    cmr_tokens, _ = model.cmr_encoder(batch["cmr"])
    times = model.ecg_encoder.token_times_s(batch["ecg"].shape[-1], fs)
    segments, frames, mask = PTACLLoss(num_bins=num_bins).phase_bins(
        ecg_tokens, times, batch["rpeaks"], fs, cmr_tokens, model.config.cmr.tubelet_frames, batch["cmr"].shape[-3])
    u_ecg = torch.nn.functional.normalize(model.ecg_head(segments), dim=-1)
    u_cmr = torch.nn.functional.normalize(model.cmr_head(frames), dim=-1)
    return (u_ecg @ u_cmr.transpose(1, 2)).numpy(), mask.numpy()


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
