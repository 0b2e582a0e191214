"""Read resting 12-lead ECGs into ``(12, L)`` arrays in mV, in the kit's lead order.

Sources: WFDB records (``.hea`` + ``.dat``/``.mat``, any rate, any lead order, extra channels ignored,
unit strings in any case), UK Biobank CardioSoft XML (field 20205: the 10 s ``StripData`` and the
1.2 s ``MedianSamples``, scaled by ``Resolution`` in µV per LSB) and GE MUSE XML (``<RestingECG>``: base64
int16 ``WaveFormData`` per lead in ``Rhythm`` and ``Median`` waveforms; 8 stored leads, the four others derived),
DICOM ECG waveforms (Waveform Sequence, read through pydicom, recognised by the DICM signature), HL7 v3
annotated ECGs (FDA aECG: ``SLIST_PQ`` lead sequences, origin + scale x digits), Philips PageWriter/TraceMaster XML
(``<restingecgdata>``: XLI-compressed base64, limb leads stored as residuals; decompressed with ``sierraecg``),
SCP-ECG (EN 1064 binary, decoded by ``ecgdatakit``; 8 stored leads, a missing standard lead named, never
substituted) and EDF/EDF+/BDF (``edfio``; header and file size checked first, the first ``max_seconds`` read).
XML is told apart by its decoded root element (UTF-8 with or without a byte-order mark, UTF-16, 8-bit encodings),
not its extension, and parsed without entity declarations (expat refuses a file that declares any, in any encoding:
no entity expansion) and without fetching a DTD. Every reader refuses a zero or negative scale (gain, sensitivity,
correction factor, resolution, scale), a lead stored twice with different samples (identical copies are kept once)
and two candidates for what it reads (two rhythm waveforms, time sequences of different rates); the DICOM reader
checks the file size and each group's declared size before decoding.

One module per format (``wfdb_records``, ``ukb_xml``, ``muse_xml``, ``dicom_waveform``, ``hl7_aecg``, ``philips_xml``,
``scp_ecg``, ``edf``), the shared assembly in ``record``, the XML safety in ``xml_safety``; ``read_ecg`` picks the
reader from the file's content (``ECG_SUFFIXES``: the extensions a folder of ECGs is searched for).
"""

from __future__ import annotations

from pathlib import Path

from ptacl_core.io.ecg.dicom_waveform import is_dicom, read_dicom_ecg
from ptacl_core.io.ecg.edf import is_edf, read_edf
from ptacl_core.io.ecg.hl7_aecg import read_hl7_aecg
from ptacl_core.io.ecg.muse_xml import read_muse_xml
from ptacl_core.io.ecg.philips_xml import read_philips_xml
from ptacl_core.io.ecg.record import Ecg, EcgReadError, derive_limb_leads
from ptacl_core.io.ecg.scp_ecg import is_scp, read_scp_ecg
from ptacl_core.io.ecg.ukb_xml import read_ukb_xml
from ptacl_core.io.ecg.wfdb_records import read_wfdb, write_wfdb
from ptacl_core.io.ecg.xml_safety import xml_kind

__all__ = ["ECG_SUFFIXES", "Ecg", "EcgReadError", "derive_limb_leads", "read_dicom_ecg", "read_ecg", "read_edf",
           "read_hl7_aecg", "read_muse_xml", "read_philips_xml", "read_scp_ecg", "read_ukb_xml", "read_wfdb", "write_wfdb"]

# the extensions a folder of ECG files is searched for (files are read by content, whatever their name)
ECG_SUFFIXES = (".hea", ".xml", ".dcm", ".scp", ".edf", ".bdf")


def read_ecg(path: Path | str, max_seconds: float | None = 60.0) -> Ecg:
    """Read any supported ECG file, the reader chosen by content: a WFDB record (its ``.hea``, a ``.dat``/``.mat``
    beside one, or the record name), else DICOM (the DICM signature, or ``.dcm``), SCP-ECG (section 0 at byte 7),
    EDF/BDF (the version field), XML by its root element (GE MUSE, HL7 aECG, Philips, else UK Biobank CardioSoft).
    max_seconds bounds how much of a WFDB or EDF record is read (the other formats hold about 10 s)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".hea" or (suffix in {".dat", ".mat"} and path.with_suffix(".hea").exists()) or (
            suffix == "" and Path(str(path) + ".hea").exists()):
        return read_wfdb(path.with_suffix(".hea") if suffix else path, max_seconds)
    if path.exists() and not path.is_file():  # a FIFO or device would block the read forever
        raise EcgReadError(path, "not a regular file")
    if path.is_file():
        if suffix == ".dcm" or is_dicom(path):
            return read_dicom_ecg(path)
        if is_scp(path):
            return read_scp_ecg(path)
        if is_edf(path):
            return read_edf(path, max_seconds)
    kind = xml_kind(path) if path.is_file() else None
    if kind == "muse":
        return read_muse_xml(path)
    if kind == "aecg":
        return read_hl7_aecg(path)
    if kind == "philips":
        return read_philips_xml(path)
    if kind in ("ukb", "xml"):  # a CardioSoft export, or XML of another kind (read_ukb_xml names what is missing)
        return read_ukb_xml(path)
    if suffix in {"", ".dat", ".mat"}:  # a WFDB record without its header: read_wfdb names what is missing
        return read_wfdb(path.with_suffix(".hea") if suffix else path, max_seconds)
    raise EcgReadError(path, f"unknown ECG format {path.suffix!r}; expected WFDB (.hea), DICOM waveform, GE MUSE XML, "
                             "Philips XML, SCP-ECG, EDF/BDF, HL7 aECG or UK Biobank XML (recognised by content)")
