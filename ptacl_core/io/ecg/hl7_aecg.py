"""HL7 v3 annotated ECGs (FDA aECG): ``SLIST_PQ`` lead sequences, origin + scale x digits."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ptacl_core.io.ecg.record import (
    MV_PER_UNIT,
    Ecg,
    EcgReadError,
    add_lead,
    assemble,
    checked_rate,
    positive_factor,
    the_one,
)
from ptacl_core.io.ecg.xml_safety import xml_root
from ptacl_core.leads import canonical_lead_name

_AECG_NS = "{urn:hl7-org:v3}"
_AECG_SERIES = {"strip": "RHYTHM", "median": "REPRESENTATIVE_BEAT"}
_PQ_TO_S = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def read_hl7_aecg(path: Path | str, part: str = "strip") -> Ecg:
    """Read an HL7 v3 annotated ECG (FDA aECG, ``<AnnotatedECG xmlns="urn:hl7-org:v3">``).

    part: ``"strip"`` reads the ``series`` coded RHYTHM, ``"median"`` the derived series coded
    REPRESENTATIVE_BEAT. In its ``sequenceSet`` the time sequence's ``increment`` (s or ms) gives the rate and each
    lead sequence (code ``MDC_ECG_LEAD_<name>``) holds ``SLIST_PQ`` samples: origin + scale x digits, in uV, mV or
    V. Missing limb leads are derived from I and II.
    """
    path = Path(path)
    wanted = _AECG_SERIES.get(part)
    if wanted is None:
        raise ValueError(f"part must be 'strip' or 'median', not {part!r}")
    root = xml_root(path)
    if root.tag != f"{_AECG_NS}AnnotatedECG":
        raise EcgReadError(path, f"root element {root.tag}, not HL7 v3 AnnotatedECG")
    series = [s for s in root.iter() if s.tag in (f"{_AECG_NS}series", f"{_AECG_NS}derivedSeries")]
    chosen = the_one([s for s in series if _code(s) == wanted], f"series coded {wanted}", path)
    if chosen is None and part == "strip":  # an uncoded rhythm series: the only plain series there is
        chosen = the_one([s for s in series if s.tag == f"{_AECG_NS}series"], "series, none coded RHYTHM,", path)
    if chosen is None:
        raise EcgReadError(path, f"no series coded {wanted} (found {[_code(s) for s in series if _code(s) is not None]})")
    sequence_set = chosen.find(f"{_AECG_NS}component/{_AECG_NS}sequenceSet")
    if sequence_set is None:
        raise EcgReadError(path, f"the {wanted} series has no sequenceSet")
    rates: list[tuple[str, float]] = []
    channels: dict[str, np.ndarray] = {}
    for sequence in sequence_set.iter(f"{_AECG_NS}sequence"):
        code = _code(sequence) or ""
        value = sequence.find(f"{_AECG_NS}value")
        if value is None:
            continue
        if code.startswith("TIME_"):
            rates.append((code, _sampling_rate(value, code, path)))
            continue
        lead = canonical_lead_name(code.removeprefix("MDC_ECG_LEAD_")) if code.startswith("MDC_ECG_LEAD_") else None
        if lead is not None:
            add_lead(channels, lead, _lead_samples_mv(value, lead, path), path)
    if not rates:
        raise EcgReadError(path, f"the {wanted} series has no time sequence (its increment gives the sampling rate)")
    if len({fs for _, fs in rates}) > 1:  # which increment times the leads is unknown
        raise EcgReadError(path, f"the {wanted} series has time sequences with different rates "
                                 f"({', '.join(f'{code}: {fs:g} Hz' for code, fs in rates)}): ambiguous, refused")
    return assemble(channels, rates[0][1], path, derive=True)


def _code(element: ET.Element) -> str | None:
    """The ``code`` attribute of an element's ``<code>`` child (None without one)."""
    code = element.find(f"{_AECG_NS}code")
    return code.get("code") if code is not None else None


def _sampling_rate(value: ET.Element, code: str, path: Path) -> float:
    """The rate in Hz of a time sequence's ``GLIST`` value: 1 / its ``increment`` (s, ms or us)."""
    increment = value.find(f"{_AECG_NS}increment")
    try:
        step = float(increment.get("value")) * _PQ_TO_S[(increment.get("unit") or "s").lower()]
    except (AttributeError, TypeError, ValueError, KeyError) as error:
        raise EcgReadError(path, f"time sequence {code}: no usable increment (value in s or ms)") from error
    return checked_rate(1.0 / step if step > 0 else float("nan"), path)


def _lead_samples_mv(value: ET.Element, lead: str, path: Path) -> np.ndarray:
    """(L,) mV of a lead's ``SLIST_PQ`` value: origin + scale x digits; the scale must be positive (a negative one
    inverts the lead, zero flattens it)."""
    origin, scale = value.find(f"{_AECG_NS}origin"), value.find(f"{_AECG_NS}scale")
    if origin is None or scale is None:
        raise EcgReadError(path, f"lead {lead}: SLIST_PQ value without origin and scale")
    units = [(element.get("unit") or "").lower() for element in (origin, scale)]
    if any(unit not in MV_PER_UNIT for unit in units):
        raise EcgReadError(path, f"lead {lead}: units {units}; expected uV, mV or V")
    try:
        offset = float(origin.get("value")) * MV_PER_UNIT[units[0]]
        scale_value = float(scale.get("value"))
    except (AttributeError, TypeError, ValueError) as error:
        raise EcgReadError(path, f"lead {lead}: no numeric origin and scale") from error
    step_mv = positive_factor(scale_value, f"lead {lead}: scale", path) * MV_PER_UNIT[units[1]]
    try:
        digits = np.array((value.findtext(f"{_AECG_NS}digits") or "").split(), dtype=np.float64)
    except ValueError as error:
        raise EcgReadError(path, f"lead {lead}: non-numeric digits ({error})") from error
    return offset + step_mv * digits
