"""Frozen-encoder evaluation used during training and in the comparison (METHOD.md §5, first part):
batched no-grad ECG embedding extraction and a ridge probe per phenotype (penalty by cross-validation on
train), scored by R² on test."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader

from ptacl_core.dataset import CacheDataset
from ptacl_core.encoders import PTACLModel
from ptacl_core.phenotypes import PHENOTYPES
from ptacl_core.preprocessing.cache import Cache


@torch.no_grad()
def ecg_embeddings(model: PTACLModel, cache: Cache, split: str | None, batch_size: int = 64,
                   device: str = "cpu") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Pooled, pre-projection ECG embeddings of a split. Returns (N, D) embeddings, (N, 10) phenotypes and ids."""
    model = model.to(device).eval()
    embeddings, phenotypes, ids = [], [], []
    for batch in DataLoader(CacheDataset(cache, split, None), batch_size=batch_size, shuffle=False):
        _, pooled = model.ecg_encoder(batch["ecg"].to(device))
        embeddings.append(pooled.float().cpu().numpy())
        phenotypes.append(batch["phenotypes"].numpy())
        ids.extend(batch["subject_id"])
    return np.concatenate(embeddings), np.concatenate(phenotypes), ids


RIDGE_ALPHAS = np.logspace(-3, 4, 15)


def ridge_probe_r2(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                   alphas: np.ndarray = RIDGE_ALPHAS) -> float:
    """Test R² of a ridge regression (standardised inputs, penalty chosen by CV on train)."""
    known_train, known_test = np.isfinite(train_y), np.isfinite(test_y)
    probe = make_pipeline(StandardScaler(), RidgeCV(alphas=alphas))
    probe.fit(train_x[known_train], train_y[known_train])
    return float(r2_score(test_y[known_test], probe.predict(test_x[known_test])))


def probe_phenotypes(model: PTACLModel, cache: Cache, phenotypes=("LVEF_pct", "LVEDV_mL"), device: str = "cpu") -> dict[str, float]:
    """Test R² of a ridge probe on frozen ECG embeddings, per phenotype."""
    train_x, train_y, _ = ecg_embeddings(model, cache, "train", device=device)
    test_x, test_y, _ = ecg_embeddings(model, cache, "test", device=device)
    return {name: ridge_probe_r2(train_x, train_y[:, PHENOTYPES.index(name)], test_x, test_y[:, PHENOTYPES.index(name)])
            for name in phenotypes}


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
