"""XML, parsed safely: no entity declarations (no entity expansion), no DTD fetched, a size bound; and which ECG
format an XML file is, from its root element (in whatever encoding the file is written: UTF-8 with or without a
byte-order mark, UTF-16, or an ASCII-compatible 8-bit encoding such as ISO-8859-1)."""

from __future__ import annotations

import codecs
import re
import xml.etree.ElementTree as ET
import xml.parsers.expat as expat
from pathlib import Path

from ptacl_core.io.ecg.record import EcgReadError

MAX_XML_BYTES = 64 * 1024 * 1024  # a resting-ECG export is < 1 MB; refuse anything absurdly larger
_ROOT_KINDS = {"RestingECG": "muse", "CardiologyXML": "ukb", "AnnotatedECG": "aecg", "restingecgdata": "philips"}


class _EntityDeclared(Exception):
    """Raised from expat's entity-declaration handlers to stop the parse at the first declaration."""


def xml_root(path: Path) -> ET.Element:
    """Parse an XML file safely: a size bound; any entity declaration refused by the parser itself before
    anything could be expanded (in any encoding; the text ``<!ENTITY`` in a comment or CDATA is just text); no DTD
    fetched (neither expat nor ElementTree loads external DTDs or entities); a clear error otherwise."""
    try:
        size = path.stat().st_size
        if size > MAX_XML_BYTES:
            raise EcgReadError(path, f"{size / 1e6:.0f} MB is too large for a resting-ECG XML export")
        data = path.read_bytes()
    except OSError as error:
        raise EcgReadError(path, f"cannot read the file ({error})") from error
    refuse_entity_declarations(data, path)
    try:
        return ET.fromstring(data)  # the XML declaration (or byte-order mark) gives its encoding
    except (ET.ParseError, LookupError, ValueError) as error:
        raise EcgReadError(path, f"not readable as XML ({error})") from error


def refuse_entity_declarations(data: bytes, path: Path) -> None:
    """One pass of expat over the document (bytes, any encoding expat reads) with its entity-declaration handlers
    raising: a document whose DTD declares any entity (general or parameter, internal, external or unparsed) is
    refused before ElementTree, which would expand it, sees it. Malformed XML is a named error here too."""
    parser = expat.ParserCreate()

    def refuse(*_declaration) -> None:
        raise _EntityDeclared

    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    try:
        parser.Parse(data, True)
    except _EntityDeclared:
        raise EcgReadError(path, "the XML declares entities (refused: entity expansion is not allowed)") from None
    except (expat.ExpatError, LookupError, ValueError) as error:
        raise EcgReadError(path, f"not readable as XML ({error})") from error


def decoded_head(head: bytes) -> str:
    """The first bytes of an XML file as text, for finding its root element: UTF-16 by its byte-order mark or, without
    one, by ``<`` beside a zero byte (XML 1.0 appendix F); a UTF-8 byte-order mark dropped; any other bytes read as
    Latin-1, which keeps the ASCII element names of every ASCII-compatible encoding."""
    if head.startswith(codecs.BOM_UTF8):
        return head[len(codecs.BOM_UTF8):].decode("latin-1")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return head.decode("utf-16", errors="replace")
    if head.startswith(b"<\x00"):
        return head.decode("utf-16-le", errors="replace")
    if head.startswith(b"\x00<"):
        return head.decode("utf-16-be", errors="replace")
    return head.decode("latin-1")


def xml_kind(path: Path) -> str | None:
    """Which ECG format an XML file is, from its decoded root element's local name (in its first 4 kB): 'muse'
    (``RestingECG``), 'ukb' (``CardiologyXML``), 'aecg' (``AnnotatedECG``), 'philips' (``restingecgdata``); 'xml' for other XML (or a root beyond
    4 kB); None for a file that is not XML or cannot be read."""
    try:
        with open(path, "rb") as handle:
            head = decoded_head(handle.read(4096))
    except OSError:
        return None
    body = re.sub(r"<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^\[>]*(\[.*?\])?\s*>", "", head, flags=re.DOTALL | re.ASCII)
    match = re.match(r"\s*<([A-Za-z_][\w.:-]*)", body, flags=re.ASCII)
    if match is None:  # XML whose root lies beyond the first 4 kB, or not XML at all
        return "xml" if head.lstrip().startswith("<") else None
    return _ROOT_KINDS.get(match.group(1).rpartition(":")[2], "xml")  # a namespace prefix (hl7:AnnotatedECG) aside
