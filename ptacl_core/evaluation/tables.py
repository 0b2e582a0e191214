"""The results-table layout, as ``training.runs`` owns the run layout: every table notebooks 02-04 write under
``<figures>/tables/`` and the report reads back, by name, with the functions that write and read them.

    figures/tables/
      02_runs.csv, 02_phase_clock_margin.csv        notebook 02: one row per run; margins per method
      02_probe_r2_by_seed.csv, 02_probe_r2.csv      notebook 02: the quick LVEF/LVEDV probe (point estimates)
      probe_per_seed.csv, probe_summary.csv         notebook 03: ridge probes per seed, and over seeds
      probe_differences.csv, probe_predictions.csv  notebook 03: paired differences; test predictions (ids)
      heart_rate_probe.csv                          notebook 03: heart rate decoded from each embedding
      probe_validation.csv                          notebook 03: the primary family fitted on train, scored on val
      retrieval_per_seed.csv, retrieval_summary.csv notebook 04: retrieval metrics per seed, and over seeds
      retrieval_differences.csv                     notebook 04: paired differences
      endpoints_<kind>.csv                          notebooks 03/04: endpoint rows before Holm (kind: probe, retrieval)
      endpoint_samples_<kind>.npz                   notebooks 03/04: what the twin contrast resamples

The retrieval tables' ``direction`` column takes the values of ``DIRECTIONS`` (kept here, torch-free, so the
report, the endpoints, the comparison and the explorer share one spelling).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ptacl_core.io.csv_cells import read_kit_csv, write_csv

TABLES = "tables"  # the folder under figures/

ECG_TO_ECG, ECG_TO_CMR = "ECG→ECG", "ECG→CMR"
DIRECTIONS = (ECG_TO_ECG, ECG_TO_CMR)  # retrieval: ECG queries against ECGs, and against CMRs

RUNS = "02_runs.csv"
MARGINS = "02_phase_clock_margin.csv"
QUICK_PROBE_BY_SEED = "02_probe_r2_by_seed.csv"
QUICK_PROBE = "02_probe_r2.csv"
PROBE_PER_SEED = "probe_per_seed.csv"
PROBE_SUMMARY = "probe_summary.csv"
PROBE_DIFFERENCES = "probe_differences.csv"
PROBE_PREDICTIONS = "probe_predictions.csv"
HEART_RATE = "heart_rate_probe.csv"
PROBE_VALIDATION = "probe_validation.csv"
RETRIEVAL_PER_SEED = "retrieval_per_seed.csv"
RETRIEVAL_SUMMARY = "retrieval_summary.csv"
RETRIEVAL_DIFFERENCES = "retrieval_differences.csv"
ENDPOINT_KINDS = ("probe", "retrieval")
ENDPOINT_SAMPLES_GLOB = "endpoint_samples_*.npz"


def endpoints_name(kind: str) -> str:
    """``endpoints_<kind>.csv``: the endpoint rows (before Holm) of notebook 03 (probe) or 04 (retrieval)."""
    _check_kind(kind)
    return f"endpoints_{kind}.csv"


def endpoint_samples_name(kind: str) -> str:
    """``endpoint_samples_<kind>.npz``: the per-seed points and subject resamples of the compared methods."""
    _check_kind(kind)
    return f"endpoint_samples_{kind}.npz"


def _check_kind(kind: str) -> None:
    if kind not in ENDPOINT_KINDS:
        raise ValueError(f"endpoint kind must be one of {ENDPOINT_KINDS}, got {kind!r}")


def tables_dir(figures_dir: Path | str) -> Path:
    """``<figures_dir>/tables``: where the results tables live (not created)."""
    return Path(figures_dir) / TABLES


def write_table(frame: pd.DataFrame, folder: Path | str, name: str, index: bool = False,
                formula_safe: bool = False) -> Path:
    """Write ``frame`` as ``folder/name`` (the folder created); formula_safe: text cells escaped
    (``io.csv_cells.write_csv``: tables that carry a cohort's subject ids). Returns the path."""
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if formula_safe:
        write_csv(frame, path, index=index)
    else:
        frame.to_csv(path, index=index)
    return path


def read_table(folder: Path | str, name: str, required: bool = True, ids: bool = False) -> pd.DataFrame | None:
    """``folder/name`` read back; None when it is absent and not ``required`` (a FileNotFoundError naming it
    otherwise). ids: a table with subject ids written formula-safe (read with ``read_kit_csv``)."""
    path = Path(folder) / name
    if not path.exists():
        if required:
            raise FileNotFoundError(f"{path}: missing; the notebook that writes {name} has not run for this folder")
        return None
    return read_kit_csv(path) if ids else pd.read_csv(path)


REQUIRED = {"probe": PROBE_SUMMARY, "probe_differences": PROBE_DIFFERENCES, "retrieval": RETRIEVAL_SUMMARY,
            "retrieval_differences": RETRIEVAL_DIFFERENCES}
OPTIONAL = {"runs": RUNS, "margins": MARGINS, "heart_rate": HEART_RATE}


@dataclass
class ResultTables:
    """probe: ProbeResults.summary(); probe_differences: rows of ProbeResults.paired_difference; retrieval:
    summarise_retrieval's over-seed table; retrieval_differences: rows of retrieval_difference."""

    probe: pd.DataFrame
    probe_differences: pd.DataFrame
    retrieval: pd.DataFrame
    retrieval_differences: pd.DataFrame
    endpoints: pd.DataFrame | None = None  # endpoint_rows of notebooks 03 and 04 (before Holm)
    runs: pd.DataFrame | None = None  # notebook 02's run table (training_summary.run_table)
    margins: pd.DataFrame | None = None  # notebook 02's phase-clock margins per method (training_summary.margin_table)
    heart_rate: pd.DataFrame | None = None  # notebook 03's heart-rate probe per run (diagnostics.heart_rate_probe)

    @classmethod
    def read(cls, folder: Path | str) -> ResultTables:
        """The tables of a ``figures/tables`` folder; a FileNotFoundError naming the missing ones."""
        folder = Path(folder)
        missing = [name for name in REQUIRED.values() if not (folder / name).exists()]
        if missing:
            raise FileNotFoundError(f"{folder}: missing {missing}; run notebooks 03 (probing) and 04 (retrieval) first")
        endpoints = [read_table(folder, endpoints_name(kind), required=False) for kind in ENDPOINT_KINDS]
        endpoints = [frame for frame in endpoints if frame is not None and not frame.empty]
        return cls(**{key: read_table(folder, name) for key, name in REQUIRED.items()},
                   endpoints=pd.concat(endpoints, ignore_index=True) if endpoints else None,
                   **{key: read_table(folder, name, required=False) for key, name in OPTIONAL.items()})
