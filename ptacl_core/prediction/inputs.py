"""Which files a ``predict`` call names: its ECG inputs (files, folders of ECGs, or a manifest) and its output
folder (``check_output``, checked before any prediction is computed)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ptacl_core.io.ecg import ECG_SUFFIXES
from ptacl_core.prediction.predictor import PredictionError

PREDICTION_TABLES = ("predictions.csv", "nearest_patients.csv")  # what predict writes into its output folder


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


def check_output(folder: Path | str) -> Path:
    """The output folder of ``predict``, checked before anything is computed; a ``PredictionError`` naming it when
    predict could not write its tables there or would write them through a link.

    By design predict creates the folder (and missing parents) and overwrites its own two tables
    (``PREDICTION_TABLES``) in it, leaving every other file alone. Refused: a folder that is a file (or anything but a
    folder), a dangling link, a missing parent under a file, a place this user may not write, and a table name that is
    a link (it would overwrite the file it points to) or not a plain file."""
    folder = Path(folder)
    if folder.is_symlink() and not folder.exists():
        raise PredictionError(f"--out {folder}: a symbolic link to nothing; name a folder")
    if folder.exists() and not folder.is_dir():
        raise PredictionError(f"--out {folder}: exists and is not a folder (predict writes {' and '.join(PREDICTION_TABLES)} "
                              "into a folder); name a folder")
    existing = folder
    while not existing.exists() and not existing.is_symlink() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise PredictionError(f"--out {folder}: cannot be created, {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PredictionError(f"--out {folder}: {existing} is not writable")
    for name in PREDICTION_TABLES:
        table = folder / name
        if table.is_symlink():
            raise PredictionError(f"--out {folder}: {name} is a symbolic link; predict overwrites its tables and "
                                  "does not write through links")
        if table.exists() and not table.is_file():
            raise PredictionError(f"--out {folder}: {name} exists and is not a plain file")
    return folder
