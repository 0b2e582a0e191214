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
import warnings

import torch
import torch.nn.functional as F
from torch import nn


def gather_features(features: torch.Tensor) -> torch.Tensor:
    """Concatenate (B, ...) features from every process of the default group, keeping gradients; identity
    without a process group or with one process."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return features
    if torch.distributed.get_world_size() == 1:
        return features
    from torch.distributed.nn.functional import all_gather  # lazy: needs torch built with distributed (only under DDP)

    # torch 2.13 marks this autograd-aware gather deprecated in favour of a private module; it is still the
    # public API (open_clip's too), so keep it and keep the logs quiet.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return _ContiguousGradient.apply(torch.cat(all_gather(features), dim=0))


class _ContiguousGradient(torch.autograd.Function):
    """Identity whose backward makes the gradient contiguous: gloo's all-to-all (the gather's backward on CPU)
    reads the raw buffer, so a strided gradient (e.g. from an einsum over (B, K, d) features) would be scrambled."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, gradient: torch.Tensor) -> torch.Tensor:
        return gradient.contiguous()


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


LOCAL_VARIANTS = ("per_patient", "cross_patient", "sham")


def _normalised_targets(num_bins: int, soft_sigma: float | None, pair_mask: torch.Tensor) -> torch.Tensor:
    """(B, K, K) targets of the own-patient block: one-hot or circular Gaussian, restricted to valid pairs,
    rows summing to 1 (all-zero rows for invalid anchors)."""
    if soft_sigma is None:
        base = torch.eye(num_bins, device=pair_mask.device, dtype=torch.float32)
    else:
        base = _circular_soft_targets(num_bins, soft_sigma, pair_mask.device, torch.float32)
    targets = base.expand(pair_mask.shape) * pair_mask
    return targets / targets.sum(dim=-1, keepdim=True).clamp_min(1e-12)


def _soft_cross_entropy(logits: torch.Tensor, valid: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-sum(targets * log_softmax(logits over valid entries)) over the last axis; invalid entries never count."""
    very_negative = torch.finfo(logits.dtype).min / 4
    log_p = F.log_softmax(logits.masked_fill(~valid, very_negative), dim=-1)
    return -(targets.to(log_p.dtype) * log_p.masked_fill(~valid, 0.0)).sum(-1)


def local_temporal_loss(u_ecg: torch.Tensor, u_cmr: torch.Tensor, mask: torch.Tensor, temperature: float = 0.1,
                        soft_sigma: float | None = None, variant: str = "per_patient") -> torch.Tensor:
    """The local temporal loss: ECG phase segments against CMR phase frames, both directions (METHOD.md §4).

    u_ecg, u_cmr: (B, K, d) L2-normalised phase-bin embeddings; mask: (B, K) bool, bins valid in both
    modalities (invalid bins are neither anchors nor candidates). soft_sigma: if given, targets over the
    patient's own phases are a circular Gaussian (sigma as a fraction of the cycle) instead of one-hot.

    variant ``per_patient`` (and ``sham``, which differs only in the phases it is given): for each patient a
    K x K InfoNCE, ECG segment k against the patient's own CMR frames. ``cross_patient``: ECG segment (i, k)
    against the K CMR frames of patient i *and* the CMR frame of phase k of every other patient in the batch
    (and CMR frame (i, k) against the ECG segments likewise): the other patients' same phase is a negative, so a
    phase clock shared by all patients cannot solve it.
    Returns the mean over patients and valid bins of 0.5 * (CE(ECG anchor) + CE(CMR anchor)).
    """
    per_bin = _per_bin_loss(u_ecg, u_cmr, mask, temperature, soft_sigma, variant)
    valid = mask.to(per_bin.dtype)
    return (per_bin * valid).sum() / valid.sum().clamp_min(1.0)


def _per_bin_loss(u_ecg: torch.Tensor, u_cmr: torch.Tensor, mask: torch.Tensor, temperature: float,
                  soft_sigma: float | None, variant: str) -> torch.Tensor:
    """(B, K) 0.5 * (CE(ECG anchor) + CE(CMR anchor)) of each bin (meaningless where ``mask`` is False)."""
    if variant not in LOCAL_VARIANTS:
        raise ValueError(f"local variant must be one of {LOCAL_VARIANTS}, got {variant!r}")
    own = u_ecg @ u_cmr.transpose(1, 2) / temperature  # (B, K, K): [i, k, j] = <u_e(i,k), u_c(i,j)>
    num_bins = own.shape[-1]
    pair_mask = mask.unsqueeze(2) & mask.unsqueeze(1)  # (B, K, K) both bins valid
    targets = _normalised_targets(num_bins, soft_sigma, pair_mask)
    targets_t = _normalised_targets(num_bins, soft_sigma, pair_mask.transpose(1, 2))
    if variant == "cross_patient":
        batch = own.shape[0]
        cross = torch.einsum("ikd,jkd->ikj", u_ecg, u_cmr) / temperature  # (B, K, B): [i, k, j] = <u_e(i,k), u_c(j,k)>
        others = ~torch.eye(batch, dtype=torch.bool, device=mask.device)  # (B, B): j != i
        cross_mask = mask.unsqueeze(2) & mask.T.unsqueeze(0) & others.unsqueeze(1)  # (B, K, B)
        no_target = cross.new_zeros(cross.shape)
        row_loss = _soft_cross_entropy(torch.cat([own, cross], -1), torch.cat([pair_mask, cross_mask], -1),
                                       torch.cat([targets, no_target], -1))
        cross_t = torch.einsum("ikd,jkd->ikj", u_cmr, u_ecg) / temperature  # [i, k, j] = <u_c(i,k), u_e(j,k)>
        column_loss = _soft_cross_entropy(torch.cat([own.transpose(1, 2), cross_t], -1),
                                          torch.cat([pair_mask.transpose(1, 2), cross_mask], -1),
                                          torch.cat([targets_t, no_target], -1))
    else:
        row_loss = _soft_cross_entropy(own, pair_mask, targets)  # (B, K): ECG bin k vs the patient's CMR bins
        column_loss = _soft_cross_entropy(own.transpose(1, 2), pair_mask.transpose(1, 2), targets_t)  # CMR bin k
    return 0.5 * (row_loss + column_loss)


def sham_rpeaks(rpeaks: torch.Tensor) -> torch.Tensor:
    """The ``sham`` arm's R peaks: patient i gets patient (i - 1)'s (a cyclic shift of the batch, so no patient
    keeps its own when B >= 2). rpeaks: (B, R) samples, -1 padded."""
    return rpeaks.roll(1, dims=0)


def phase_clock_margin(u_ecg: torch.Tensor, u_cmr: torch.Tensor, mask: torch.Tensor, temperature: float = 0.1
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Phase-clock margin (METHOD.md §4): the per-patient local loss of each ECG scored against *another*
    patient's CMR (patient i against i - 1, cyclically) minus against its own, for every variant alike.

    Both are scored on the bins valid for both patients (fewer candidates alone would lower a loss). Returns (own,
    other) per-patient losses, (B,) each (NaN where a patient has no such bin); the margin is ``other - own``: about
    0 when the local features carry no patient information (a phase clock).
    """
    joint = mask & mask.roll(1, dims=0)
    return _per_patient_loss(u_ecg, u_cmr, joint, temperature), _per_patient_loss(u_ecg, u_cmr.roll(1, dims=0), joint, temperature)


def _per_patient_loss(u_ecg: torch.Tensor, u_cmr: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """(B,) per-patient one-hot K x K local loss (mean over the patient's valid bins; NaN when it has none)."""
    per_bin = _per_bin_loss(u_ecg, u_cmr, mask, temperature, None, "per_patient")
    valid = mask.to(per_bin.dtype)
    count = valid.sum(-1)
    return torch.where(count > 0, (per_bin * valid).sum(-1) / count.clamp_min(1.0), torch.full_like(count, float("nan")))


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
    """``local_temporal_loss`` of one variant. The ``cross_patient`` variant uses the other patients of the
    batch as negatives, so with ``gather=True`` under DDP, in training mode, it gathers every process's features
    first (as the global loss does); the per-patient variants need no gathering."""

    def __init__(self, temperature: float = 0.1, soft_sigma: float | None = None, variant: str = "per_patient",
                 gather: bool = True):
        super().__init__()
        if variant not in LOCAL_VARIANTS:
            raise ValueError(f"local variant must be one of {LOCAL_VARIANTS}, got {variant!r}")
        self.temperature, self.soft_sigma, self.variant, self.gather = temperature, soft_sigma, variant, gather

    def forward(self, u_ecg: torch.Tensor, u_cmr: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """u_ecg, u_cmr: (B, K, d) L2-normalised phase-bin projections; mask: (B, K) bool -> scalar loss."""
        if self.variant == "cross_patient" and self.gather and self.training and _world_size() > 1:
            u_ecg, u_cmr = gather_features(u_ecg), gather_features(u_cmr)
            mask = gather_features(mask.to(u_ecg.dtype)) > 0.5
        return local_temporal_loss(u_ecg, u_cmr, mask, self.temperature, self.soft_sigma, self.variant)


class PTACLLoss(nn.Module):
    """L = global_weight * L_global + lam * L_local (METHOD.md §4); lam = 0 is the global-only (MMCL-like)
    baseline, global_weight = 0 the local-only one.

    forward takes the model's features (``PTACLModel.phase_embeddings``): z_ecg, z_cmr (B, d) and, when the
    local term is on, u_ecg, u_cmr (B, K, d) and mask (B, K). Returns (total, parts): the detached terms.
    """

    def __init__(self, temperature: float = 0.1, alpha: float = 0.5, lam: float = 1.0, local_temperature: float = 0.1,
                 soft_sigma: float | None = None, global_weight: float = 1.0, learnable_temperature: bool = False,
                 gather: bool = True, local_variant: str = "per_patient"):
        super().__init__()
        self.lam, self.global_weight = lam, global_weight
        self.global_loss = GlobalContrastiveLoss(temperature, alpha, learnable_temperature, gather)
        self.local_loss = LocalTemporalLoss(local_temperature, soft_sigma, local_variant, gather)

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
