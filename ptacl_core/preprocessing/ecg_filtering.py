"""ECG preprocessing: (12, L) mV at any rate -> (12, fs * duration_s) filtered, with R peaks and flags."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal as sps

from ptacl_core.leads import LEAD_NAMES
from ptacl_core.preprocessing.config import EcgConfig
from ptacl_core.preprocessing.ecg_measures import bandpass, detect_rpeaks, resample


class EcgQualityError(ValueError):
    """The recording was read but is not usable (too short, rejected quality flags, no rhythm)."""


@dataclass(frozen=True)
class PreprocessedEcg:
    """signal: (12, n_samples) float32 (mV unless normalised); rpeaks: sample indices at ``fs``;
    flags: quality flags that were raised (and not rejected), e.g. "clipped:V5"."""

    signal: np.ndarray
    rpeaks: np.ndarray
    flags: tuple[str, ...]


def clipped_leads(raw: np.ndarray, min_run: int = 8) -> list[str]:
    """Leads whose extreme value repeats for ``min_run`` samples in a row (an amplifier at its rail)."""
    clipped = []
    for lead, values in zip(LEAD_NAMES, raw, strict=True):
        for extreme in (values.max(), values.min()):
            at_extreme = np.concatenate([[0], (values == extreme).astype(np.int8), [0]])
            edges = np.diff(at_extreme)
            runs = np.nonzero(edges == -1)[0] - np.nonzero(edges == 1)[0]
            if runs.size and runs.max() >= min_run and np.ptp(values) > 0:
                clipped.append(lead)
                break
    return clipped


def filter_ecg(signal: np.ndarray, fs: float, config: EcgConfig) -> np.ndarray:
    """High-pass (baseline wander), mains notch, low-pass; zero-phase."""
    filtered = bandpass(signal, fs, config.highpass_hz, config.lowpass_hz, order=2)
    if config.notch_hz is not None and config.notch_hz < fs / 2:
        b, a = sps.iirnotch(config.notch_hz, Q=30.0, fs=fs)
        filtered = sps.filtfilt(b, a, filtered, axis=-1)
    return filtered


def normalise(signal: np.ndarray, how: str) -> np.ndarray:
    if how == "none":
        return signal
    if how == "lead_zscore":
        return (signal - signal.mean(axis=1, keepdims=True)) / (signal.std(axis=1, keepdims=True) + 1e-6)
    if how == "record_zscore":
        return (signal - signal.mean()) / (signal.std() + 1e-6)
    raise ValueError(f"unknown normalisation {how!r}")


def preprocess_ecg(signal: np.ndarray, fs: float, config: EcgConfig) -> PreprocessedEcg:
    """signal: (12, L) in mV at ``fs`` Hz. Keeps the first ``config.duration_s`` seconds."""
    needed = int(round(config.duration_s * fs))
    if signal.shape[1] < needed - 1:
        raise EcgQualityError(f"record is {signal.shape[1] / fs:.2f} s long; {config.duration_s:g} s are needed")
    raw = np.asarray(signal[:, :needed], dtype=np.float64)
    flags = [f"clipped:{lead}" for lead in clipped_leads(raw)]
    resampled = resample(raw, fs, config.fs)
    n = config.n_samples
    resampled = np.pad(resampled, ((0, 0), (0, max(n - resampled.shape[1], 0))), mode="edge")[:, :n]
    filtered = filter_ecg(resampled, config.fs, config)
    peak_to_peak = np.ptp(filtered[:, int(0.5 * config.fs):-int(0.5 * config.fs)], axis=1)  # skip filter edges
    flat = [lead for lead, p in zip(LEAD_NAMES, peak_to_peak, strict=True) if p < config.flat_peak_to_peak_mv]
    large = [f"{lead} ({p:.1f} mV)" for lead, p in zip(LEAD_NAMES, peak_to_peak, strict=True) if p > config.max_peak_to_peak_mv]
    implausible = [f"{lead} ({p:.0f} mV)" for lead, p in zip(LEAD_NAMES, peak_to_peak, strict=True)
                   if p > config.implausible_peak_to_peak_mv]
    if flat:
        flags.append("flat_lead:" + ",".join(flat))
    if large:
        flags.append("over_5mv:" + ",".join(large))
    if implausible:
        flags.append("implausible_amplitude:" + ",".join(implausible))
    rejected = [flag for flag in flags if flag.split(":")[0] in config.reject_flags]
    if rejected:
        hint = " (µV data labelled as mV?)" if implausible and max(peak_to_peak) > 50 else ""
        raise EcgQualityError(f"rejected by quality flags: {'; '.join(rejected)}{hint}")
    rpeaks = detect_rpeaks(filtered, config.fs)
    if len(rpeaks) < 2:
        raise EcgQualityError("fewer than two R peaks detected: no usable rhythm")
    kept = tuple(flag for flag in flags if flag not in rejected)
    return PreprocessedEcg(normalise(filtered, config.normalisation).astype(np.float32), rpeaks, kept)
