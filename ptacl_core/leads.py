"""The 12 standard leads, in the kit's order, and lead-name normalisation."""

LEAD_NAMES: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)

_CANONICAL = {name.upper(): name for name in LEAD_NAMES}


def canonical_lead_name(name: str) -> str | None:
    """Map a lead label as written by a device ("avr", "AVR", "V1 ", "Lead II", DICOM's "Lead I (Einthoven)") to the
    kit's name.

    Returns None for channels that are not one of the 12 standard leads (e.g. Frank "vx").
    """
    key = name.strip().upper()
    if key.startswith("LEAD "):
        key = key[5:].strip()
    if "(" in key:  # a qualifier, e.g. DICOM's "(EINTHOVEN)" or "(GOLDBERGER)"
        key = key[: key.index("(")].strip()
    return _CANONICAL.get(key)
