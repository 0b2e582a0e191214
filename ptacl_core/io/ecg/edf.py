"""EDF, EDF+ (continuous) and BDF recordings: long ECGs (Holter, sleep, telemetry exports), read through ``edfio``.

Recognised by content: the first 8 bytes are ``0`` and 7 spaces (EDF) or ``\\xffBIOSEMI`` (BDF). Before edfio reads
anything, the fixed ASCII header is parsed here and checked: its size (256 bytes per signal plus 256), the file
size against the data records it declares (a truncated or padded file is refused, naming both sizes), each ECG
channel's ranges (digital maximum above minimum; a physical maximum below the minimum, a negative gain that EDF
allows for an inverted amplifier, is refused as the kit's other readers refuse negative gains; none beyond ±1 kV),
its unit, and one rate for every ECG lead. EDF+D (discontinuous) files are refused: their samples are not one time line.
Channel labels such as ``ECG I``, ``EKG V1`` or ``II`` map to the 12 leads; other channels (EEG, SpO2, EDF+
annotations) are skipped. Only the first ``max_seconds`` are read (lazily: an 8-hour Holter costs its first minute).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ptacl_core.io.ecg.record import Ecg, EcgReadError, add_lead, assemble, checked_rate, unit_scale
from ptacl_core.leads import canonical_lead_name

EDF_MAGIC, BDF_MAGIC = b"0       ", b"\xffBIOSEMI"
MAX_HEADER_SIGNALS = 4096
MAX_BDF_BYTES = 2 * 1024**3
DIGITAL_LIMITS = {"edf": (-(2**15), 2**15 - 1), "bdf": (-(2**23), 2**23 - 1)}  # 16- and 24-bit two's complement
MAX_PHYSICAL_MV = 1e6  # a physical range beyond ±1 kV is a damaged header (ECG front ends span a few mV to a few V)
_SIGNAL_FIELDS = (("label", 16), ("transducer", 80), ("dimension", 8), ("physical_min", 8), ("physical_max", 8),
                  ("digital_min", 8), ("digital_max", 8), ("prefiltering", 80), ("samples", 8), ("reserved", 32))


def is_edf(path: Path) -> bool:
    """Whether a file starts with the EDF or BDF version field."""
    try:
        with open(path, "rb") as handle:
            return handle.read(8) in (EDF_MAGIC, BDF_MAGIC)
    except OSError:
        return False


def _is_annotation(label: str) -> bool:
    return label in ("EDF Annotations", "BDF Annotations")


def lead_of(label: str) -> str | None:
    """The kit's lead name of an EDF channel label (``ECG I``, ``EKG-V2``, ``II``, ``ECG V1-Ref``, ``ECG DII`` as
    Romance-language devices write II), or None."""
    name = re.sub(r"^\s*(ECG|EKG)[\s_:-]*", "", label, flags=re.IGNORECASE)
    name = re.sub(r"[\s_-]*REF\s*$", "", name, flags=re.IGNORECASE)
    name = re.sub(r"^D(I{1,3})$", r"\1", name.strip(), flags=re.IGNORECASE)
    return canonical_lead_name(name)


def _ecg_like(label: str) -> bool:
    return re.match(r"^\s*(ECG|EKG)", label, flags=re.IGNORECASE) is not None


def _number(text: bytes, what: str, path: Path) -> float:
    try:
        value = float(text.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise EcgReadError(path, f"EDF header field {what} is {text!r}, not a number") from None
    if not np.isfinite(value):
        raise EcgReadError(path, f"EDF header field {what} is {text!r}, not a finite number")
    return value


def read_header(path: Path) -> dict:
    """The fixed header of an EDF/BDF file, checked against the file's size: {bdf, records, record_s, signals:
    [{label, dimension, physical_min, physical_max, digital_min, digital_max, samples}]}."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(256)
        if len(head) < 256:
            raise EcgReadError(path, f"{size} bytes: shorter than an EDF header (256 bytes)")
        bdf = head[:8] == BDF_MAGIC
        count = _number(head[252:256], "number of signals", path)
        if not 1 <= count <= MAX_HEADER_SIGNALS or count != int(count):
            raise EcgReadError(path, f"EDF header declares {count:g} signals (expected 1-{MAX_HEADER_SIGNALS})")
        count = int(count)
        header_bytes = _number(head[184:192], "header bytes", path)
        if header_bytes != 256 * (count + 1):
            raise EcgReadError(path, f"EDF header declares {header_bytes:g} header bytes; {count} signals need "
                                     f"{256 * (count + 1)}")
        block = handle.read(256 * count)
    if len(block) < 256 * count:
        raise EcgReadError(path, f"{size} bytes: the header of {count} signals is truncated")
    if head[192:197] == b"EDF+D" or head[192:197] == b"BDF+D":
        raise EcgReadError(path, "EDF+D (discontinuous) recording: its samples are not one time line; refused")
    records = _number(head[236:244], "number of data records", path)
    if records < 1 or records != int(records):
        raise EcgReadError(path, f"EDF header declares {records:g} data records (-1: a recording that was never closed)")
    record_s = _number(head[244:252], "data record duration", path)
    if not np.isfinite(record_s) or record_s <= 0:
        raise EcgReadError(path, f"data record duration {record_s:g} s is not positive")
    signals, offset = [{} for _ in range(count)], 0
    for field, width in _SIGNAL_FIELDS:
        for index in range(count):
            raw = block[offset + index * width: offset + (index + 1) * width]
            if field in ("label", "dimension", "transducer", "prefiltering", "reserved"):
                signals[index][field] = raw.decode("latin-1").strip()
            else:
                signals[index][field] = _number(raw, f"{field} of signal {index + 1}", path)
        offset += width * count
    for index, signal in enumerate(signals):
        if signal["samples"] < 1 or signal["samples"] != int(signal["samples"]):
            raise EcgReadError(path, f"signal {index + 1} ({signal['label']!r}) declares {signal['samples']:g} samples per "
                                     "data record (expected a positive whole number)")
    width = 3 if bdf else 2
    expected = int(header_bytes) + int(records) * int(sum(s["samples"] for s in signals)) * width
    if size != expected:
        raise EcgReadError(path, f"{size} bytes, but the header's {int(records)} data records need {expected} "
                                 f"({'truncated' if size < expected else 'padded'}?)")
    return {"bdf": bdf, "records": int(records), "record_s": record_s, "signals": signals}


def read_edf(path: Path | str, max_seconds: float | None = 60.0) -> Ecg:
    """Read the ECG leads of an EDF/EDF+/BDF file: (12, L) mV, the first ``max_seconds`` (None: all)."""
    import edfio  # lazy: only EDF reads need it

    path = Path(path)
    if not path.is_file():
        raise EcgReadError(path, "no such file")
    header = read_header(path)
    if header["bdf"] and path.stat().st_size > MAX_BDF_BYTES:  # edfio reads BDF data whole (EDF lazily)
        raise EcgReadError(path, f"{path.stat().st_size / 1e9:.1f} GB: a BDF this large is read whole into memory; "
                                 f"cut it below {MAX_BDF_BYTES / 1e9:.0f} GB (or convert it to EDF, read lazily)")
    leads: dict[int, tuple[str, float]] = {}  # header index -> (lead, mV per physical unit)
    for index, signal in enumerate(header["signals"]):
        lead = lead_of(signal["label"])
        if lead is None or _is_annotation(signal["label"]):
            continue
        where = f"channel {signal['label']!r}"
        low, high = DIGITAL_LIMITS["bdf" if header["bdf"] else "edf"]
        for bound in ("digital_min", "digital_max"):
            if signal[bound] != int(signal[bound]) or not low <= signal[bound] <= high:
                raise EcgReadError(path, f"{where}: {bound.replace('_', ' ')} {signal[bound]:g} is not a whole number "
                                         f"in {low}..{high}")
        if signal["digital_max"] <= signal["digital_min"]:
            raise EcgReadError(path, f"{where}: digital maximum {signal['digital_max']:g} is not above the minimum "
                                     f"{signal['digital_min']:g}")
        if signal["physical_max"] == signal["physical_min"]:
            raise EcgReadError(path, f"{where}: physical maximum equals the minimum ({signal['physical_min']:g}): a zero gain")
        if signal["physical_max"] < signal["physical_min"]:
            raise EcgReadError(path, f"{where}: physical maximum {signal['physical_max']:g} below the minimum "
                                     f"{signal['physical_min']:g}, a negative gain (EDF's inverted amplifier); refused, "
                                     "as the kit refuses every negative gain: re-export with the polarity applied")
        if not signal["dimension"]:
            raise EcgReadError(path, f"{where}: no physical dimension (unit); expected uV or mV")
        to_mv = unit_scale(signal["dimension"], path, signal["label"])  # refuses an unknown unit
        if max(abs(signal["physical_min"]), abs(signal["physical_max"])) * to_mv > MAX_PHYSICAL_MV:
            raise EcgReadError(path, f"{where}: physical range {signal['physical_min']:g} to {signal['physical_max']:g} "
                                     f"{signal['dimension']} is implausible for an ECG (beyond ±{MAX_PHYSICAL_MV / 1e6:g} kV)")
        leads[index] = lead, to_mv
    if not leads:
        labels = [s["label"] for s in header["signals"]]
        raise EcgReadError(path, f"no ECG lead among the channels {labels} (expected labels such as 'ECG I', 'II', 'V1')")
    rates = {header["signals"][i]["samples"] / header["record_s"] for i in leads}
    if len(rates) > 1:
        raise EcgReadError(path, f"the ECG leads have different sampling rates ({', '.join(f'{r:g}' for r in sorted(rates))} Hz)")
    fs = checked_rate(rates.pop(), path)
    seconds = header["records"] * header["record_s"]
    if max_seconds is not None:
        seconds = min(seconds, max_seconds)
    try:
        recording = (edfio.read_bdf if header["bdf"] else edfio.read_edf)(path)
        ordinary = [i for i, s in enumerate(header["signals"]) if not _is_annotation(s["label"])]
        signals = dict(zip(ordinary, recording.signals, strict=True))  # edfio's signals: all but the annotations
        channels: dict[str, np.ndarray] = {}
        for index, (lead, to_mv) in leads.items():
            stated = header["signals"][index]  # calibrated here from the checked header, not by edfio
            digital = np.asarray(signals[index].get_digital_slice(0, int(round(seconds * fs)) / fs), dtype=np.float64)
            gain = (stated["physical_max"] - stated["physical_min"]) / (stated["digital_max"] - stated["digital_min"])
            physical = (digital - stated["digital_min"]) * gain + stated["physical_min"]
            add_lead(channels, lead, physical * to_mv, path)
    except EcgReadError:
        raise
    except (ValueError, OSError, IndexError) as error:
        raise EcgReadError(path, f"edfio cannot read the recording ({type(error).__name__}: {error})") from error
    needed = [lead for lead in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6") if lead not in channels]
    if needed:
        unread = [s["label"] for i, s in enumerate(header["signals"]) if i not in leads and _ecg_like(s["label"])]
        named = f" and ECG channel(s) {unread} that are none of the 12 leads (never substituted)" if unread else ""
        raise EcgReadError(path, f"missing lead(s) {', '.join(needed)}; found {', '.join(sorted(channels))}{named}")
    return assemble(channels, fs, path, derive=True)
