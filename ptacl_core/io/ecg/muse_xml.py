"""GE MUSE resting-ECG XML (``<RestingECG>``): base64 int16 ``WaveFormData`` per lead in the ``Rhythm`` and
``Median`` waveforms; 8 stored leads, the four others derived."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

import numpy as np

from ptacl_core.io.ecg.record import Ecg, EcgReadError, add_lead, assemble, checked_rate, the_one
from ptacl_core.io.ecg.xml_safety import xml_root
from ptacl_core.leads import canonical_lead_name

_MUSE_UNITS_TO_MV = {"MICROVOLTS": 1e-3, "MILLIVOLTS": 1.0, "VOLTS": 1e3}


def read_muse_xml(path: Path | str, part: str = "strip") -> Ecg:
    """Read a GE MUSE resting-ECG XML export (``<RestingECG>``, MUSE 8 and 9 layouts).

    part: ``"strip"`` for the ``Rhythm`` waveform (10 s), ``"median"`` for the ``Median`` beat. Each lead's
    ``WaveFormData`` is base64 of little-endian int16, scaled by ``LeadAmplitudeUnitsPerBit`` in
    ``LeadAmplitudeUnits``; the rate is ``SampleBase`` x 10^``SampleExponent``. MUSE stores 8 leads (I, II,
    V1-V6): III, aVR, aVL and aVF are derived and named in ``Ecg.derived_leads``.
    """
    path = Path(path)
    kind = {"strip": "Rhythm", "median": "Median"}.get(part)
    if kind is None:
        raise ValueError(f"part must be 'strip' or 'median', not {part!r}")
    root = xml_root(path)
    if root.tag != "RestingECG":
        raise EcgReadError(path, f"root element <{root.tag}>, not <RestingECG>: not a GE MUSE export")
    waveform = the_one([w for w in root.findall("Waveform") if (w.findtext("WaveformType") or "").strip() == kind],
                       f"<Waveform> elements of type {kind}", path)
    if waveform is None:
        found = [w.findtext("WaveformType") for w in root.findall("Waveform")]
        raise EcgReadError(path, f"no <Waveform> of type {kind} (found {found})")
    try:
        fs = float(waveform.findtext("SampleBase")) * 10.0 ** float(waveform.findtext("SampleExponent") or 0)
    except (TypeError, ValueError) as error:
        raise EcgReadError(path, f"{kind} waveform lacks a numeric SampleBase/SampleExponent") from error
    fs = checked_rate(fs, path)
    channels: dict[str, np.ndarray] = {}
    for lead_data in waveform.findall("LeadData"):
        name = (lead_data.findtext("LeadID") or "").strip()
        lead = canonical_lead_name(name)
        if lead is None:
            continue
        units = (lead_data.findtext("LeadAmplitudeUnits") or "MICROVOLTS").strip().upper()
        if units not in _MUSE_UNITS_TO_MV:
            raise EcgReadError(path, f"lead {name}: unknown LeadAmplitudeUnits {units!r}; expected {sorted(_MUSE_UNITS_TO_MV)}")
        try:
            per_bit = float(lead_data.findtext("LeadAmplitudeUnitsPerBit"))
        except (TypeError, ValueError) as error:
            raise EcgReadError(path, f"lead {name}: no numeric LeadAmplitudeUnitsPerBit") from error
        if not np.isfinite(per_bit) or per_bit <= 0:
            raise EcgReadError(path, f"lead {name}: LeadAmplitudeUnitsPerBit {per_bit!r} is not a positive finite number")
        text = "".join((lead_data.findtext("WaveFormData") or "").split())
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as error:
            raise EcgReadError(path, f"lead {name}: WaveFormData is not valid base64 ({error})") from error
        expected_bytes = lead_data.findtext("LeadByteCountTotal")
        if expected_bytes is not None and expected_bytes.strip().isdigit() and int(expected_bytes) != len(raw):
            raise EcgReadError(path, f"lead {name}: {len(raw)} bytes of samples, the header says {int(expected_bytes)} "
                                     "(truncated?)")
        if len(raw) % 2:
            raise EcgReadError(path, f"lead {name}: an odd number of bytes ({len(raw)}) for int16 samples")
        add_lead(channels, lead, np.frombuffer(raw, dtype="<i2").astype(np.float64) * per_bit * _MUSE_UNITS_TO_MV[units],
                 path)
    if not channels:
        raise EcgReadError(path, f"the {kind} waveform holds no recognised lead")
    return assemble(channels, fs, path, derive=True)
