"""Which ECG files a ``predict`` call names: files, folders of ECGs, or a manifest."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ptacl_core.prediction.predictor import PredictionError

ECG_SUFFIXES = (".hea", ".xml", ".dcm")


def expand_inputs(inputs: list[Path | str]) -> list[Path]:
    """The ECG files named by ``inputs``: files as given; a folder's ECG files (``ECG_SUFFIXES``, recursively,
    sorted); a manifest (``.csv`` with an ``ecg`` column, paths relative to the manifest's folder)."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in ECG_SUFFIXES)
        elif item.suffix.lower() == ".csv" and item.is_file():
            table = pd.read_csv(item, dtype=str)
            if "ecg" not in table:
                raise PredictionError(f"{item}: a manifest needs an 'ecg' column (found {list(table.columns)})")
            files += [item.parent / value for value in table.ecg.dropna()]
        else:
            files.append(item)
    return files
