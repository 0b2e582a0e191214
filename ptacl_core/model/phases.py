"""Cardiac phase (METHOD.md §4): where in the cycle each ECG token and each CMR frame lies, and the phase-bin
means of the encoders' tokens that the local temporal loss contrasts.

Phase runs from one R peak to the next: an ECG token at time t in a complete RR interval [r_j, r_{j+1}) has
phase (t - r_j) / (r_{j+1} - r_j); a CMR frame f of T (gated from the R wave) has phase f / T. K bins; a
token's bin is floor(phase * K). Everything is a batched matrix product: no loop over patients or bins.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


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


def phase_bin_means(ecg_tokens: torch.Tensor, ecg_token_times_s: torch.Tensor, rpeaks: torch.Tensor, fs: float,
                    cmr_tokens: torch.Tensor, tubelet: int, num_frames: int, num_bins: int
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Phase-bin means of the tokens.

    ecg_tokens: (B, n_leads, n_times, D); ecg_token_times_s: (n_times,); rpeaks: (B, R) samples at ``fs`` Hz,
    -1 padded; cmr_tokens: (B, T', S', D) with T' = num_frames / tubelet.
    Returns ECG segments (B, K, D), CMR frames (B, K, D) and the mask (B, K) of bins present in both.
    """
    ecg_by_time = ecg_tokens.mean(dim=1)  # all leads share the time grid: (B, n_times, D)
    phases, valid = ecg_token_phases(ecg_token_times_s, rpeaks, fs)
    ecg_assignment = phase_bin_assignment(phases.to(ecg_by_time.dtype), valid, num_bins)  # (B, K, n_times)
    ecg_segments = ecg_assignment @ ecg_by_time
    cmr_by_time = cmr_tokens.mean(dim=2)  # all spatial positions: (B, T', D)
    cmr_assignment = cmr_frame_assignment(num_frames, tubelet, num_bins, cmr_by_time.device, cmr_by_time.dtype)
    cmr_frames = torch.einsum("kt,btd->bkd", cmr_assignment, cmr_by_time)
    mask = (ecg_assignment.sum(-1) > 0) & (cmr_assignment.sum(-1) > 0).unsqueeze(0)
    return ecg_segments, cmr_frames, mask
