"""Measurements on 12-lead ECG signals: R peaks, median beat, heart rate, QRS duration and voltage.

Used to check the synthetic cohort against its ground truth and against real recordings (the same code
measures both), and later by preprocessing. R peaks come from a maintained detector (``wfdb.processing``
XQRS) run on the lead with the strongest QRS; QRS boundaries from the spatial velocity of the median beat.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import signal as sps

from ptacl_core.leads import LEAD_NAMES

# The 8 independent leads (the other 4 limb leads are linear combinations of I and II).
MEASURE_FEATURES = ("HR", "QRS", "QT", *(f"amp_{lead}" for lead in LEAD_NAMES))  # EcgMeasures.features() order
_INDEPENDENT = [LEAD_NAMES.index(name) for name in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")]


def bandpass(signal: np.ndarray, fs: float, low_hz: float | None, high_hz: float | None, order: int = 3) -> np.ndarray:
    """Zero-phase Butterworth filter along the last axis (high-pass only, low-pass only, or band-pass)."""
    nyquist = fs / 2.0
    high_hz = None if high_hz is not None and high_hz >= 0.95 * nyquist else high_hz
    if low_hz and high_hz:
        sos = sps.butter(order, [low_hz, high_hz], btype="bandpass", fs=fs, output="sos")
    elif low_hz:
        sos = sps.butter(order, low_hz, btype="highpass", fs=fs, output="sos")
    elif high_hz:
        sos = sps.butter(order, high_hz, btype="lowpass", fs=fs, output="sos")
    else:
        return np.asarray(signal, dtype=np.float64)
    return sps.sosfiltfilt(sos, np.asarray(signal, dtype=np.float64), axis=-1)


def resample(signal: np.ndarray, fs: float, target_fs: float) -> np.ndarray:
    """Polyphase resampling along the last axis (anti-aliased)."""
    if fs == target_fs:
        return np.asarray(signal, dtype=np.float64)
    ratio = Fraction(target_fs / fs).limit_denominator(1000)
    return sps.resample_poly(np.asarray(signal, dtype=np.float64), ratio.numerator, ratio.denominator, axis=-1)


def qrs_energy(signal: np.ndarray, fs: float, window_s: float = 0.02, qrs_band: np.ndarray | None = None) -> np.ndarray:
    """Multi-lead QRS energy: the 5-25 Hz band's power summed over leads, smoothed over ``window_s``. (L,)

    qrs_band: the signal already band-passed to 5-25 Hz, when the caller has it (saves a filter pass).
    """
    band = bandpass(signal, fs, 5.0, 25.0) if qrs_band is None else qrs_band
    power = np.sum(band ** 2, axis=0)
    width = max(int(round(window_s * fs)), 1)
    return np.convolve(power, np.ones(width) / width, mode="same")


def _plausible(peaks: np.ndarray, fs: float, duration_s: float, strict: bool) -> bool:
    """A rhythm between 25 and 250 bpm; strict: also no gap over 1.7 median RR (a missed beat)."""
    if len(peaks) < 2:
        return False
    rate = 60.0 * (len(peaks) - 1) / ((peaks[-1] - peaks[0]) / fs)
    if not (25.0 <= rate <= 250.0 and len(peaks) >= duration_s * 25.0 / 60.0):
        return False
    rr = np.diff(peaks)
    return not strict or rr.max() <= 1.7 * np.median(rr)


def _energy_peaks(energy: np.ndarray, fs: float) -> np.ndarray:
    """Last resort: peaks of the QRS energy at least 240 ms apart, above a third of its high percentile and
    well above its median (QRS complexes stand out of the baseline; noise does not)."""
    height = max(np.percentile(energy, 98) / 3.0, 10.0 * np.median(energy))
    peaks, _ = sps.find_peaks(energy, height=height, distance=int(0.24 * fs))
    return peaks


def detect_rpeaks(signal: np.ndarray, fs: float, max_leads_tried: int = 4) -> np.ndarray:
    """R-peak sample indices of a (12, L) ECG in mV.

    wfdb.processing's XQRS, then its GQRS, on the leads with the strongest 5-25 Hz QRS energy, strongest
    first, until one gives a plausible rhythm (at least 2 beats, 25-250 bpm, preferably without a gap that
    betrays a missed beat); failing both (smooth, very wide QRS complexes defeat them), peaks of the
    multi-lead QRS energy. Each detection is then moved to
    the centroid of the multi-lead QRS energy within 100 ms (``energy_centroid``): one fiducial point, the centre of ventricular
    depolarisation, whatever the QRS shape in one lead (a lead's tallest deflection sits early or late in a
    wide or notched QRS, which would shift the cardiac phase by condition).
    """
    from wfdb import processing  # lazy: wfdb takes 0.6 s at import (pandas, requests), needed only to detect R peaks

    signal = np.asarray(signal, dtype=np.float64)
    qrs_band = bandpass(signal, fs, 5.0, 25.0)
    strength = np.percentile(np.abs(qrs_band), 99.5, axis=-1)
    duration_s = signal.shape[-1] / fs
    clean = bandpass(signal, fs, 0.5, 40.0)
    energy = qrs_energy(signal, fs, qrs_band=qrs_band)
    leads = np.argsort(strength)[::-1][:max_leads_tried]
    candidates = (
        *(lambda lead=lead: processing.xqrs_detect(clean[lead], fs=fs, verbose=False) for lead in leads),
        *(lambda lead=lead: processing.gqrs_detect(clean[lead], fs=fs) for lead in leads),
        lambda: _energy_peaks(energy, fs),
    )
    results: list[np.ndarray] = []  # detectors run lazily, each at most once
    chosen = None
    for strict in (True, False):
        for index, detector in enumerate(candidates):
            if index == len(results):
                results.append(np.asarray(detector(), dtype=np.int64))
            if _plausible(results[index], fs, duration_s, strict):
                chosen = results[index]
                break
        if chosen is not None:
            break
    if chosen is None:
        return np.array([], dtype=np.int64)
    return np.unique(np.array([energy_centroid(energy, int(peak), fs) for peak in chosen], dtype=np.int64))


def energy_centroid(energy: np.ndarray, start: int, fs: float, half_window_s: float = 0.10, max_steps: int = 5) -> int:
    """The centroid of ``energy`` (L,) in a +-``half_window_s`` window, re-centred on the centroid until it stops
    moving: the fiducial does not depend on where a detector first landed in a wide QRS (a window centred on an
    early detection would cut the complex's late half and pull the centroid early)."""
    half = int(round(half_window_s * fs))
    position = start
    for _ in range(max_steps):
        lo, hi = max(position - half, 0), min(position + half + 1, len(energy))
        weights = energy[lo:hi] - energy[lo:hi].min()
        centre = lo + int(round(np.sum(np.arange(hi - lo) * weights) / max(weights.sum(), 1e-12)))
        if centre == position:
            break
        position = centre
    return position


def median_beat(signal: np.ndarray, fs: float, rpeaks: np.ndarray, before_s: float = 0.3, after_s: float = 0.5) -> np.ndarray:
    """Sample-wise median over beats aligned on their R peak. Returns (n_leads, W), R at ``before_s * fs``."""
    before, after = int(round(before_s * fs)), int(round(after_s * fs))
    beats = [signal[:, r - before:r + after] for r in rpeaks if r - before >= 0 and r + after <= signal.shape[-1]]
    if not beats:
        raise ValueError("no complete beat to build a median beat from")
    return np.median(np.stack(beats), axis=0)


def qrs_bounds(beat: np.ndarray, fs: float, r_index: int, threshold: float = 0.12, quiet_ms: float = 12.0) -> tuple[int, int]:
    """QRS onset and offset (samples) of a median beat (12, W) from the spatial velocity of the independent leads.

    The QRS is the span around the R peak where the spatial velocity exceeds ``threshold`` of its peak
    (above the beat's floor); it ends where it stays below for ``quiet_ms`` (so notches do not cut it).
    """
    velocity = np.sqrt(np.sum(np.diff(beat[_INDEPENDENT], axis=-1) ** 2, axis=0))
    velocity = np.convolve(velocity, np.ones(3) / 3, mode="same")
    window = int(round(0.06 * fs))
    peak_index = max(r_index - window, 0) + int(np.argmax(velocity[max(r_index - window, 0):r_index + window]))
    floor = np.percentile(velocity, 10)
    level = floor + threshold * (velocity[peak_index] - floor)
    quiet = max(int(round(quiet_ms / 1000.0 * fs)), 1)
    below = velocity < level

    def walk(step: int) -> int:
        index = peak_index
        while 0 < index < len(velocity) - 1:
            ahead = below[index:index + quiet] if step > 0 else below[max(index - quiet + 1, 0):index + 1]
            if ahead.all():
                return index
            index += step
        return index

    return walk(-1), walk(+1) + 1


@dataclass(frozen=True)
class EcgMeasures:
    """heart_rate_bpm; qrs_ms; qrs_amplitude_mv: (12,) QRS peak-to-peak of the median beat per lead;
    n_beats: R peaks found; qt_ms: QRS onset to T end (tangent method), NaN when no T wave end is found."""

    heart_rate_bpm: float
    qrs_ms: float
    qrs_amplitude_mv: np.ndarray
    n_beats: int
    qt_ms: float = float("nan")

    def features(self) -> np.ndarray:
        """(15,) heart rate, QRS duration, QT, then the 12 QRS amplitudes (``FEATURE_NAMES`` order)."""
        return np.array([self.heart_rate_bpm, self.qrs_ms, self.qt_ms, *self.qrs_amplitude_mv], dtype=float)

    @property
    def qrs_voltage_sum_mv(self) -> float:
        """Sum of the 12 leads' QRS peak-to-peak amplitudes (a 12-lead voltage index of LV mass)."""
        return float(np.sum(self.qrs_amplitude_mv))


def measure_ecg(signal: np.ndarray, fs: float, working_fs: float = 500.0, max_seconds: float = 10.0) -> EcgMeasures:
    """Heart rate, QRS duration, QT and per-lead QRS amplitude of a (12, L) ECG in mV.

    The first ``max_seconds`` are used, resampled to ``working_fs``; R peaks by ``detect_rpeaks``.
    """
    signal = np.asarray(signal, dtype=np.float64)[:, : int(round(max_seconds * fs))]
    signal = resample(signal, fs, working_fs)
    fs = working_fs
    rpeaks = detect_rpeaks(signal, fs)
    if len(rpeaks) < 2:
        raise ValueError("fewer than two R peaks detected")
    clean = bandpass(signal, fs, 0.5, 40.0)
    rr_s = float(np.mean(np.diff(rpeaks))) / fs
    beat = median_beat(clean, fs, rpeaks, 0.3, max(min(0.9 * rr_s, 0.8), 0.5))
    r_index = int(round(0.3 * fs))
    onset, offset = qrs_bounds(beat, fs, r_index)
    qrs = beat[:, onset:offset + 1]
    try:
        qt_ms = 1000.0 * (t_wave_end(beat, fs, r_index, rr_s) - (onset - r_index) / fs)
    except ValueError:
        qt_ms = float("nan")
    return EcgMeasures(
        heart_rate_bpm=float(60.0 / rr_s),
        qrs_ms=float((offset - onset) / fs * 1000.0),
        qrs_amplitude_mv=qrs.max(axis=1) - qrs.min(axis=1),
        n_beats=len(rpeaks),
        qt_ms=float(qt_ms),
    )


def t_wave_end(beat: np.ndarray, fs: float, r_index: int, rr_s: float) -> float:
    """End of the T wave (seconds after the R peak) on a median beat (12, W) by the tangent method.

    In the lead with the largest T wave (between R + 100 ms and R + 0.7 RR), the tangent at the steepest
    point of the T wave's descending limb is extended to the baseline, taken as the lead's median over the
    beat (isoelectric segments fill most of it; a high-pass filter shifts it away from 0 under a large T).
    """
    beat = beat - np.median(beat, axis=1, keepdims=True)
    start = r_index + int(round(0.10 * fs))
    stop = min(r_index + int(round(0.70 * rr_s * fs)), beat.shape[1] - 2)
    if stop <= start + 10:
        raise ValueError("beat too short to hold a T wave")
    segment = beat[:, start:stop]
    lead = int(np.argmax(np.abs(segment).max(axis=1)))
    peak_sign = np.sign(segment[lead, np.argmax(np.abs(segment[lead]))])
    wave = peak_sign * beat[lead]
    peak = start + int(np.argmax(wave[start:stop]))
    slope = np.gradient(wave) * fs  # per second
    limb_stop = min(peak + int(round(0.2 * fs)), len(wave) - 1)
    steepest = peak + int(np.argmin(slope[peak:limb_stop]))
    if slope[steepest] >= 0:
        raise ValueError("no descending limb after the T peak")
    end_index = steepest - wave[steepest] / slope[steepest] * fs
    return float((end_index - r_index) / fs)
