"""Phase geometry (METHOD.md §4): ECG token width against phase-bin width, the soft-target sigma that follows from
it, and how many phase bins each patient fills.

A phase bin of a beat of length RR is RR / K wide; an ECG token is ``patch_samples / fs`` wide. A bin narrower
than a token means one token straddles several bins and adjacent bins fight under one-hot targets, so K and the
patch size are chosen together: the presets' K is the largest with a bin at least a token wide for all but a
few percent of the default cohort's beats. The soft-target sigma is the token half-width as a fraction of the
cycle (the phase uncertainty of one token), not a tuned number.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ptacl_core.model.phases import ecg_token_phases, phase_bin_assignment

# A configuration is refused when the median patient's bin is narrower than a token, and warned about when
# more than this share of patients have bins narrower than a token.
NARROW_BIN_WARN_FRACTION = 0.05
# A patient "fills" its bins when at least this share of the K bins holds an ECG token (bin occupancy).
OCCUPANCY_THRESHOLD = 0.8


class GeometryError(ValueError):
    """A phase-bin configuration whose bins are narrower than the ECG tokens for the typical patient."""


@dataclass(frozen=True)
class PhaseGeometry:
    """The geometry of one (token width, K, cohort) triple; times in seconds, sigma in cycle fractions."""

    token_s: float
    num_bins: int
    median_rr_s: float
    narrow_fraction: float  # patients whose bin (RR / K) is narrower than a token
    soft_sigma: float  # token half-width / median RR

    @property
    def median_bin_s(self) -> float:
        return self.median_rr_s / self.num_bins

    def describe(self) -> str:
        return (f"ECG tokens {1000 * self.token_s:.0f} ms, K = {self.num_bins} bins of {1000 * self.median_bin_s:.0f} ms "
                f"at the median RR {1000 * self.median_rr_s:.0f} ms; {100 * self.narrow_fraction:.1f} % of patients have "
                f"bins narrower than a token; soft-target sigma {self.soft_sigma:.3f} cycles")


def median_rr_s(rpeaks: list[np.ndarray], fs: float) -> np.ndarray:
    """Each patient's median RR interval in seconds, (B,); NaN for a patient with fewer than two R peaks.
    rpeaks: per patient, R-peak sample indices at ``fs`` Hz."""
    out = np.full(len(rpeaks), np.nan)
    for index, peaks in enumerate(rpeaks):
        peaks = np.sort(np.asarray(peaks)[np.asarray(peaks) >= 0])
        if len(peaks) >= 2:
            out[index] = float(np.median(np.diff(peaks))) / fs
    return out


def soft_sigma(token_s: float, rr_s: float) -> float:
    """Soft-target sigma in cycle fractions: half a token's width over the RR interval."""
    return 0.5 * token_s / rr_s


def phase_geometry(token_s: float, num_bins: int, rr_s: np.ndarray) -> PhaseGeometry:
    """The geometry of ``num_bins`` bins for ECG tokens ``token_s`` wide over patients with RR intervals ``rr_s``
    (seconds, NaN ignored)."""
    if token_s <= 0 or num_bins < 2:
        raise GeometryError(f"need a positive token width and at least 2 phase bins, got {token_s} s and K = {num_bins}")
    rr = np.asarray(rr_s, dtype=float)
    rr = rr[np.isfinite(rr) & (rr > 0)]
    if len(rr) == 0:
        raise GeometryError("no patient has two R peaks: the phase geometry is undefined")
    median = float(np.median(rr))
    return PhaseGeometry(token_s=token_s, num_bins=num_bins, median_rr_s=median,
                         narrow_fraction=float(np.mean(rr / num_bins < token_s)), soft_sigma=soft_sigma(token_s, median))


def check_geometry(geometry: PhaseGeometry, where: str = "") -> PhaseGeometry:
    """Refuse bins narrower than a token for the median patient (``GeometryError``); warn when more than
    ``NARROW_BIN_WARN_FRACTION`` of patients have them. Returns the geometry."""
    prefix = f"{where}: " if where else ""
    if geometry.median_bin_s < geometry.token_s:
        largest = int(np.floor(geometry.median_rr_s / geometry.token_s + 1e-9))
        raise GeometryError(
            f"{prefix}phase bins narrower than an ECG token: {geometry.describe()}. One token would straddle several "
            f"bins and adjacent bins fight under the local loss; use K <= {largest} (loss.num_bins) or smaller ECG "
            f"patches (model.ecg.patch_samples)")
    if geometry.narrow_fraction > NARROW_BIN_WARN_FRACTION:
        warnings.warn(f"{prefix}{geometry.describe()} (more than {100 * NARROW_BIN_WARN_FRACTION:.0f} %): consider a "
                      "smaller K or smaller ECG patches", stacklevel=2)
    return geometry


def bin_occupancy(valid_bins: np.ndarray) -> np.ndarray:
    """Share of the K bins that hold at least one ECG token, per patient. valid_bins: (B, K) bool -> (B,)."""
    valid_bins = np.asarray(valid_bins, dtype=bool)
    return valid_bins.mean(axis=1)


def underfilled_fraction(valid_bins: np.ndarray, threshold: float = OCCUPANCY_THRESHOLD) -> float:
    """Fraction of patients with fewer than ``threshold`` of their phase bins filled (METHOD.md §4 geometry)."""
    occupancy = bin_occupancy(valid_bins)
    return float(np.mean(occupancy < threshold)) if len(occupancy) else float("nan")


def filled_bins(rpeaks: list[np.ndarray], fs: float, n_samples: int, patch_samples: int, num_bins: int) -> np.ndarray:
    """(B, K) bool: which phase bins hold at least one ECG token of each patient (tokens of ``patch_samples``
    over ``n_samples`` samples at ``fs`` Hz; the phase rule of ``ptacl_core.model.phases``)."""
    width = max((len(p) for p in rpeaks), default=0)
    padded = torch.full((len(rpeaks), max(width, 1)), -1, dtype=torch.long)
    for index, peaks in enumerate(rpeaks):
        padded[index, : len(peaks)] = torch.as_tensor(np.asarray(peaks, dtype=np.int64))
    n_times = n_samples // patch_samples
    times = (torch.arange(n_times, dtype=torch.float64) + 0.5) * patch_samples / fs
    phases, valid = ecg_token_phases(times, padded, fs)
    return (phase_bin_assignment(phases, valid, num_bins).sum(-1) > 0).numpy()


def cohort_geometry(rpeaks: list[np.ndarray], fs: float, n_samples: int, patch_samples: int, num_bins: int) -> dict:
    """The geometry of a cohort's patients as plain numbers (saved with a run): token and bin widths, the share of
    patients with bins narrower than a token, the soft-target sigma, and bin occupancy (the share of patients
    with fewer than ``OCCUPANCY_THRESHOLD`` of their bins filled)."""
    geometry = phase_geometry(patch_samples / fs, num_bins, median_rr_s(rpeaks, fs))
    filled = filled_bins(rpeaks, fs, n_samples, patch_samples, num_bins)
    return {"token_ms": 1000 * geometry.token_s, "num_bins": num_bins, "median_rr_ms": 1000 * geometry.median_rr_s,
            "median_bin_ms": 1000 * geometry.median_bin_s, "narrow_bin_fraction": geometry.narrow_fraction,
            "soft_sigma": geometry.soft_sigma, "mean_bin_occupancy": float(bin_occupancy(filled).mean()),
            "underfilled_fraction": underfilled_fraction(filled)}
