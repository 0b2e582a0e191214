"""DICOM 12-lead ECG waveforms (Waveform Sequence, read through pydicom), recognised by the DICM signature; the file
size and each multiplex group's declared size checked before any sample is decoded."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ptacl_core.io.ecg.record import MV_PER_UNIT, Ecg, EcgReadError, add_lead, assemble, checked_rate, positive_factor
from ptacl_core.leads import canonical_lead_name

# A 10 s 12-lead DICOM ECG at 1 kHz is ~0.3 MB (a 5-minute one ~7 MB); decoding holds ~5x the samples as float64.
MAX_DICOM_ECG_BYTES = 32 * 1024 * 1024
_WAVEFORM_BITS = (8, 16, 32, 64)  # WaveformBitsAllocated that pydicom decodes


def read_dicom_ecg(path: Path | str, part: str = "strip") -> Ecg:
    """Read a DICOM 12-lead ECG waveform (Waveform Sequence; e.g. SOP class 12-Lead ECG Waveform Storage).

    part: ``"strip"`` picks the rhythm multiplex group (labelled RHYTHM, else the longest), ``"median"`` the one
    labelled MEDIAN; two candidates are refused as ambiguous. Samples are pydicom's ``waveform_array``
    (sensitivity, correction factor and baseline applied; both factors must be positive) in each channel's
    sensitivity units (uV, mV or V); channel labels come from the channel source sequence. Missing limb leads are
    derived from I and II as for MUSE. The file (at most ``MAX_DICOM_ECG_BYTES``) and the declared samples x
    channels x bits of each group are checked before any sample is decoded.
    """
    import pydicom  # lazy: 0.45 s at import, needed only for DICOM files
    from pydicom.errors import InvalidDicomError  # lazy: with pydicom

    path = Path(path)
    if part not in ("strip", "median"):
        raise ValueError(f"part must be 'strip' or 'median', not {part!r}")
    _check_file_size(path)
    try:
        dataset = pydicom.dcmread(path, defer_size="1 MB")  # waveform data read when decoded, after the size checks
    except (InvalidDicomError, OSError, ValueError, EOFError) as error:
        raise EcgReadError(path, f"not readable as DICOM ({type(error).__name__}: {error})") from error
    groups = list(dataset.get("WaveformSequence", []))
    if not groups:
        raise EcgReadError(path, "no WaveformSequence: not a DICOM ECG waveform")
    chosen = _chosen_group(groups, part, path)
    for index in range(chosen + 1):  # waveform_array decodes every group up to the chosen one
        _check_declared_size(groups[index], index, path)
    group = groups[chosen]
    fs = checked_rate(group.get("SamplingFrequency", float("nan")), path)
    definitions = list(group.get("ChannelDefinitionSequence") or [])
    if len(definitions) > int(group.NumberOfWaveformChannels):
        raise EcgReadError(path, f"waveform group {chosen}: {len(definitions)} channel definitions for "
                                 f"{int(group.NumberOfWaveformChannels)} channels")
    for channel in definitions:  # before decoding: a negative factor would invert the lead, zero flatten it
        _check_channel_factors(channel, path)
    try:
        samples = dataset.waveform_array(chosen)  # (samples, channels), physical values
    except Exception as error:  # pydicom raises assorted errors on truncated or inconsistent waveform data
        raise EcgReadError(path, f"waveform group {chosen} unreadable ({type(error).__name__}: {error})") from error
    channels: dict[str, np.ndarray] = {}
    for index, channel in enumerate(definitions):
        name = _channel_label(channel)
        lead = canonical_lead_name(name)
        if lead is None:
            continue
        unit = _sensitivity_unit(channel)
        if unit not in MV_PER_UNIT:
            raise EcgReadError(path, f"channel {name!r}: sensitivity units {unit or 'missing'!r}; expected uV, mV or V")
        add_lead(channels, lead, samples[:, index].astype(np.float64) * MV_PER_UNIT[unit], path)
    return assemble(channels, fs, path, derive=True)


def _check_file_size(path: Path) -> None:
    """Refuse a file too large for a resting ECG before pydicom reads it (a sparse 480 MB file would otherwise be
    read whole and decoded to gigabytes)."""
    try:
        size = path.stat().st_size
    except OSError as error:
        raise EcgReadError(path, f"cannot read the file ({error})") from error
    if size > MAX_DICOM_ECG_BYTES:
        raise EcgReadError(path, f"{size / 2**20:.0f} MiB is too large for a DICOM resting ECG "
                                 f"(over {MAX_DICOM_ECG_BYTES >> 20} MiB); refused")


def _declared_int(group, keyword: str, index: int, path: Path) -> int:
    """A multiplex group's count attribute (e.g. NumberOfWaveformSamples) as a positive int, or a named error."""
    try:
        value = int(group.get(keyword))
    except (TypeError, ValueError):
        raise EcgReadError(path, f"waveform group {index}: no usable {keyword} ({group.get(keyword)!r})") from None
    if value <= 0:
        raise EcgReadError(path, f"waveform group {index}: {keyword} {value} is not positive")
    return value


def _check_declared_size(group, index: int, path: Path) -> None:
    """Samples x channels x bits a group declares, bounded before pydicom decodes it."""
    samples = _declared_int(group, "NumberOfWaveformSamples", index, path)
    channels = _declared_int(group, "NumberOfWaveformChannels", index, path)
    bits = _declared_int(group, "WaveformBitsAllocated", index, path)
    if bits not in _WAVEFORM_BITS:
        raise EcgReadError(path, f"waveform group {index}: WaveformBitsAllocated {bits}; expected one of {_WAVEFORM_BITS}")
    declared = samples * channels * bits // 8
    if declared > MAX_DICOM_ECG_BYTES:
        raise EcgReadError(path, f"waveform group {index} declares {samples:,} samples x {channels} channels x {bits} "
                                 f"bits ({declared / 2**20:.0f} MiB, over {MAX_DICOM_ECG_BYTES >> 20} MiB); refused")


def _group_duration_s(group, index: int, path: Path) -> float:
    """How long a multiplex group lasts (samples / rate), or a named error for a missing or zero count or rate."""
    samples = _declared_int(group, "NumberOfWaveformSamples", index, path)
    try:
        fs = float(group.get("SamplingFrequency"))
    except (TypeError, ValueError):
        raise EcgReadError(path, f"waveform group {index}: no usable SamplingFrequency "
                                 f"({group.get('SamplingFrequency')!r})") from None
    return samples / checked_rate(fs, path)


def _chosen_group(groups: list, part: str, path: Path) -> int:
    """Index of the multiplex group holding the strip (labelled RHYTHM, else the longest) or the median beat
    (labelled MEDIAN); two labelled alike, or two equally long unlabelled, are refused as ambiguous."""
    labels = [str(g.get("MultiplexGroupLabel", "")).upper() for g in groups]
    wanted = "MEDIAN" if part == "median" else "RHYTHM"
    matches = [i for i, label in enumerate(labels) if wanted in label]
    if len(matches) > 1:
        raise EcgReadError(path, f"{len(matches)} multiplex groups labelled {wanted} (groups: {labels}): ambiguous, refused")
    if matches:
        return matches[0]
    if part == "median":
        raise EcgReadError(path, f"no median-beat multiplex group (groups: {labels})")
    durations = [_group_duration_s(g, i, path) for i, g in enumerate(groups)]  # the longest group is the rhythm strip
    longest = [i for i, duration in enumerate(durations) if duration == max(durations)]
    if len(longest) > 1:
        raise EcgReadError(path, f"no group labelled RHYTHM and groups {longest} are equally long: ambiguous, refused")
    return longest[0]


def _first_item(channel, keyword: str):
    """The first item of a channel's code sequence (None when the sequence is absent or empty)."""
    items = channel.get(keyword) or []
    return items[0] if len(items) else None


def _channel_label(channel) -> str:
    """A channel's label (its source's CodeMeaning, e.g. 'Lead II'); '' for an unlabelled channel."""
    source = _first_item(channel, "ChannelSourceSequence")
    return str(source.get("CodeMeaning", "")) if source is not None else ""


def _sensitivity_unit(channel) -> str:
    """A channel's sensitivity unit code, lower case (e.g. 'uv'); '' when missing."""
    units_item = _first_item(channel, "ChannelSensitivityUnitsSequence")
    return str(units_item.get("CodeValue", "")).strip().lower() if units_item is not None else ""


def _check_channel_factors(channel, path: Path) -> None:
    """A lead channel's sensitivity and correction factor, when stated, must be positive and finite."""
    name = _channel_label(channel)
    if canonical_lead_name(name) is None:
        return  # not a lead the kit reads
    for keyword in ("ChannelSensitivity", "ChannelSensitivityCorrectionFactor"):
        value = channel.get(keyword)
        if value is not None:
            positive_factor(value, f"channel {name!r}: {keyword}", path)


def is_dicom(path: Path) -> bool:
    """DICOM Part 10: the 4 bytes "DICM" after a 128-byte preamble."""
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[128:132] == b"DICM"
    except OSError:
        return False
