"""Read resting 12-lead ECGs into ``(12, L)`` arrays in mV, in the kit's lead order.

Sources: WFDB records (``.hea`` + ``.dat``/``.mat``, any rate, any lead order, extra channels ignored,
unit strings in any case) and UK Biobank CardioSoft XML (field 20205: the 10 s ``StripData`` and the
1.2 s ``MedianSamples``, scaled by ``Resolution`` in µV per LSB).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ptacl_core.leads import LEAD_NAMES, canonical_lead_name


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

    @property
    def leads(self) -> tuple[str, ...]:
        return LEAD_NAMES

    @property
    def duration_s(self) -> float:
        return self.signal.shape[1] / self.fs


_UNIT_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3}


def _unit_scale(unit: str | None, path: Path, channel: str) -> float:
    # WFDB's default physical unit is mV when a header gives none.
    key = (unit or "mV").strip().lower()
    if key not in _UNIT_TO_MV:
        raise EcgReadError(path, f"channel {channel!r} has unit {unit!r}; expected mV, uV or V")
    return _UNIT_TO_MV[key]


def _select_leads(channels: dict[str, np.ndarray], path: Path) -> np.ndarray:
    missing = [lead for lead in LEAD_NAMES if lead not in channels]
    if missing:
        raise EcgReadError(path, f"missing lead(s) {', '.join(missing)}; found {sorted(channels)}")
    signal = np.stack([channels[lead] for lead in LEAD_NAMES]).astype(np.float32)
    if not np.all(np.isfinite(signal)):
        bad = [lead for lead, row in zip(LEAD_NAMES, signal, strict=True) if not np.all(np.isfinite(row))]
        raise EcgReadError(path, f"non-finite samples (NaN/inf) in lead(s) {', '.join(bad)}")
    return signal


def read_wfdb(path: Path | str) -> Ecg:
    """Read a WFDB record; ``path`` may name the record with or without ``.hea``."""
    import wfdb

    path = Path(path)
    record_name = str(path.with_suffix("")) if path.suffix == ".hea" else str(path)
    if not Path(record_name + ".hea").exists():
        raise EcgReadError(path, "no WFDB header (.hea) found")
    try:
        record = wfdb.rdrecord(record_name)
    except Exception as error:  # wfdb raises bare ValueError/IndexError/OSError on damaged files
        raise EcgReadError(path, f"WFDB could not read the record ({type(error).__name__}: {error})") from error
    if record.p_signal is None:
        raise EcgReadError(path, "record has no physical signal")
    channels: dict[str, np.ndarray] = {}
    units = record.units or [None] * record.n_sig
    for index, (name, unit) in enumerate(zip(record.sig_name, units, strict=True)):
        lead = canonical_lead_name(name)
        if lead is None or lead in channels:
            continue
        channels[lead] = record.p_signal[:, index] * _unit_scale(unit, path, name)
    return Ecg(signal=_select_leads(channels, path), fs=_checked_rate(record.fs, path), source=str(path))


def _checked_rate(fs, path: Path) -> float:
    """The sampling rate as a float, or a clear error when a header states a nonsensical one."""
    fs = float(fs)
    if not np.isfinite(fs) or fs <= 0:
        raise EcgReadError(path, f"sampling rate {fs!r} Hz is not a positive finite number")
    return fs


def read_ukb_xml(path: Path | str, part: str = "strip") -> Ecg:
    """Read a UK Biobank CardioSoft XML export (field 20205).

    part: ``"strip"`` for the 10 s rhythm strip (12 x 5000 at 500 Hz), ``"median"`` for the median beat
    (12 x 600 at 500 Hz).
    """
    path = Path(path)
    section = {"strip": "StripData", "median": "MedianSamples"}.get(part)
    if section is None:
        raise ValueError(f"part must be 'strip' or 'median', not {part!r}")
    try:
        root = ET.parse(path).getroot()  # the XML declaration gives its encoding (ISO-8859-1)
    except (ET.ParseError, OSError) as error:
        raise EcgReadError(path, f"not readable as XML ({error})") from error
    node = root.find(f".//{section}")
    if node is None:
        raise EcgReadError(path, f"no <{section}> element: not a CardioSoft resting-ECG export?")
    try:
        fs = float(node.findtext("SampleRate"))
        resolution_uv = float(node.findtext("Resolution"))
    except (TypeError, ValueError) as error:
        raise EcgReadError(path, f"<{section}> lacks a numeric SampleRate or Resolution") from error
    fs = _checked_rate(fs, path)
    if not np.isfinite(resolution_uv) or resolution_uv <= 0:
        raise EcgReadError(path, f"<{section}> Resolution {resolution_uv!r} µV is not a positive finite number")
    channels: dict[str, np.ndarray] = {}
    for waveform in node.findall("WaveformData"):
        lead = canonical_lead_name(waveform.get("lead", ""))
        if lead is None:
            continue
        text = (waveform.text or "").replace("\n", "").replace("\t", "").strip().strip(",")
        try:
            counts = np.array([int(value) for value in text.split(",") if value.strip()], dtype=np.float64)
        except ValueError as error:
            raise EcgReadError(path, f"lead {lead}: non-integer sample ({error})") from error
        channels[lead] = counts * resolution_uv * 1e-3
    lengths = {lead: len(values) for lead, values in channels.items()}
    if len(set(lengths.values())) > 1:
        raise EcgReadError(path, f"leads have different lengths: {lengths}")
    return Ecg(signal=_select_leads(channels, path), fs=fs, source=str(path))


def read_ecg(path: Path | str) -> Ecg:
    """Read any supported ECG file, choosing the reader by its extension."""
    path = Path(path)
    if path.suffix.lower() == ".xml":
        return read_ukb_xml(path)
    if path.suffix.lower() in {".hea", ".dat", ".mat", ""}:
        return read_wfdb(path.with_suffix(".hea") if path.suffix else path)
    raise EcgReadError(path, f"unknown ECG format {path.suffix!r}; expected WFDB (.hea) or UK Biobank XML")


def write_wfdb(record_path: Path | str, signal_mv: np.ndarray, fs: float, lead_names=LEAD_NAMES,
               comments: tuple[str, ...] = (), counts_per_mv: int = 1000) -> None:
    """Write a WFDB record in format 16 (``<record>.hea`` + ``<record>.dat``).

    signal_mv: (n_leads, L) in mV, stored as int16 counts of ``1 / counts_per_mv`` mV (1 µV by default).
    Writes the same bytes as ``wfdb.wrsamp(..., fmt="16", adc_gain=counts_per_mv, baseline=0)`` (a test
    checks it) but ~30x faster, which matters when a cohort of thousands is generated.
    """
    record_path = Path(record_path)
    name = record_path.name
    counts = np.rint(np.asarray(signal_mv, dtype=np.float64) * counts_per_mv)
    if counts.min(initial=0) < -32768 or counts.max(initial=0) > 32767:
        raise ValueError(f"{record_path}: signal exceeds the int16 range of format 16 at {counts_per_mv} counts/mV")
    digital = counts.astype("<i2")  # (n_leads, L)
    checksums = digital.astype(np.int64).sum(axis=1) % 65536
    lines = [f"{name} {digital.shape[0]} {fs:g} {digital.shape[1]}"]
    for lead, first, checksum in zip(lead_names, digital[:, 0], checksums, strict=True):
        lines.append(f"{name}.dat 16 {float(counts_per_mv)}(0)/mV 16 0 {first} {checksum} 0 {lead}")
    lines.extend(f"# {comment}" for comment in comments)
    record_path.with_name(name + ".hea").write_text("\n".join(lines) + "\n")
    digital.T.tofile(record_path.with_name(name + ".dat"))  # interleaved samples, little-endian
