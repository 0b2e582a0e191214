"""UK Biobank CardioSoft XML (field 20205): the 10 s ``StripData`` and the 1.2 s ``MedianSamples``, scaled by
``Resolution`` in µV per LSB."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ptacl_core.io.ecg.record import Ecg, EcgReadError, add_lead, assemble, checked_rate, the_one
from ptacl_core.io.ecg.xml_safety import xml_root
from ptacl_core.leads import canonical_lead_name


def read_ukb_xml(path: Path | str, part: str = "strip") -> Ecg:
    """Read a UK Biobank CardioSoft XML export (field 20205).

    part: ``"strip"`` for the 10 s rhythm strip (12 x 5000 at 500 Hz), ``"median"`` for the median beat
    (12 x 600 at 500 Hz).
    """
    path = Path(path)
    section = {"strip": "StripData", "median": "MedianSamples"}.get(part)
    if section is None:
        raise ValueError(f"part must be 'strip' or 'median', not {part!r}")
    root = xml_root(path)
    node = the_one(root.findall(f".//{section}"), f"<{section}> elements", path)
    if node is None:
        raise EcgReadError(path, f"no <{section}> element: not a CardioSoft resting-ECG export?")
    try:
        fs = float(node.findtext("SampleRate"))
        resolution_uv = float(node.findtext("Resolution"))
    except (TypeError, ValueError) as error:
        raise EcgReadError(path, f"<{section}> lacks a numeric SampleRate or Resolution") from error
    fs = checked_rate(fs, path)
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
        add_lead(channels, lead, counts * resolution_uv * 1e-3, path)
    return assemble(channels, fs, path)
