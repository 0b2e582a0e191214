"""Philips PageWriter / TraceMaster resting-ECG XML ("Sierra" XML, schema 1.03 and 1.04; root ``<restingecgdata>``).

The waveforms are one ``<parsedwaveforms>`` element: base64 of the leads one after another, XLI-compressed (LZW
plus second differences; decompressed by ``sierraecg``'s codec, the maintained reference implementation) or raw
little-endian int16. Philips stores III, aVR, aVL and aVF as residuals of the values Einthoven's and Goldberger's
laws give from I and II, so that they compress well; they are reconstructed here, in integer counts, exactly as the
device computes them. Amplitudes are ``resolution`` (1.04) or ``signalresolution`` (1.03) µV per count, the rate
``samplingrate`` Hz (1.04 repeats both on ``<parsedwaveforms>``: they must agree); the sample count must equal
``durationperchannel`` (ms) x rate; a non-zero ``signaloffset`` or samples other than 16-bit are refused.
"""

from __future__ import annotations

import base64
import binascii
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ptacl_core.io.ecg.record import Ecg, EcgReadError, add_lead, assemble, checked_rate, positive_factor
from ptacl_core.io.ecg.xml_safety import xml_root
from ptacl_core.leads import LEAD_NAMES, canonical_lead_name

NAMESPACE = "{http://www3.medical.philips.com}"
ROOT = "restingecgdata"
_STANDARD_ORDER = LEAD_NAMES  # the order of a 12-channel STD-12 / 10-WIRE acquisition without lead labels
_COMPRESSIONS = ("XLI", "Uncompressed", "")
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024  # decoded <parsedwaveforms>: ~30 kB of XLI for 11 s (16 x 11 s raw int16: 176 kB);
# the XLI (LZW) decoder is pure Python, ~10 µs per byte: the bound keeps a hostile payload under a minute


def _find(element: ET.Element, tag: str) -> ET.Element | None:
    """The first descendant ``tag`` in the Philips namespace or in none (files of both kinds are in use)."""
    found = element.find(f".//{NAMESPACE}{tag}")
    return found if found is not None else element.find(f".//{tag}")


def _text(element: ET.Element, tag: str) -> str | None:
    found = _find(element, tag)
    return None if found is None or found.text is None else found.text.strip()


def reconstruct_limb_leads(stored: dict[str, np.ndarray]) -> None:
    """Undo Philips' limb-lead residuals in place (int64 counts, floor division as the device does): III = II - I -
    r_III; aVR = -r_aVR - floor((I + II) / 2); aVL = floor((I - III) / 2) - r_aVL; aVF = floor((II + III) / 2) -
    r_aVF, with the reconstructed III."""
    lead_i, lead_ii = stored["I"], stored["II"]
    stored["III"] = lead_ii - lead_i - stored["III"]
    stored["aVR"] = -stored["aVR"] - (lead_i + lead_ii) // 2
    stored["aVL"] = (lead_i - stored["III"]) // 2 - stored["aVL"]
    stored["aVF"] = (lead_ii + stored["III"]) // 2 - stored["aVF"]


def _labels(root: ET.Element, waveforms: ET.Element, path: Path) -> list[str]:
    labels = waveforms.get("leadlabels", "").split()
    if labels:
        count = waveforms.get("numberofleads")
        return labels[:int(count)] if count and count.strip().isdigit() else labels
    acquisition = _text(root, "acquisitiontype") or ""
    channels = _text(root, "numberchannelsallocated") or ""
    if acquisition in ("STD-12", "10-WIRE") and channels == "12":
        return list(_STANDARD_ORDER)
    raise EcgReadError(path, f"no lead labels, and acquisition {acquisition!r} with {channels!r} channels has no "
                             "standard lead order")


def _number(value: str, what: str, path: Path) -> float:
    try:
        return float(value)
    except ValueError:
        raise EcgReadError(path, f"{what} {value!r} is not a number") from None


def _agreed(element_value: str | None, attribute_value: str | None, what: str, path: Path) -> float:
    """A positive factor stated in ``<signalcharacteristics>`` and/or (1.04) on ``<parsedwaveforms>``: two values
    that differ are refused (which one the samples follow is unknown)."""
    values = [positive_factor(v, what, path) for v in (element_value, attribute_value) if v is not None]
    if not values:
        raise EcgReadError(path, f"no {what} in <signalcharacteristics> or on <parsedwaveforms>")
    if len(set(values)) > 1:
        raise EcgReadError(path, f"{what} is {values[0]:g} in <signalcharacteristics> but {values[1]:g} on "
                                 "<parsedwaveforms>: ambiguous, refused")
    return values[0]


def read_philips_xml(path: Path | str) -> Ecg:
    """Read a Philips resting-ECG XML export: (12, L) mV at ``samplingrate`` (12 stored leads: nothing derived)."""
    path = Path(path)
    root = xml_root(path)
    if root.tag.rpartition("}")[2] != ROOT:
        raise EcgReadError(path, f"root element <{root.tag}>, not <{ROOT}>: not a Philips export")
    waveforms = _find(root, "parsedwaveforms")
    if waveforms is None or not (waveforms.text or "").strip():
        raise EcgReadError(path, "no <parsedwaveforms> data")
    characteristics = _find(root, "signalcharacteristics")
    where = characteristics if characteristics is not None else root
    fs = checked_rate(_agreed(_text(where, "samplingrate"), waveforms.get("samplespersecond"), "samplingrate", path),
                      path)
    uv_per_count = _agreed(_text(where, "resolution") or _text(where, "signalresolution"), waveforms.get("resolution"),
                           "resolution (µV per count)", path)
    for field, allowed in (("signaloffset", 0.0), ("bitspersample", 16.0)):
        value = waveforms.get(field) or _text(where, field)
        if value is not None and _number(value, field, path) != allowed:
            raise EcgReadError(path, f"{field} {value!r} is not supported (expected {allowed:g})")
    duration_ms = positive_factor(waveforms.get("durationperchannel"), "durationperchannel (ms)", path)
    expected = int(round(duration_ms * fs / 1000))
    encoding = waveforms.get("dataencoding", "")
    if encoding != "Base64":
        raise EcgReadError(path, f"waveform encoding {encoding!r} is not supported (expected Base64)")
    compression = waveforms.get("compressmethod", waveforms.get("compression", ""))
    if compression not in _COMPRESSIONS:
        raise EcgReadError(path, f"waveform compression {compression!r} is not supported (expected XLI or none)")
    labels = _labels(root, waveforms, path)
    try:
        data = base64.b64decode("".join(waveforms.text.split()), validate=True)
    except (binascii.Error, ValueError) as error:
        raise EcgReadError(path, f"<parsedwaveforms> is not valid base64 ({error})") from error
    if len(data) > MAX_PAYLOAD_BYTES:
        raise EcgReadError(path, f"<parsedwaveforms> holds {len(data) / 1e6:.1f} MB of samples: too large for a resting "
                                 f"ECG (at most {MAX_PAYLOAD_BYTES / 1e6:.1f} MB)")
    if compression == "XLI":
        from sierraecg.xli import xli_decode  # lazy: only Philips reads need it

        try:
            leads = xli_decode(data, labels)
        except Exception as error:  # a damaged LZW stream fails inside the codec in many ways: one named error
            raise EcgReadError(path, f"XLI waveform data cannot be decompressed ({type(error).__name__}: {error})") from error
    else:
        if len(data) != 2 * expected * len(labels):
            raise EcgReadError(path, f"{len(data)} bytes of uncompressed samples; {len(labels)} leads x {expected} "
                                     f"samples need {2 * expected * len(labels)} (truncated?)")
        leads = list(np.frombuffer(data, dtype="<i2").reshape(len(labels), expected))
    if len(leads) < len(labels):
        raise EcgReadError(path, f"{len(leads)} waveforms for {len(labels)} lead labels (truncated?)")
    leads = leads[:len(labels)]  # 1.03 files carry unlabelled spare channels after the 12 leads
    wrong = {label: len(samples) for label, samples in zip(labels, leads, strict=True) if len(samples) != expected}
    if wrong:
        why = "truncated?" if min(wrong.values()) < expected else "a damaged header or payload"
        raise EcgReadError(path, f"lead sample counts {wrong} disagree with durationperchannel {duration_ms:g} ms at "
                                 f"{fs:g} Hz ({expected} samples) ({why})")
    stored: dict[str, np.ndarray] = {}
    for label, samples in zip(labels, leads, strict=True):
        lead = canonical_lead_name(label)
        if lead is None:
            continue
        counts = np.asarray(samples, dtype=np.int64)
        if lead in stored and not np.array_equal(stored[lead], counts):
            raise EcgReadError(path, f"lead {lead} is stored twice with different samples: ambiguous, refused")
        stored[lead] = counts
    residuals = [lead for lead in ("III", "aVR", "aVL", "aVF") if lead in stored]
    if residuals and (len(residuals) < 4 or "I" not in stored or "II" not in stored):
        raise EcgReadError(path, f"limb leads {', '.join(residuals)} are stored as residuals of I, II and all four limb "
                                 f"leads, but the file holds {sorted(stored)}: they cannot be reconstructed")
    if residuals:
        reconstruct_limb_leads(stored)
    channels: dict[str, np.ndarray] = {}
    for lead, counts in stored.items():
        add_lead(channels, lead, counts * (uv_per_count * 1e-3), path)
    return assemble(channels, fs, path, derive=not residuals)
