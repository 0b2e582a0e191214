"""What each method optimises (METHOD.md §4-5): one ``Objective`` class per kind of loss, registered by the name
a method's record gives (``ptacl_core.methods.Method.objective``), each a module whose ``forward(batch) ->
(loss, parts)`` the training loop calls and whose ``model`` is the PTACLModel.

- ``masked_autoencoding`` (``MaskedAutoencoding``): unimodal MAE of the one encoder the method trains
  (``mae_ecg``, ``mae_cmr``).
- ``contrastive`` (``Contrastive``): global_weight * L_global + local_weight * lambda * L_local with the method's
  weights (``global``: local weight 0, MMCL-like; ``local``: global weight 0; ``ptacl`` and its variants
  ``ptacl_cross``, ``ptacl_sham``, ``ptacl_noaug``, ``ptacl_mae``: both 1) and lambda = the config's ``loss.lam``.
- ``supervised`` (``Supervised``): ECG -> standardised phenotypes, the reference.

``build_objective(config, ...)`` builds the method's one. The submodule names (``model``, ``mae``, ``loss``,
``supervised``) are the checkpoint's keys (``ptacl_core.training.runs``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ptacl_core.methods import METHODS
from ptacl_core.model.encoders import ContrastiveFeatures, MaskedAutoencoder, PTACLModel
from ptacl_core.model.losses import PTACLLoss, phase_clock_margin, sham_rpeaks
from ptacl_core.phenotypes import PHENOTYPES
from ptacl_core.preprocessing.cache import Cache
from ptacl_core.training.config import TrainConfig


def phenotype_stats(cache: Cache) -> tuple[torch.Tensor, torch.Tensor]:
    """(10,) mean and SD of each phenotype over the training split (the supervised target's scaling)."""
    values = cache.phenotypes()[cache.index.split.to_numpy() == "train"]
    mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
    return torch.tensor(np.nan_to_num(mean), dtype=torch.float32), torch.tensor(np.nan_to_num(std, nan=1.0) + 1e-6, dtype=torch.float32)


def local_weight(config: TrainConfig) -> float:
    """The weight of the local temporal term in this run's loss: the method's local weight times ``loss.lam``
    (exactly 0 for a method without a local term, whatever ``loss.lam``)."""
    weight = METHODS[config.method].local_weight
    return weight * config.loss.lam if weight else 0.0


class Objective(nn.Module):
    """The trained module of a method: ``forward(batch) -> (loss, parts)``; ``model`` is the PTACLModel. Every
    objective takes (config, fs, phenotype_stats, soft_sigma) and uses what it needs."""

    def __init__(self, config: TrainConfig):
        super().__init__()
        self.model = PTACLModel(config.model)

    @property
    def uses_every_parameter(self) -> bool:
        """Whether every parameter gets a gradient each step (DDP must otherwise look for unused ones)."""
        return False

    def validation_loss(self, batch: dict) -> tuple[torch.Tensor, ContrastiveFeatures | None]:
        """(loss, the contrastive features or None) of a validation batch (``validation``)."""
        return self(batch)[0], None


class MaskedAutoencoding(Objective):
    """Masked autoencoding of the one encoder the method trains (``Method.trains``: "ecg" or "cmr"); that encoder's
    batch entry, (B, 12, L) or (B, T, H, W), is masked at ``loss.mask_ratio`` and reconstructed."""

    def __init__(self, config: TrainConfig, fs: float, phenotype_stats: tuple[torch.Tensor, torch.Tensor],
                 soft_sigma: float | None = None):
        super().__init__(config)
        (self.modality,) = METHODS[config.method].trains
        if self.modality == "ecg" and config.model.ecg.architecture != "vit":
            raise ValueError(f"method {config.method}: masked autoencoding masks ViT tokens; model.ecg.architecture "
                             f"{config.model.ecg.architecture!r} has none (use the ViT for MAE runs)")
        self.mae = MaskedAutoencoder(getattr(self.model, f"{self.modality}_encoder"), config.loss.mask_ratio)

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        return self.mae(batch[self.modality]), {}


class SupervisedHead(nn.Module):
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


class Supervised(Objective):
    """The supervised reference: ``SupervisedHead`` on the batch's ECG and phenotypes (``phenotype_stats`` scale them)."""

    def __init__(self, config: TrainConfig, fs: float, phenotype_stats: tuple[torch.Tensor, torch.Tensor],
                 soft_sigma: float | None = None):
        super().__init__(config)
        self.supervised = SupervisedHead(self.model, *phenotype_stats)

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        return self.supervised(batch["ecg"], batch["phenotypes"]), {}


class Contrastive(Objective):
    """global_weight * L_global + local_weight * loss.lam * L_local (``PTACLLoss``) with the method's weights
    (``Method.global_weight``, ``Method.local_weight``) and local variant (``TrainConfig.local_variant``)."""

    def __init__(self, config: TrainConfig, fs: float, phenotype_stats: tuple[torch.Tensor, torch.Tensor],
                 soft_sigma: float | None = None):
        """soft_sigma: the soft-target sigma when ``loss.soft_targets`` is on and ``loss.soft_sigma`` is None (the
        trainer passes the geometry's, ``ptacl_core.model.geometry``); one-hot targets when it stays None."""
        super().__init__(config)
        loss = config.loss
        self.fs, self.num_bins, self.local_variant = fs, loss.num_bins, config.local_variant
        sigma = (loss.soft_sigma if loss.soft_sigma is not None else soft_sigma) if loss.soft_targets else None
        self.loss = PTACLLoss(
            temperature=loss.temperature, alpha=loss.alpha, lam=local_weight(config),
            local_temperature=loss.local_temperature, soft_sigma=sigma,
            global_weight=METHODS[config.method].global_weight, learnable_temperature=loss.learnable_temperature,
            gather=True, local_variant=self.local_variant,
        )

    @property
    def uses_every_parameter(self) -> bool:
        """Only when both terms are on: global-only leaves the token norms unused, local-only the pooling norms."""
        return self.loss.global_weight > 0 and self.loss.lam > 0

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        return self.loss(*self.features(batch, local=self.loss.uses_local))

    def features(self, batch: dict, local: bool = True) -> ContrastiveFeatures:
        """The contrastive features of a batch as the loss sees them (``PTACLModel.phase_embeddings``); the sham
        arm's phases come from another patient's R peaks (``losses.sham_rpeaks``)."""
        if local and self.local_variant == "sham":
            batch = {**batch, "rpeaks": sham_rpeaks(batch["rpeaks"])}
        return self.model.phase_embeddings(batch, self.fs, self.num_bins if local else None)

    def validation_loss(self, batch: dict) -> tuple[torch.Tensor, ContrastiveFeatures]:
        """Encoded once with the true R peaks, which both the loss and the phase-clock margin use (the sham arm's
        loss needs its own phases). Eval mode: each process scores its own batch (no DDP gather)."""
        features = self.model.phase_embeddings(batch, self.fs, self.num_bins)
        loss = self(batch)[0] if self.local_variant == "sham" else self.loss(*features)[0]
        return loss, features

    def phase_clock_margin(self, features: ContrastiveFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        """(own, other) per-patient local losses, (B,) each (``losses.phase_clock_margin``), in float32."""
        return phase_clock_margin(features.u_ecg.float(), features.u_cmr.float(), features.mask,
                                  self.loss.local_loss.temperature)


OBJECTIVES: dict[str, type[Objective]] = {
    "masked_autoencoding": MaskedAutoencoding,
    "contrastive": Contrastive,
    "supervised": Supervised,
}


def build_objective(config: TrainConfig, fs: float, phenotype_stats: tuple[torch.Tensor, torch.Tensor],
                    soft_sigma: float | None = None) -> Objective:
    """The objective the config's method names (``Method.objective``), its model initialised from torch's RNG.
    fs: the cache's ECG rate in Hz; phenotype_stats: ``phenotype_stats(cache)``; soft_sigma: see ``Contrastive``."""
    name = METHODS[config.method].objective
    if name not in OBJECTIVES:
        raise ValueError(f"method {config.method!r} names objective {name!r}, not one of {sorted(OBJECTIVES)}")
    return OBJECTIVES[name](config, fs, phenotype_stats, soft_sigma)
