"""What each method optimises (METHOD.md §4-5): the model and the loss of a method, as one module whose
``forward(batch) -> (loss, parts)`` the training loop calls.

Methods (``ptacl_core.methods``): ``mae_ecg``, ``mae_cmr`` (unimodal masked autoencoding), ``global``
(MMCL-like, lambda = 0), ``local`` (temporal term only), ``ptacl`` (global + lambda * local) and its variants
(``ptacl_cross``, ``ptacl_sham``, ``ptacl_noaug``, ``ptacl_mae``), ``supervised``
(ECG -> standardised phenotypes, the reference).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ptacl_core.model.encoders import MaskedAutoencoder, PTACLModel
from ptacl_core.model.losses import PTACLLoss, sham_rpeaks
from ptacl_core.phenotypes import PHENOTYPES
from ptacl_core.preprocessing.cache import Cache
from ptacl_core.training.config import TrainConfig


class Supervised(nn.Module):
    """ECG encoder + linear head -> the ten phenotypes, standardised (the supervised reference)."""

    def __init__(self, model: PTACLModel, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.ecg_encoder = model.ecg_encoder
        self.head = nn.Linear(model.config.ecg.dim, len(PHENOTYPES))
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, ecg: torch.Tensor, phenotypes: torch.Tensor) -> torch.Tensor:
        """ecg (B, 12, L), phenotypes (B, 10) with NaN where unknown -> mean squared error over known labels."""
        _, pooled = self.ecg_encoder(ecg)
        target = (phenotypes - self.mean) / self.std
        known = torch.isfinite(target)
        error = (self.head(pooled) - torch.nan_to_num(target)) ** 2
        return (error * known).sum() / known.sum().clamp_min(1)


def phenotype_stats(cache: Cache) -> tuple[torch.Tensor, torch.Tensor]:
    """(10,) mean and SD of each phenotype over the training split (the supervised target's scaling)."""
    values = cache.phenotypes()[cache.index.split.to_numpy() == "train"]
    mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
    return torch.tensor(np.nan_to_num(mean), dtype=torch.float32), torch.tensor(np.nan_to_num(std, nan=1.0) + 1e-6, dtype=torch.float32)


class Objective(nn.Module):
    """The trained module of a method: ``forward(batch) -> (loss, parts)``; ``model`` is the PTACLModel."""

    def __init__(self, config: TrainConfig, fs: float, phenotype_stats: tuple[torch.Tensor, torch.Tensor],
                 soft_sigma: float | None = None):
        """soft_sigma: the soft-target sigma when ``loss.soft_targets`` is on and ``loss.soft_sigma`` is None (the
        trainer passes the geometry's, ``ptacl_core.model.geometry``); one-hot targets when it stays None."""
        super().__init__()
        self.method, self.fs = config.method, fs
        self.model = PTACLModel(config.model)
        loss = config.loss
        self.num_bins = loss.num_bins
        self.local_variant = config.local_variant
        sigma = (loss.soft_sigma if loss.soft_sigma is not None else soft_sigma) if loss.soft_targets else None
        if config.method == "mae_ecg":
            self.mae = MaskedAutoencoder(self.model.ecg_encoder, loss.mask_ratio)
        elif config.method == "mae_cmr":
            self.mae = MaskedAutoencoder(self.model.cmr_encoder, loss.mask_ratio)
        elif config.method == "supervised":
            self.supervised = Supervised(self.model, *phenotype_stats)
        else:
            self.loss = PTACLLoss(
                temperature=loss.temperature, alpha=loss.alpha, lam=0.0 if config.method == "global" else loss.lam,
                local_temperature=loss.local_temperature, soft_sigma=sigma,
                global_weight=0.0 if config.method == "local" else 1.0, learnable_temperature=loss.learnable_temperature,
                gather=True, local_variant=self.local_variant,
            )

    @property
    def uses_every_parameter(self) -> bool:
        """Whether every parameter gets a gradient each step (DDP must otherwise look for unused ones): only when
        both contrastive terms are on. Global-only leaves the token norms unused, local-only the pooling norms,
        MAE and supervised the other encoder."""
        return hasattr(self, "loss") and self.loss.global_weight > 0 and self.loss.lam > 0

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        if self.method == "mae_ecg":
            return self.mae(batch["ecg"]), {}
        if self.method == "mae_cmr":
            return self.mae(batch["cmr"]), {}
        if self.method == "supervised":
            return self.supervised(batch["ecg"], batch["phenotypes"]), {}
        return self.loss(*self.features(batch, local=self.loss.uses_local))

    def features(self, batch: dict, local: bool = True):
        """The contrastive features of a batch as the loss sees them (``PTACLModel.phase_embeddings``); the sham
        arm's phases come from another patient's R peaks (``losses.sham_rpeaks``)."""
        if local and self.local_variant == "sham":
            batch = {**batch, "rpeaks": sham_rpeaks(batch["rpeaks"])}
        return self.model.phase_embeddings(batch, self.fs, self.num_bins if local else None)
