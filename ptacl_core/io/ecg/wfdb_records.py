"""WFDB records (``.hea`` + ``.dat``/``.mat``): any rate, any lead order, extra channels ignored, unit strings in any
case; the header's rate and length checked before wfdb reads them. ``write_wfdb`` writes format 16."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ptacl_core.io.ecg.record import Ecg, EcgReadError, add_lead, assemble, checked_rate, unit_scale
from ptacl_core.leads import LEAD_NAMES, canonical_lead_name

# Bytes per sample of the WFDB storage formats whose size is proportional to the length (FLAC ones are not).
_WFDB_BYTES_PER_SAMPLE = {"8": 1.0, "16": 2.0, "24": 3.0, "32": 4.0, "61": 2.0, "80": 1.0, "160": 2.0,
                          "212": 1.5, "310": 4 / 3, "311": 4 / 3}
MAX_UNDECLARED_SAMPLES = 2_000_000  # per channel, for a header that states no length (~67 min at 500 Hz)


def _wfdb_read_length(header, folder: Path, max_seconds: float | None, path: Path) -> int | None:
    """How many samples to read (``sampto``): at most ``max_seconds`` of a record whose header states its length;
    None (the whole file) for a header without a length, after checking from the file sizes that it is not huge
    (wfdb would otherwise load, e.g., a 500 MB sparse file whole)."""
    if header.sig_len is not None:
        if max_seconds is None:
            return None
        return max(1, min(int(header.sig_len), int(np.ceil(max_seconds * header.fs))))
    per_file: dict[str, tuple[float, int]] = {}
    files = getattr(header, "file_name", None) or []  # a multi-segment header names its segments instead
    formats, frames_per = getattr(header, "fmt", None) or [], getattr(header, "samps_per_frame", None) or []
    for name, fmt, frame in zip(files, formats, frames_per, strict=False):
        size, count = per_file.get(name, (_WFDB_BYTES_PER_SAMPLE.get(str(fmt), 0.0), 0))
        per_file[name] = (size, count + int(frame or 1))
    for name, (bytes_per_sample, samples_per_frame) in per_file.items():
        data = folder / name
        if not bytes_per_sample or not data.is_file():
            continue
        frames = data.stat().st_size / (bytes_per_sample * samples_per_frame)
        if frames > MAX_UNDECLARED_SAMPLES:
            raise EcgReadError(path, f"the header states no signal length and {name} holds {frames:.3g} samples per "
                                     f"channel (over {MAX_UNDECLARED_SAMPLES:,}); refused: state the length in the header")
    return None


def read_wfdb(path: Path | str, max_seconds: float | None = 60.0) -> Ecg:
    """Read a WFDB record; ``path`` may name the record with or without ``.hea``.

    max_seconds: read at most the first that many seconds (resting ECGs are 10 s; None reads everything)."""
    import wfdb  # lazy: 0.6 s at import (pandas, scipy, requests), needed only for WFDB records

    path = Path(path)
    record_name = str(path.with_suffix("")) if path.suffix == ".hea" else str(path)
    header_path = Path(record_name + ".hea")
    if not header_path.exists():
        raise EcgReadError(path, "no WFDB header (.hea) found")
    if not header_path.is_file():  # a FIFO or device would block the read forever
        raise EcgReadError(header_path, "not a regular file")
    lines = _header_lines(header_path)
    _check_header_rate(lines, header_path)
    uncalibrated = _uncalibrated_signals(lines)
    try:
        header = wfdb.rdheader(record_name)
    except Exception as error:
        raise EcgReadError(path, f"WFDB could not read the header ({type(error).__name__}: {error})") from error
    for name in dict.fromkeys(getattr(header, "file_name", None) or []):
        data = header_path.parent / name
        if data.exists() and not data.is_file():
            raise EcgReadError(data, "not a regular file")
    sampto = _wfdb_read_length(header, header_path.parent, max_seconds, path)
    try:
        record = wfdb.rdrecord(record_name, sampto=sampto)
    except Exception as error:  # wfdb raises bare ValueError/IndexError/OSError on damaged files
        raise EcgReadError(path, f"WFDB could not read the record ({type(error).__name__}: {error})") from error
    if record.p_signal is None:
        raise EcgReadError(path, "record has no physical signal")
    channels: dict[str, np.ndarray] = {}
    units = record.units or [None] * record.n_sig
    gains = record.adc_gain or [1.0] * record.n_sig
    names = record.sig_name or [None] * record.n_sig
    if len(names) != len(units):
        raise EcgReadError(path, f"header lists {len(names)} signal names for {len(units)} units")
    for index, (name, unit) in enumerate(zip(names, units, strict=True)):
        lead = canonical_lead_name(name or "")  # a damaged header can leave a channel unnamed
        if lead is None:
            continue
        if not np.isfinite(gains[index]) or gains[index] < 0:  # a negative gain silently inverts the lead
            raise EcgReadError(path, f"channel {name!r}: ADC gain {gains[index]!r} is not a non-negative finite number")
        if index in uncalibrated:  # wfdb silently reads a zero gain as its default, 200 units per mV
            raise EcgReadError(path, f"channel {name!r}: ADC gain 0 (uncalibrated: the amplitude in mV is unknown)")
        add_lead(channels, lead, record.p_signal[:, index] * unit_scale(unit, path, name), path)
    return assemble(channels, checked_rate(record.fs, path), path)


def _header_lines(header: Path) -> list[str]:
    """The header's record and signal lines, stripped (comments and blank lines dropped)."""
    try:
        lines = [line.strip() for line in header.read_text(errors="replace").splitlines()]
    except OSError as error:
        raise EcgReadError(header, f"cannot read the header ({error})") from error
    return [line for line in lines if line and not line.startswith("#")]


def _uncalibrated_signals(lines: list[str]) -> set[int]:
    """Indices of the signals whose header line writes an ADC gain of 0 (WFDB: uncalibrated), which wfdb replaces by
    its default of 200 without a word. A multi-segment header (``name/segments``) lists segments, not signals."""
    if not lines or "/" in lines[0].split()[0]:
        return set()
    zero = set()
    for index, line in enumerate(lines[1:]):
        fields = line.split()
        gain = re.match(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", fields[2]) if len(fields) > 2 else None
        if gain is not None and float(gain.group(0)) == 0:
            zero.add(index)
    return zero


def _check_header_rate(lines: list[str], header: Path) -> None:
    """The sampling rate as the header writes it (record line, third field; ``fs[/counter[(base)]]``), checked
    before wfdb reads it: wfdb replaces a negative or non-numeric rate by its 250 Hz default without a word, which
    would cache a time-stretched ECG."""
    fields = lines[0].split() if lines else []
    if len(fields) < 3:
        return  # no rate written: WFDB's documented default (250 Hz) applies
    token = fields[2].split("/")[0].split("(")[0]
    try:
        fs = float(token)
    except ValueError:
        raise EcgReadError(header, f"header field 'sampling frequency' is {fields[2]!r}, not a number") from None
    checked_rate(fs, header)


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
