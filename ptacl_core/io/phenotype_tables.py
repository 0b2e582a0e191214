"""Phenotype tables into the kit's names (``phenotypes.PHENOTYPES``): a generic CSV with a column mapping,
and UK Biobank's CMR imaging-derived phenotypes (fields 24100-24109, imaging visit = instance 2).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ptacl_core.phenotypes import PHENOTYPES

# The one table mapping UK Biobank fields to the kit's names (METHOD.md §1). Field titles on the UK Biobank
# showcase (category 102, "Cardiac output and function"): LV end diastolic volume, LV end systolic volume,
# LV stroke volume, LV ejection fraction, LV cardiac output, LV myocardial mass, RV end diastolic volume,
# RV end systolic volume, RV stroke volume, RV ejection fraction.
UKB_PHENOTYPE_FIELDS: dict[int, str] = {
    24100: "LVEDV_mL", 24101: "LVESV_mL", 24102: "LVSV_mL", 24103: "LVEF_pct", 24104: "LVCO_L_min",
    24105: "LVM_g", 24106: "RVEDV_mL", 24107: "RVESV_mL", 24108: "RVSV_mL", 24109: "RVEF_pct",
}
UKB_IMAGING_INSTANCE = 2


class PhenotypeTableError(ValueError):
    def __init__(self, path: Path | str, problem: str):
        super().__init__(f"{path}: {problem}")


def read_phenotype_csv(path: Path | str, column_map: dict[str, str], id_column: str = "subject_id") -> pd.DataFrame:
    """A CSV of phenotypes in any naming; ``column_map`` maps its columns to the kit's names."""
    path = Path(path)
    table = pd.read_csv(path, dtype={id_column: str})
    missing = [c for c in [id_column, *column_map] if c not in table.columns]
    if missing:
        raise PhenotypeTableError(path, f"missing column(s) {missing}")
    unknown = sorted(set(column_map.values()) - set(PHENOTYPES))
    if unknown:
        raise PhenotypeTableError(path, f"column_map targets {unknown} are not kit phenotypes {list(PHENOTYPES)}")
    out = table[[id_column, *column_map]].rename(columns={id_column: "subject_id", **column_map})
    if out.subject_id.duplicated().any():
        raise PhenotypeTableError(path, f"duplicate subject(s) {out.subject_id[out.subject_id.duplicated()].tolist()[:5]}")
    return out


def ukb_column_map(columns: list[str], instance: int = UKB_IMAGING_INSTANCE) -> dict[str, str]:
    """Find fields 24100-24109 at ``instance`` in a UK Biobank table's headers.

    Understands the showcase/ukbconv style (``24100-2.0``) and the Research Analysis Platform style
    (``p24100_i2``).
    """
    mapping = {}
    for column in columns:
        match = re.fullmatch(rf"(\d+)-{instance}\.0", column) or re.fullmatch(rf"p(\d+)_i{instance}(?:_a0)?", column)
        if match and int(match.group(1)) in UKB_PHENOTYPE_FIELDS:
            mapping[column] = UKB_PHENOTYPE_FIELDS[int(match.group(1))]
    return mapping


def read_ukb_phenotypes(path: Path | str, instance: int = UKB_IMAGING_INSTANCE) -> pd.DataFrame:
    """UK Biobank CMR phenotypes (fields 24100-24109, imaging instance) with the kit's column names."""
    path = Path(path)
    header = pd.read_csv(path, nrows=0).columns.tolist()
    id_column = "eid" if "eid" in header else "participant.eid" if "participant.eid" in header else None
    if id_column is None:
        raise PhenotypeTableError(path, "no eid column: not a UK Biobank table?")
    mapping = ukb_column_map(header, instance)
    if not mapping:
        raise PhenotypeTableError(path, f"none of fields 24100-24109 at instance {instance} in the header")
    table = read_phenotype_csv(path, mapping, id_column=id_column)
    return table.dropna(subset=[c for c in table.columns if c != "subject_id"], how="all")
