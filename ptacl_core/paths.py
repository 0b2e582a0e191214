"""Where the kit keeps things: data, figures, executed notebooks, and the real test files.

Defaults are folders of the repository (``data/``, ``runs/``, ``figures/``, ``outputs/``); each can be moved with
an environment variable (``PTACL_DATA``, ``PTACL_RUNS``, ``PTACL_FIGURES``, ``PTACL_OUTPUTS``), e.g. to a scratch
disk on a cluster.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The repository root when the kit is installed editable, else the current directory."""
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").exists():
        return here
    return Path.cwd()


def _from_env(variable: str, default: Path) -> Path:
    value = os.environ.get(variable)
    return Path(value).expanduser() if value else default


def data_root() -> Path:
    return _from_env("PTACL_DATA", project_root() / "data")


def runs_root() -> Path:
    """Where training runs go (``runs/<name>/``; the layout is ``ptacl_core.training.runs``)."""
    return _from_env("PTACL_RUNS", project_root() / "runs")


def figures_root() -> Path:
    return _from_env("PTACL_FIGURES", project_root() / "figures")


def outputs_root() -> Path:
    return _from_env("PTACL_OUTPUTS", project_root() / "outputs")


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def default_cohort_dir() -> Path:
    """The embedded default: the synthetic paired cohort."""
    return data_root() / "synthetic"


def null_cohort_dir() -> Path:
    """The null-control twin of the default cohort (``--coupling none``): the same hearts, ECG timing decoupled."""
    return data_root() / "synthetic_null"


def realdata_dir() -> Path | None:
    """``../shared/realdata`` beside the repository (real files for tests), or None when absent."""
    candidate = _from_env("PTACL_REALDATA", project_root().parent / "shared" / "realdata")
    return candidate if candidate.is_dir() else None
