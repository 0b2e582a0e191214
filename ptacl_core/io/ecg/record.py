"""What every ECG reader returns: ``Ecg`` (12 leads in the kit's order, mV), ``EcgReadError`` (names the file
and the problem), and the shared assembly of a reader's channels: units to mV, the 12 leads in order, limb leads
derived from I and II, the sampling rate checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ptacl_core.leads import LEAD_NAMES


class EcgReadError(ValueError):
    """An ECG file that cannot be read as a 12-lead record; the message names the file and the problem."""

    def __init__(self, path: Path | str, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class Ecg:
    """A 12-lead ECG.

    signal: (12, L) float32, mV, rows in ``LEAD_NAMES`` order.
    fs: sampling rate in Hz.
    """

    signal: np.ndarray
    fs: float
    source: str
    derived_leads: tuple[str, ...] = ()  # leads computed from others (MUSE stores I, II, V1-V6 only)

    @property
    def leads(self) -> tuple[str, ...]:
        return LEAD_NAMES

    @property
    def duration_s(self) -> float:
        return self.signal.shape[1] / self.fs


MV_PER_UNIT = {"uv": 1e-3, "mv": 1.0, "v": 1e3}  # lower-case unit -> mV; formats with coded units (DICOM, aECG)
_UNIT_TO_MV = {**MV_PER_UNIT, "µv": 1e-3, "μv": 1e-3}  # free-text units (WFDB headers) also write micro as µ or μ


def unit_scale(unit: str | None, path: Path, channel: str) -> float:
    """mV per unit of a free-text unit string in any case (mV, uV/µV, V); no unit is WFDB's default, mV."""
    key = (unit or "mV").strip().lower()
    if key not in _UNIT_TO_MV:
        raise EcgReadError(path, f"channel {channel!r} has unit {unit!r}; expected mV, uV or V")
    return _UNIT_TO_MV[key]


def add_lead(channels: dict[str, np.ndarray], lead: str, samples: np.ndarray, path: Path) -> None:
    """Store a reader's lead (samples in mV). A lead stored twice is kept once when both copies hold identical samples,
    and refused otherwise: which copy is the ECG is unknown, and keeping either one silently could be the wrong one."""
    if lead in channels:
        if channels[lead].shape == samples.shape and np.array_equal(channels[lead], samples, equal_nan=True):
            return
        raise EcgReadError(path, f"lead {lead} is stored twice with different samples: ambiguous, refused")
    channels[lead] = samples


def the_one(candidates: list, what: str, path: Path):
    """The single element a reader looks for (e.g. the Rhythm waveform), or None when there is none; two or more are
    refused (which one holds the ECG is ambiguous)."""
    if len(candidates) > 1:
        raise EcgReadError(path, f"{len(candidates)} {what}: ambiguous, refused")
    return candidates[0] if candidates else None


def positive_factor(value, what: str, path: Path) -> float:
    """A scale factor (gain, sensitivity, resolution, scale) as a float: refused unless positive and finite (a
    negative one silently inverts the ECG, zero flattens it)."""
    try:
        factor = float(value)
    except (TypeError, ValueError):
        raise EcgReadError(path, f"{what} {value!r} is not a number") from None
    if not np.isfinite(factor) or factor <= 0:
        raise EcgReadError(path, f"{what} {factor!r} is not a positive finite number")
    return factor


def select_leads(channels: dict[str, np.ndarray], path: Path) -> np.ndarray:
    """(12, L) float32 of the channels in ``LEAD_NAMES`` order; an error naming missing leads or non-finite samples."""
    missing = [lead for lead in LEAD_NAMES if lead not in channels]
    if missing:
        raise EcgReadError(path, f"missing lead(s) {', '.join(missing)}; found {sorted(channels)}")
    signal = np.stack([channels[lead] for lead in LEAD_NAMES]).astype(np.float32)
    if not np.all(np.isfinite(signal)):
        bad = [lead for lead, row in zip(LEAD_NAMES, signal, strict=True) if not np.all(np.isfinite(row))]
        raise EcgReadError(path, f"non-finite samples (NaN/inf) in lead(s) {', '.join(bad)}")
    return signal


def assemble(channels: dict[str, np.ndarray], fs: float, path: Path, derive: bool = False) -> Ecg:
    """The Ecg of a reader's channels (lead name -> samples in mV): equal lengths; with ``derive`` the limb leads
    missing from a device that stores 8 are computed from I and II (which must be there); then the 12 in order."""
    lengths = {lead: len(values) for lead, values in channels.items()}
    if len(set(lengths.values())) > 1:
        raise EcgReadError(path, f"leads have different lengths: {lengths}")
    derived: tuple[str, ...] = ()
    if derive:
        if "I" not in channels or "II" not in channels:
            missing = ", ".join(lead for lead in ("I", "II") if lead not in channels)
            raise EcgReadError(path, f"missing lead(s) {missing}; found {sorted(channels)}")
        derived = derive_limb_leads(channels)
    return Ecg(signal=select_leads(channels, path), fs=fs, source=str(path), derived_leads=derived)


PLAUSIBLE_RATE_HZ = (50.0, 20000.0)  # resting ECGs are stored at 100-1000 Hz (PTB-XL's 100 Hz the lowest in use)


def checked_rate(fs, path: Path) -> float:
    """The sampling rate as a float, or a clear error when a header states a nonsensical or implausible one."""
    fs = float(fs)
    if not np.isfinite(fs) or fs <= 0:
        raise EcgReadError(path, f"sampling rate {fs!r} Hz is not a positive finite number")
    low, high = PLAUSIBLE_RATE_HZ
    if not low <= fs <= high:
        raise EcgReadError(path, f"sampling rate {fs:g} Hz is implausible for an ECG (expected {low:g}-{high:g} Hz)")
    return fs


def derive_limb_leads(channels: dict[str, np.ndarray]) -> tuple[str, ...]:
    """Add III, aVR, aVL and aVF computed from I and II (Einthoven: III = II - I; Goldberger: aVR = -(I + II) / 2,
    aVL = I - II / 2, aVF = II - I / 2) where missing; returns the names added."""
    lead_i, lead_ii = channels["I"], channels["II"]
    formulas = {"III": lead_ii - lead_i, "aVR": -(lead_i + lead_ii) / 2, "aVL": lead_i - lead_ii / 2,
                "aVF": lead_ii - lead_i / 2}
    added = tuple(name for name in formulas if name not in channels)
    for name in added:
        channels[name] = formulas[name]
    return added
