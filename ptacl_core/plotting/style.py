"""The kit's figure style: colours shared by every figure, ``use_kit_style``, and ``save_figure`` (PNG + PDF side by
side into the figures folder)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt  # the backend is the caller's: inline in JupyterLab, Agg under the runner

CONDITION_COLOURS = {
    "normal": "#4C72B0",
    "dilated_cardiomyopathy": "#DD8452",
    "lv_hypertrophy": "#55A868",
    "myocardial_infarction": "#C44E52",
    "conduction_delay": "#8172B3",
}
LABEL_COLOURS = {1: "#e41a1c", 2: "#4daf4a", 3: "#377eb8"}  # LV cavity, LV myocardium, RV cavity
MARK_COLOUR = "#C44E52"  # R peaks, end-systole, warnings


def use_kit_style() -> None:
    plt.rcParams.update({
        "figure.dpi": 110, "savefig.dpi": 150, "font.size": 9, "axes.titlesize": 10,
        "axes.spines.top": False, "axes.spines.right": False, "axes.grid": False,
    })


def save_figure(figure: plt.Figure, name: str, figures_dir: Path | str) -> list[Path]:
    """Write ``<figures_dir>/<name>.png`` and ``.pdf``; returns the paths."""
    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    paths = [figures_dir / f"{name}.{extension}" for extension in ("png", "pdf")]
    for path in paths:
        figure.savefig(path, bbox_inches="tight")
    return paths
