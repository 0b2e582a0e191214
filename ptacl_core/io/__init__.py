"""Readers, one module per source format family. Each returns arrays in the kit's units."""

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
