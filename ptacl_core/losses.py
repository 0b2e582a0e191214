"""PTACL losses (METHOD.md §4): a global patient-level contrastive loss and a local temporal loss.

Functional API first (``global_contrastive_loss``, ``phase_bin_assignment``, ``local_temporal_loss``,
``ecg_token_phases``, ``cmr_frame_assignment``), then modules that wrap them (``GlobalContrastiveLoss``,
``PTACLLoss``). Shapes: B patients, N tokens, K phase bins, d embedding size. No Python loop over patients
or bins: everything is a batched matrix product.

Under DDP the global loss gathers features from every process *with gradients*
(``torch.distributed.nn.functional.all_gather``); every process then computes the loss of the whole global
batch, and DDP's gradient averaging makes the result equal to one process holding the whole batch.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

_GATHER = True


@contextlib.contextmanager
def local_features():
    """Within this block the global loss uses this process's batch only (e.g. evaluation, where every
    process scores the same batches)."""
    global _GATHER
    previous, _GATHER = _GATHER, False
    try:
        yield
    finally:
        _GATHER = previous


def gather_features(features: torch.Tensor) -> torch.Tensor:
    """Concatenate (B, d) features from every process, keeping gradients; identity without DDP."""
    if not _GATHER or not (torch.distributed.is_available() and torch.distributed.is_initialized()):
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


def global_contrastive_loss(z_ecg: torch.Tensor, z_cmr: torch.Tensor, temperature: float | torch.Tensor = 0.1,
                            alpha: float = 0.5) -> torch.Tensor:
    """Symmetric InfoNCE over the batch. z_ecg, z_cmr: (B, d), L2-normalised, row i = patient i.

    loss = alpha * CE(z_e z_c^T / tau, diag) + (1 - alpha) * CE(z_c z_e^T / tau, diag).
    """
    z_ecg, z_cmr = gather_features(z_ecg), gather_features(z_cmr)
    logits = z_ecg @ z_cmr.T / temperature
    targets = torch.arange(logits.shape[0], device=logits.device)
    return alpha * F.cross_entropy(logits, targets) + (1.0 - alpha) * F.cross_entropy(logits.T, targets)


def phase_bin_assignment(phases: torch.Tensor, valid: torch.Tensor, num_bins: int) -> torch.Tensor:
    """Row-normalised assignment of tokens to phase bins.

    phases: (B, N) in [0, 1); valid: (B, N) bool. Returns (B, K, N): entry (b, k, n) is 1/count(b, k) when
    token n of patient b is valid and falls in bin k = floor(phase * K); rows of empty bins are zeros.
    """
    bins = torch.clamp((phases * num_bins).floor().long(), 0, num_bins - 1)
    one_hot = F.one_hot(bins, num_bins).to(phases.dtype) * valid.unsqueeze(-1).to(phases.dtype)  # (B, N, K)
    assignment = one_hot.transpose(1, 2)  # (B, K, N)
    counts = assignment.sum(dim=-1, keepdim=True)
    return assignment / counts.clamp_min(1.0)


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


def ecg_token_phases(token_times_s: torch.Tensor, rpeaks: torch.Tensor, fs: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cardiac phase of each ECG time step (METHOD.md §4).

    token_times_s: (N,) centre of each time step in seconds; rpeaks: (B, R) sample indices, padded with -1.
    Returns phases (B, N) in [0, 1) and valid (B, N): a token is valid when it lies inside a complete RR
    interval [r_j, r_{j+1}); phase = (t - r_j) / (r_{j+1} - r_j).
    """
    peaks_s = rpeaks.to(token_times_s.dtype) / fs
    padded = torch.where(rpeaks >= 0, peaks_s, torch.full_like(peaks_s, math.inf))
    padded, _ = torch.sort(padded, dim=-1)
    times = token_times_s.unsqueeze(0).expand(rpeaks.shape[0], -1).contiguous()
    after = torch.searchsorted(padded, times, right=True)  # index of the first R peak after t
    start_index = (after - 1).clamp(min=0)
    end_index = after.clamp(max=padded.shape[1] - 1)
    start = torch.gather(padded, 1, start_index)
    end = torch.gather(padded, 1, end_index)
    valid = (after >= 1) & (after < padded.shape[1]) & torch.isfinite(end) & (end > start)
    phases = torch.where(valid, (times - start) / torch.where(valid, end - start, torch.ones_like(end)), torch.zeros_like(times))
    return phases.clamp(0.0, 1.0 - 1e-6), valid


def cmr_frame_assignment(num_frames: int, tubelet: int, num_bins: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(K, T') assignment of CMR temporal tokens to phase bins, row-normalised.

    Frame f of T (gated from the R wave) has phase f / T; temporal token t' covers frames
    [t' * tubelet, (t' + 1) * tubelet) and counts 1 / tubelet towards the bin of each of its frames.
    """
    frames = torch.arange(num_frames, device=device)
    bins = (frames * num_bins) // num_frames  # (T,)
    frame_to_bin = F.one_hot(bins, num_bins).to(dtype)  # (T, K)
    token_of_frame = frames // tubelet
    frame_to_token = F.one_hot(token_of_frame, num_frames // tubelet).to(dtype)  # (T, T')
    weights = frame_to_bin.T @ frame_to_token / tubelet  # (K, T')
    return weights / weights.sum(dim=-1, keepdim=True).clamp_min(1e-12)


class GlobalContrastiveLoss(nn.Module):
    """``global_contrastive_loss`` with a fixed or learnable temperature (log-parameterised and clamped,
    like CLIP's logit scale: tau >= 0.01)."""

    def __init__(self, temperature: float = 0.1, alpha: float = 0.5, learnable_temperature: bool = False):
        super().__init__()
        self.alpha = alpha
        log_scale = torch.tensor(math.log(1.0 / temperature))
        if learnable_temperature:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    @property
    def temperature(self) -> torch.Tensor:
        return 1.0 / self.log_scale.clamp(max=math.log(100.0)).exp()

    def forward(self, z_ecg: torch.Tensor, z_cmr: torch.Tensor) -> torch.Tensor:
        return global_contrastive_loss(z_ecg, z_cmr, self.temperature, self.alpha)


class PTACLLoss(nn.Module):
    """L = global_weight * L_global + lambda * L_local (METHOD.md §4); lambda = 0 is the global-only
    (MMCL-like) baseline, global_weight = 0 the local-only one.

    forward takes the encoders' outputs and the projection heads; returns (total, parts) where parts holds
    the detached global and local terms.
    """

    def __init__(self, num_bins: int = 10, temperature: float = 0.1, alpha: float = 0.5, lam: float = 1.0,
                 local_temperature: float = 0.1, soft_sigma: float | None = None, global_weight: float = 1.0,
                 learnable_temperature: bool = False):
        super().__init__()
        self.num_bins, self.lam, self.global_weight = num_bins, lam, global_weight
        self.local_temperature, self.soft_sigma = local_temperature, soft_sigma
        self.global_loss = GlobalContrastiveLoss(temperature, alpha, learnable_temperature)

    def phase_bins(self, ecg_tokens: torch.Tensor, ecg_token_times_s: torch.Tensor, rpeaks: torch.Tensor, fs: float,
                   cmr_tokens: torch.Tensor, tubelet: int, num_frames: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Phase-bin means of the tokens.

        ecg_tokens: (B, n_leads, n_times, D); ecg_token_times_s: (n_times,); cmr_tokens: (B, T', S', D).
        Returns ECG segments (B, K, D), CMR frames (B, K, D) and the valid mask (B, K).
        """
        ecg_by_time = ecg_tokens.mean(dim=1)  # all leads share the time grid: (B, n_times, D)
        phases, valid = ecg_token_phases(ecg_token_times_s, rpeaks, fs)
        ecg_assignment = phase_bin_assignment(phases.to(ecg_by_time.dtype), valid, self.num_bins)  # (B, K, n_times)
        ecg_segments = ecg_assignment @ ecg_by_time
        cmr_by_time = cmr_tokens.mean(dim=2)  # all spatial positions: (B, T', D)
        cmr_assignment = cmr_frame_assignment(num_frames, tubelet, self.num_bins, cmr_by_time.device, cmr_by_time.dtype)
        cmr_frames = torch.einsum("kt,btd->bkd", cmr_assignment, cmr_by_time)
        mask = (ecg_assignment.sum(-1) > 0) & (cmr_assignment.sum(-1) > 0).unsqueeze(0)
        return ecg_segments, cmr_frames, mask

    def forward(self, ecg_pooled, cmr_pooled, ecg_head, cmr_head, ecg_tokens=None, ecg_token_times_s=None,
                rpeaks=None, fs=None, cmr_tokens=None, tubelet=None, num_frames=None):
        zero = ecg_pooled.new_zeros(())
        global_term = local_term = zero
        if self.global_weight > 0:
            z_ecg = F.normalize(ecg_head(ecg_pooled), dim=-1)
            z_cmr = F.normalize(cmr_head(cmr_pooled), dim=-1)
            global_term = self.global_loss(z_ecg, z_cmr)
        if self.lam > 0:
            segments, frames, mask = self.phase_bins(ecg_tokens, ecg_token_times_s, rpeaks, fs, cmr_tokens, tubelet, num_frames)
            u_ecg = F.normalize(ecg_head(segments), dim=-1)
            u_cmr = F.normalize(cmr_head(frames), dim=-1)
            local_term = local_temporal_loss(u_ecg, u_cmr, mask, self.local_temperature, self.soft_sigma)
        total = self.global_weight * global_term + self.lam * local_term
        return total, {"global": global_term.detach(), "local": local_term.detach()}
