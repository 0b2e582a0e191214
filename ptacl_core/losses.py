"""PTACL losses (METHOD.md §4): a global patient-level contrastive loss and a local temporal loss.

Losses take features, not models (as open_clip's ``ClipLoss``): the model owns the encode -> project ->
normalise chain once (``PTACLModel.phase_embeddings``), and the losses see only its tensors. Shapes: B patients,
K phase bins, d embedding size. No Python loop over patients or bins.

Functional API first (``global_contrastive_loss``, ``local_temporal_loss``), then the modules that wrap them
(``GlobalContrastiveLoss``, ``LocalTemporalLoss``, ``PTACLLoss``). Under DDP the global loss, built with
``gather=True``, concatenates the features of every process *with gradients*
(``torch.distributed.nn.functional.all_gather``) in training mode; every process then computes the loss of
the whole global batch, and DDP's gradient averaging makes the result equal to one process holding the whole
batch. In eval mode each process scores its own batch (evaluation, where every process sees the same batches).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def gather_features(features: torch.Tensor) -> torch.Tensor:
    """Concatenate (B, d) features from every process of the default group, keeping gradients; identity
    without a process group or with one process."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return features
    if torch.distributed.get_world_size() == 1:
        return features
    import warnings

    from torch.distributed.nn.functional import all_gather

    # torch 2.13 marks this autograd-aware gather deprecated in favour of a private module; it is still the
    # public API (open_clip's too), so keep it and keep the logs quiet.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.cat(all_gather(features), dim=0)


def _world_size() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


def global_contrastive_loss(z_ecg: torch.Tensor, z_cmr: torch.Tensor, temperature: float | torch.Tensor = 0.1,
                            alpha: float = 0.5) -> torch.Tensor:
    """Symmetric InfoNCE over the batch. z_ecg, z_cmr: (B, d), L2-normalised, row i = patient i.

    loss = alpha * CE(z_e z_c^T / tau, diag) + (1 - alpha) * CE(z_c z_e^T / tau, diag), over the rows given
    (``GlobalContrastiveLoss(gather=True)`` gathers them across DDP processes first).
    """
    logits = z_ecg @ z_cmr.T / temperature
    targets = torch.arange(logits.shape[0], device=logits.device)
    return alpha * F.cross_entropy(logits, targets) + (1.0 - alpha) * F.cross_entropy(logits.T, targets)


def _circular_soft_targets(num_bins: int, sigma: float, device, dtype) -> torch.Tensor:
    """(K, K) circular Gaussian over phase distance (sigma in cycle fractions); rows not normalised."""
    index = torch.arange(num_bins, device=device, dtype=dtype)
    distance = torch.abs(index[:, None] - index[None, :])
    distance = torch.minimum(distance, num_bins - distance) / num_bins
    return torch.exp(-0.5 * (distance / sigma) ** 2)


def local_temporal_loss(u_ecg: torch.Tensor, u_cmr: torch.Tensor, mask: torch.Tensor, temperature: float = 0.1,
                        soft_sigma: float | None = None) -> torch.Tensor:
    """Per patient, a K x K InfoNCE between ECG segments and CMR frames of the same phase, both directions.

    u_ecg, u_cmr: (B, K, d) L2-normalised phase-bin embeddings; mask: (B, K) bool, bins valid in both
    modalities (invalid bins are neither anchors nor candidates). soft_sigma: if given, targets are a
    circular Gaussian over neighbouring phases (sigma as a fraction of the cycle) instead of one-hot.
    Returns the mean over patients and valid bins of 0.5 * (CE(row k) + CE(column k)).
    """
    similarity = u_ecg @ u_cmr.transpose(1, 2) / temperature  # (B, K, K): [i, k, j] = <u_e(i,k), u_c(i,j)>
    num_bins = similarity.shape[-1]
    pair_mask = mask.unsqueeze(2) & mask.unsqueeze(1)  # (B, K, K) both bins valid
    if soft_sigma is None:
        targets = torch.eye(num_bins, device=similarity.device, dtype=similarity.dtype).expand_as(similarity)
    else:
        targets = _circular_soft_targets(num_bins, soft_sigma, similarity.device, similarity.dtype).expand_as(similarity)
    targets = targets * pair_mask
    targets = targets / targets.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    targets_t = (targets.transpose(1, 2) * pair_mask)
    targets_t = targets_t / targets_t.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    very_negative = torch.finfo(similarity.dtype).min / 4
    masked = similarity.masked_fill(~pair_mask, very_negative)
    row_loss = -(targets * F.log_softmax(masked, dim=-1)).sum(-1)  # (B, K): ECG bin k vs all CMR bins
    column_loss = -(targets_t * F.log_softmax(masked.transpose(1, 2), dim=-1)).sum(-1)  # CMR bin k vs ECG bins
    per_bin = 0.5 * (row_loss + column_loss)
    valid = mask.to(per_bin.dtype)
    return (per_bin * valid).sum() / valid.sum().clamp_min(1.0)


class GlobalContrastiveLoss(nn.Module):
    """``global_contrastive_loss`` with a fixed or learnable temperature (log-parameterised and clamped,
    like CLIP's logit scale: tau >= 0.01).

    gather: under DDP, in training mode, compute the loss over the features of every process of the default
    process group (its world size read at each call); in eval mode, over this process's batch.
    """

    def __init__(self, temperature: float = 0.1, alpha: float = 0.5, learnable_temperature: bool = False,
                 gather: bool = True):
        super().__init__()
        self.alpha = alpha
        self.gather = gather
        log_scale = torch.tensor(math.log(1.0 / temperature))
        if learnable_temperature:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    @property
    def temperature(self) -> torch.Tensor:
        return 1.0 / self.log_scale.clamp(max=math.log(100.0)).exp()

    def forward(self, z_ecg: torch.Tensor, z_cmr: torch.Tensor) -> torch.Tensor:
        """z_ecg, z_cmr: (B, d) L2-normalised projections of the pooled embeddings -> scalar loss."""
        if self.gather and self.training and _world_size() > 1:
            z_ecg, z_cmr = gather_features(z_ecg), gather_features(z_cmr)
        return global_contrastive_loss(z_ecg, z_cmr, self.temperature, self.alpha)


class LocalTemporalLoss(nn.Module):
    """``local_temporal_loss``: per patient, ECG phase segments against CMR phase frames (K x K)."""

    def __init__(self, temperature: float = 0.1, soft_sigma: float | None = None):
        super().__init__()
        self.temperature, self.soft_sigma = temperature, soft_sigma

    def forward(self, u_ecg: torch.Tensor, u_cmr: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """u_ecg, u_cmr: (B, K, d) L2-normalised phase-bin projections; mask: (B, K) bool -> scalar loss."""
        return local_temporal_loss(u_ecg, u_cmr, mask, self.temperature, self.soft_sigma)


class PTACLLoss(nn.Module):
    """L = global_weight * L_global + lam * L_local (METHOD.md §4); lam = 0 is the global-only (MMCL-like)
    baseline, global_weight = 0 the local-only one.

    forward takes the model's features (``PTACLModel.phase_embeddings``): z_ecg, z_cmr (B, d) and, when the
    local term is on, u_ecg, u_cmr (B, K, d) and mask (B, K). Returns (total, parts): the detached terms.
    """

    def __init__(self, temperature: float = 0.1, alpha: float = 0.5, lam: float = 1.0, local_temperature: float = 0.1,
                 soft_sigma: float | None = None, global_weight: float = 1.0, learnable_temperature: bool = False,
                 gather: bool = True):
        super().__init__()
        self.lam, self.global_weight = lam, global_weight
        self.global_loss = GlobalContrastiveLoss(temperature, alpha, learnable_temperature, gather)
        self.local_loss = LocalTemporalLoss(local_temperature, soft_sigma)

    @property
    def uses_local(self) -> bool:
        return self.lam > 0

    def forward(self, z_ecg: torch.Tensor, z_cmr: torch.Tensor, u_ecg: torch.Tensor | None = None,
                u_cmr: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        zero = z_ecg.new_zeros(())
        global_term = local_term = zero
        if self.global_weight > 0:
            global_term = self.global_loss(z_ecg, z_cmr)
        if self.lam > 0:
            if u_ecg is None or u_cmr is None or mask is None:
                raise ValueError("the local term needs phase-bin features: PTACLModel.phase_embeddings(batch, fs, num_bins)")
            local_term = self.local_loss(u_ecg, u_cmr, mask)
        total = self.global_weight * global_term + self.lam * local_term
        return total, {"global": global_term.detach(), "local": local_term.detach()}
