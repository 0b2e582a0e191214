"""XML, parsed safely: no entity declarations (no entity expansion), no DTD fetched, a size bound; and which ECG
format an XML file is, from its root element."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from ptacl_core.io.ecg.record import EcgReadError

MAX_XML_BYTES = 64 * 1024 * 1024  # a resting-ECG export is < 1 MB; refuse anything absurdly larger


def xml_root(path: Path) -> ET.Element:
    """Parse an XML file safely: no entity declarations (billion-laughs style expansion refused before parsing),
    no DTD fetched (ElementTree never loads external DTDs), a size bound; a clear error otherwise."""
    try:
        size = path.stat().st_size
        if size > MAX_XML_BYTES:
            raise EcgReadError(path, f"{size / 1e6:.0f} MB is too large for a resting-ECG XML export")
        data = path.read_bytes()
    except OSError as error:
        raise EcgReadError(path, f"cannot read the file ({error})") from error
    if b"<!ENTITY" in data:
        raise EcgReadError(path, "the XML declares entities (refused: entity expansion is not allowed)")
    try:
        return ET.fromstring(data)  # the XML declaration gives its encoding (ISO-8859-1)
    except (ET.ParseError, LookupError, ValueError) as error:
        raise EcgReadError(path, f"not readable as XML ({error})") from error


def xml_kind(path: Path) -> str | None:
    """Which ECG format an XML file is, from its root element (in its first 4 kB): 'muse' (``RestingECG``), 'ukb'
    (``CardiologyXML``), 'aecg' (``AnnotatedECG``); 'xml' for other XML (or a root beyond 4 kB); None for a file
    that is not XML or cannot be read."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return None
    body = re.sub(rb"<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^\[>]*(\[.*?\])?\s*>", b"", head, flags=re.DOTALL)
    match = re.match(rb"\s*<([A-Za-z_][\w.:-]*)", body)
    if match is None:  # XML whose root lies beyond the first 4 kB, or not XML at all
        return "xml" if head.lstrip().startswith(b"<") else None
    return {b"RestingECG": "muse", b"CardiologyXML": "ukb", b"AnnotatedECG": "aecg"}.get(match.group(1), "xml")
