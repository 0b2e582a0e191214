"""The kit's figure style: colours shared by every figure, ``use_kit_style``, ``save_figure`` (PNG + PDF side by
side into the figures folder) and ``show_figure`` (save, then show the PNG inline in the notebook)."""

from __future__ import annotations

import io
import struct
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


def show_figure(figure: plt.Figure, name: str, figures_dir: Path | str | None) -> None:
    """``save_figure``, then show the saved PNG inline when running in a notebook kernel, and close the figure.

    The image output is written whatever the matplotlib backend (papermill runs with Agg, where a figure left
    open shows nothing), the notebook shows exactly the file in ``figures/``, and closing it keeps the inline
    backend from drawing it a second time. figures_dir None: show only (a figure another notebook saves).
    Returns None, so a cell ending with it prints no paths."""
    if figures_dir is None:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")
        data = buffer.getvalue()
    else:
        data = save_figure(figure, name, figures_dir)[0].read_bytes()
    plt.close(figure)
    try:
        from IPython import get_ipython  # lazy: only a notebook kernel has a display to show the image on
        from IPython.display import Image, display  # lazy: with get_ipython
    except ImportError:  # plain Python without IPython: the files are written, nothing to show
        return
    if get_ipython() is None:
        return
    width_px = struct.unpack(">I", data[16:20])[0]  # the PNG header's IHDR width
    dpi = float(plt.rcParams["savefig.dpi"]) if plt.rcParams["savefig.dpi"] != "figure" else float(figure.dpi)
    display(Image(data=data, format="png", width=round(width_px * 100 / dpi)))  # shown at 100 px per inch
