"""SCP-ECG (EN 1064 / ISO 11073-91064) resting ECGs: the binary format of Schiller, Welch Allyn and other carts.

Decoding (section pointers, Huffman tables, first/second differences, reference-beat subtraction, bimodal
compression, CRCs) is ``ecgdatakit``'s SCP parser; this module checks what it returns the way every kit reader does.
A file is recognised by its content (section 0 pointing at itself from byte 7), its size is bounded before it is
read, its record length must equal the file size (a truncated or padded file is refused), every CRC must match, and
the leads' sample ranges (section 3) must be one and the same and no longer than section 6 can hold (checked before
ecgdatakit sizes its buffers from them: a damaged range would have it allocate tens of GB).
Amplitudes are the rhythm section's AVM (nV per count); the rate is 10^6 / the stored sample interval (µs), snapped
to the whole-Hz rate whose interval the format would store as that number (1667 µs: 600 Hz, not 599.88 Hz).
Carts store 8 leads (I, II, V1-V6); III, aVR, aVL and aVF are derived and named in ``Ecg.derived_leads``. A lead
set without a standard lead (e.g. V3R or V7 in place of V3 or V5) is refused, naming both: never substituted.
"""

from __future__ import annotations

import binascii
import struct
import warnings
from pathlib import Path

import numpy as np

from ptacl_core.io.ecg.record import MV_PER_UNIT, Ecg, EcgReadError, add_lead, assemble, checked_rate, positive_factor
from ptacl_core.leads import LEAD_NAMES, canonical_lead_name

MAX_SCP_BYTES = 16 * 1024 * 1024  # a 10 s resting ECG is ~25-100 kB
_HEAD_BYTES = 32
MAX_SAMPLES_PER_LEAD = 8 * 0xFFFF  # section 6 holds <= 65535 bytes per lead, each sample >= 1 bit of Huffman code


def is_scp(path: Path) -> bool:
    """Whether a file starts like an SCP-ECG record (ecgdatakit's signature test on its first 32 bytes)."""
    from ecgdatakit.parsing.parsers.scp_ecg import SCPECGParser  # lazy: ecgdatakit loads its parsers on import

    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except OSError:
        return False
    return SCPECGParser.can_parse(path, head)


def _rate(interval_us, path: Path) -> float:
    interval = positive_factor(interval_us, "sample interval (µs)", path)
    whole = round(1e6 / interval)
    return float(whole) if whole > 0 and round(1e6 / whole) == interval else 1e6 / interval


def check_lead_ranges(data: bytes, path: Path) -> None:
    """Refuse, before ecgdatakit sizes its buffers from them, section 3 lead ranges (first and last sample, 1-based)
    that section 6 cannot hold (more than ``MAX_SAMPLES_PER_LEAD``: damaged) or that differ between leads (leads
    recorded one group after another, not simultaneously: stacking them would misalign the 12 leads in time)."""
    try:
        section0_length = struct.unpack_from("<I", data, 10)[0]
        pointers = {}
        for offset in range(22, min(6 + section0_length, len(data) - 9), 10):
            section, length, index = struct.unpack_from("<HII", data, offset)
            pointers[section] = (index - 1, length)
        start, length = pointers.get(3, (-1, 0))
        if start < 0 or length < 18 or start + length > len(data):
            return  # no readable section 3: ecgdatakit names the problem
        count = data[start + 16]
        ranges = [struct.unpack_from("<II", data, start + 18 + 9 * k) for k in range(count)]
    except struct.error:
        return  # a section 3 shorter than it declares: ecgdatakit names the problem
    for first, last in ranges:
        if last - first + 1 > MAX_SAMPLES_PER_LEAD:
            raise EcgReadError(path, f"section 3 declares samples {first}-{last} for a lead: more than section 6 can "
                                     f"hold ({MAX_SAMPLES_PER_LEAD} per lead); the file is damaged")
    if len(set(ranges)) > 1:
        spans = ", ".join(f"{first}-{last}" for first, last in dict.fromkeys(ranges))
        raise EcgReadError(path, f"the leads cover different sample ranges ({spans}): not recorded simultaneously; "
                                 "refused (stacking them would misalign the leads in time)")


def read_scp_ecg(path: Path | str) -> Ecg:
    """Read an SCP-ECG file's rhythm data (section 6): (12, L) mV."""
    from ecgdatakit.exceptions import ECGDataKitError  # lazy: as in is_scp
    from ecgdatakit.parsing.parsers.scp_ecg import SCPECGParser  # lazy: as in is_scp

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as error:
        raise EcgReadError(path, f"cannot read the file ({error})") from error
    if size > MAX_SCP_BYTES:
        raise EcgReadError(path, f"{size / 1e6:.0f} MB is too large for an SCP-ECG resting ECG")
    if not is_scp(path):
        raise EcgReadError(path, "not an SCP-ECG file (section 0 does not start at byte 7)")
    data = path.read_bytes()
    declared = int.from_bytes(data[2:6], "little")
    if declared != size:
        raise EcgReadError(path, f"the record declares {declared} bytes but the file has {size} (truncated or padded)")
    if binascii.crc_hqx(data[2:], 0xFFFF) != int.from_bytes(data[:2], "little"):  # the record's CRC-CCITT
        raise EcgReadError(path, "CRC mismatch: the file is damaged")
    check_lead_ranges(data, path)
    try:
        with warnings.catch_warnings():  # what the parser warns of (CRCs, a zero AVM) is checked below, as errors
            warnings.simplefilter("ignore")
            record = SCPECGParser().parse(path)
    except (ECGDataKitError, ValueError, ArithmeticError, IndexError, KeyError) as error:
        raise EcgReadError(path, f"not a readable SCP-ECG record ({type(error).__name__}: {error})") from error
    if not record.raw_metadata.get("checksum_valid", False):
        raise EcgReadError(path, "CRC mismatch: the file is damaged")
    if not record.leads:
        raise EcgReadError(path, "no rhythm leads in section 6")
    fs = checked_rate(_rate(record.raw_metadata.get("rhythm_sample_interval_us"), path), path)
    positive_factor(record.raw_metadata.get("rhythm_avm_nv"), "rhythm amplitude multiplier (AVM, nV)", path)
    channels: dict[str, np.ndarray] = {}
    others: list[str] = []
    for lead in record.leads:
        name = canonical_lead_name(lead.label)
        if name is None:
            others.append(lead.label)
            continue
        samples = np.asarray(lead.samples, dtype=np.float64)
        if lead.is_raw:
            per_count = positive_factor(lead.resolution, f"lead {lead.label}: amplitude multiplier (AVM)", path)
            unit = (lead.resolution_unit or "").strip().lower()
            if unit not in MV_PER_UNIT:
                raise EcgReadError(path, f"lead {lead.label}: resolution unit {lead.resolution_unit!r}; expected uV or mV")
            samples = (samples - float(lead.offset or 0)) * per_count * MV_PER_UNIT[unit]
        else:
            unit = (lead.units or "").strip().lower()
            if unit not in MV_PER_UNIT:
                raise EcgReadError(path, f"lead {lead.label}: unit {lead.units!r}; expected uV or mV")
            samples = samples * MV_PER_UNIT[unit]
        add_lead(channels, name, samples, path)
    missing = [lead for lead in LEAD_NAMES if lead not in channels and lead not in ("III", "aVR", "aVL", "aVF")]
    if missing:
        stored = ", ".join(lead for lead in LEAD_NAMES if lead in channels)
        extra = f" and non-standard {', '.join(others)} (never substituted)" if others else ""
        raise EcgReadError(path, f"missing lead(s) {', '.join(missing)}; found {stored}{extra}")
    return assemble(channels, fs, path, derive=True)
