"""Reading and writing the kit's files: each reader returns arrays in the kit's units and names the file and the
problem when it cannot.

- ``ecg/``: resting 12-lead ECGs, one module per format (WFDB, UK Biobank XML, GE MUSE XML, DICOM waveform,
  HL7 aECG), the shared assembly and the XML safety; ``read_ecg`` picks the reader (re-exported here);
- ``cmr``: cine CMR (NIfTI, DICOM series, UK Biobank zips) into ``(X, Y, Z, T)`` arrays, and label maps;
- ``cohort_tables``: a cohort's ``manifest.csv`` and ``phenotypes.csv``, checked and joined by subject_id;
- ``manifest_builder``: a cohort's ``manifest.csv`` from a folder of files, with deterministic splits;
- ``phenotype_tables``: phenotype tables (a generic CSV, UK Biobank fields) into the kit's names;
- ``csv_cells``: CSV written safely (no cell a spreadsheet would execute) and read back (the kit's missing markers).
"""

from ptacl_core.io.ecg import (
    Ecg,
    EcgReadError,
    read_dicom_ecg,
    read_ecg,
    read_hl7_aecg,
    read_muse_xml,
    read_ukb_xml,
    read_wfdb,
)

__all__ = ["Ecg", "EcgReadError", "read_dicom_ecg", "read_ecg", "read_hl7_aecg", "read_muse_xml", "read_ukb_xml", "read_wfdb"]
