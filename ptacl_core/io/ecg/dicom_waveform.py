"""DICOM 12-lead ECG waveforms (Waveform Sequence, read through pydicom), recognised by the DICM signature."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ptacl_core.io.ecg.record import MV_PER_UNIT, Ecg, EcgReadError, assemble, checked_rate
from ptacl_core.leads import canonical_lead_name


def read_dicom_ecg(path: Path | str, part: str = "strip") -> Ecg:
    """Read a DICOM 12-lead ECG waveform (Waveform Sequence; e.g. SOP class 12-Lead ECG Waveform Storage).

    part: ``"strip"`` picks the rhythm multiplex group (labelled RHYTHM, else the longest), ``"median"`` the one
    labelled MEDIAN. Samples are pydicom's ``waveform_array`` (sensitivity, correction factor and baseline
    applied) in each channel's sensitivity units (uV, mV or V); channel labels come from the channel source
    sequence. Missing limb leads are derived from I and II as for MUSE.
    """
    import pydicom  # lazy: 0.45 s at import, needed only for DICOM files
    from pydicom.errors import InvalidDicomError  # lazy: with pydicom

    path = Path(path)
    if part not in ("strip", "median"):
        raise ValueError(f"part must be 'strip' or 'median', not {part!r}")
    try:
        dataset = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError, EOFError) as error:
        raise EcgReadError(path, f"not readable as DICOM ({type(error).__name__}: {error})") from error
    groups = list(dataset.get("WaveformSequence", []))
    if not groups:
        raise EcgReadError(path, "no WaveformSequence: not a DICOM ECG waveform")
    labels = [str(g.get("MultiplexGroupLabel", "")).upper() for g in groups]
    if part == "median":
        chosen = next((i for i, label in enumerate(labels) if "MEDIAN" in label), None)
        if chosen is None:
            raise EcgReadError(path, f"no median-beat multiplex group (groups: {labels})")
    else:
        chosen = next((i for i, label in enumerate(labels) if "RHYTHM" in label), None)
        if chosen is None:  # the longest group is the rhythm strip
            durations = [float(g.NumberOfWaveformSamples) / float(g.SamplingFrequency) for g in groups]
            chosen = int(np.argmax(durations))
    group = groups[chosen]
    fs = checked_rate(group.get("SamplingFrequency", float("nan")), path)
    try:
        samples = dataset.waveform_array(chosen)  # (samples, channels), physical values
    except Exception as error:  # pydicom raises assorted errors on truncated or inconsistent waveform data
        raise EcgReadError(path, f"waveform group {chosen} unreadable ({type(error).__name__}: {error})") from error
    channels: dict[str, np.ndarray] = {}
    for index, channel in enumerate(group.ChannelDefinitionSequence):
        source = channel.get("ChannelSourceSequence", [None])[0]
        name = str(source.get("CodeMeaning", "")) if source is not None else ""
        lead = canonical_lead_name(name)
        if lead is None or lead in channels:
            continue
        units_item = channel.get("ChannelSensitivityUnitsSequence", [None])[0]
        unit = str(units_item.get("CodeValue", "")).strip().lower() if units_item is not None else ""
        if unit not in MV_PER_UNIT:
            raise EcgReadError(path, f"channel {name!r}: sensitivity units {unit or 'missing'!r}; expected uV, mV or V")
        channels[lead] = samples[:, index].astype(np.float64) * MV_PER_UNIT[unit]
    return assemble(channels, fs, path, derive=True)


def is_dicom(path: Path) -> bool:
    """DICOM Part 10: the 4 bytes "DICM" after a 128-byte preamble."""
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[128:132] == b"DICM"
    except OSError:
        return False
