"""The cohort's tables (METHOD.md §1): ``manifest.csv`` and ``phenotypes.csv``, joined by subject_id."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ptacl_core.io.csv_cells import read_kit_csv
from ptacl_core.phenotypes import EVALUATED

MANIFEST_COLUMNS = ("subject_id", "ecg", "cmr", "split")
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)  # train / val / test, for every split the kit assigns


class CohortError(ValueError):
    """A cohort table that breaks the data contract; the message names the file and the problem."""


def read_table(path: Path) -> pd.DataFrame:
    """A cohort CSV with subject_id read as text, verbatim (an id "NA" or "007" stays itself), the usual missing
    markers elsewhere; an empty, undecodable or malformed file is a ``CohortError`` naming it."""
    try:  # a manifest written by build-manifest carries formula-safe cells (ptacl_core.io.csv_cells)
        return read_kit_csv(path, encoding="utf-8")
    except pd.errors.EmptyDataError as error:
        raise CohortError(f"{path}: the file is empty (expected a CSV header and rows)") from error
    except UnicodeDecodeError as error:
        raise CohortError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); save the table as UTF-8 "
                          "(a UTF-16 export from a spreadsheet?)") from error
    except pd.errors.ParserError as error:
        raise CohortError(f"{path}: not a readable CSV ({error})") from error


def read_manifest(cohort_dir: Path | str) -> pd.DataFrame:
    path = Path(cohort_dir) / "manifest.csv"
    if not path.exists():
        raise CohortError(f"{path}: no manifest.csv in the cohort folder")
    table = read_table(path)
    missing = [c for c in MANIFEST_COLUMNS if c not in table.columns]
    if missing:
        raise CohortError(f"{path}: missing column(s) {missing}; expected {list(MANIFEST_COLUMNS)}")
    blank = table.subject_id.isna() | (table.subject_id.str.strip() == "")
    if blank.any():
        raise CohortError(f"{path}: blank subject_id in row(s) {(table.index[blank] + 2).tolist()[:5]}")
    duplicated = table.subject_id[table.subject_id.duplicated()].unique().tolist()
    if duplicated:
        raise CohortError(f"{path}: duplicate subject_id(s) {duplicated[:5]}")
    bad_split = sorted(set(table.split.fillna("<blank>").astype(str)) - set(SPLITS))
    if bad_split:
        raise CohortError(f"{path}: unknown split value(s) {bad_split}; expected {list(SPLITS)}")
    return table


def read_phenotypes(cohort_dir: Path | str) -> pd.DataFrame:
    path = Path(cohort_dir) / "phenotypes.csv"
    if not path.exists():
        raise CohortError(f"{path}: no phenotypes.csv in the cohort folder")
    table = read_table(path)
    if "subject_id" not in table.columns:
        raise CohortError(f"{path}: no subject_id column")
    for column in [c for c in EVALUATED if c in table.columns]:
        numbers = pd.to_numeric(table[column], errors="coerce")
        bad = numbers.isna() & table[column].notna()
        if bad.any():
            row = int(table.index[bad][0])
            raise CohortError(f"{path}: column {column} holds text where a number belongs: {table[column].iloc[row]!r} "
                              f"in row {row + 2} (subject {table.subject_id.iloc[row]})")
        table[column] = numbers
    duplicated = table.subject_id[table.subject_id.duplicated()].unique().tolist()
    if duplicated:
        raise CohortError(f"{path}: duplicate subject_id(s) {duplicated[:5]}")
    return table


def read_cohort(cohort_dir: Path | str) -> pd.DataFrame:
    """Manifest joined with phenotypes on subject_id (never by row position); the manifest alone when the
    cohort has no phenotypes.csv."""
    manifest = read_manifest(cohort_dir)
    if not (Path(cohort_dir) / "phenotypes.csv").exists():
        return manifest
    phenotypes = read_phenotypes(cohort_dir)
    orphans = sorted(set(phenotypes.subject_id) - set(manifest.subject_id))
    if orphans:
        raise CohortError(f"{Path(cohort_dir) / 'phenotypes.csv'}: row(s) for subject(s) not in the manifest: {orphans[:5]}")
    return manifest.merge(phenotypes, on="subject_id", how="left", validate="one_to_one")
