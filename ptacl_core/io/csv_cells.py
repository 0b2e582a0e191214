"""CSV cells a spreadsheet would execute, written safely.

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to Excel, LibreOffice
and Google Sheets (CSV/formula injection): a subject id or a file name read from a cohort could run there. Every
CSV the kit writes with text from a cohort prefixes such cells with ``'`` (what the spreadsheets themselves use
to mark text); numbers such as ``-1.5`` are left alone. A leading ``'`` is escaped too, so that reading a kit's
table back (``unescape_cell``) gives exactly the original text.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def escape_cell(value):
    """The value, with ``'`` in front when it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _is_number(value):
        return "'" + value
    return value


def unescape_cell(value):
    """Inverse of ``escape_cell`` for the cells of a table the kit wrote."""
    if isinstance(value, str) and len(value) > 1 and value[0] == "'" and value[1] in FORMULA_STARTS:
        return value[1:]
    return value


def escape_frame(table: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells (object columns, and the index when it is text) are escaped."""
    table = table.copy()
    for column in table.columns:
        if _is_text(table[column]):
            table[column] = table[column].map(escape_cell)
    if _is_text(table.index):
        table.index = table.index.map(escape_cell)
    return table


def _is_text(values) -> bool:
    return pd.api.types.is_object_dtype(values.dtype) or pd.api.types.is_string_dtype(values.dtype)


def unescape_columns(table: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """Unescape the named text columns of a table read from a kit's CSV (in place; returns it)."""
    for column in columns:
        if column in table and _is_text(table[column]):
            table[column] = table[column].map(unescape_cell)
    return table


def write_csv(table: pd.DataFrame, path: Path | str, **to_csv) -> None:
    """``table.to_csv(path, **to_csv)`` with formula-safe text cells."""
    escape_frame(table).to_csv(path, **to_csv)


def write_rows(path: Path | str, header: list[str], rows: Iterable[Iterable]) -> None:
    """A CSV from plain rows (``csv.writer``) with formula-safe text cells."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([escape_cell(cell) for cell in row])


MISSING_MARKERS = ["", "NA", "N/A", "NaN", "nan", "null", "NULL"]  # missing cells, except in id columns


def read_kit_csv(path: Path | str, id_columns: tuple[str, ...] = ("subject_id",), **read_csv) -> pd.DataFrame:
    """A CSV the kit wrote, read back: id columns as text, verbatim (an id ``NA`` or ``007`` stays itself); every
    text cell unescaped (``escape_cell``), so a read-and-rewrite (e.g. merging shards) does not escape twice; the
    usual missing markers outside the id columns."""
    columns = pd.read_csv(path, nrows=0, encoding=read_csv.get("encoding")).columns
    dtype = {**{c: str for c in id_columns if c in columns}, **read_csv.pop("dtype", {})}
    table = pd.read_csv(path, dtype=dtype, keep_default_na=False,
                        na_values={c: MISSING_MARKERS for c in columns if c not in id_columns}, **read_csv)
    return unescape_columns(table, [c for c in table.columns if _is_text(table[c])])
