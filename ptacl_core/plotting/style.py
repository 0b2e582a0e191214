"""The kit's figure style: colours shared by every figure (colour-blind safe), sizes for a two-column paper,
``use_kit_style`` / ``kit_style`` (one set of fonts and lines), panel letters (``panel_title``), how methods,
reference rows and conditions are drawn (``method_style``, ``condition_name``), the image window of a CMR frame
(``zero_border``, ``image_window``), ``save_figure`` (PNG + PDF side by side into the figures folder) and
``show_figure`` (save, then show the PNG inline in the notebook)."""

from __future__ import annotations

import functools
import io
import struct
import textwrap
import warnings
from pathlib import Path

import matplotlib.pyplot as plt  # the backend is the caller's: inline in JupyterLab, Agg under the runner
import numpy as np

from ptacl_core.methods import METHODS, colour

# Okabe & Ito's colour-blind-safe palette (the methods' colours: ``ptacl_core.methods``); every condition also has
# its own marker, so a figure still reads in grey.
CONDITION_COLOURS = {
    "normal": "#0072B2",                  # blue
    "dilated_cardiomyopathy": "#E69F00",  # orange
    "lv_hypertrophy": "#009E73",          # bluish green
    "myocardial_infarction": "#D55E00",   # vermillion
    "conduction_delay": "#CC79A7",        # reddish purple
}
CONDITION_MARKERS = {"normal": "o", "dilated_cardiomyopathy": "s", "lv_hypertrophy": "^", "myocardial_infarction": "D",
                     "conduction_delay": "v"}
CONDITION_ABBREVIATIONS = {"normal": "NL", "dilated_cardiomyopathy": "DCM", "lv_hypertrophy": "LVH",
                           "myocardial_infarction": "MI", "conduction_delay": "CD"}
UNKNOWN_COLOUR = "#888888"  # a condition (or label) the palette does not know
LABEL_COLOURS = {1: "#D55E00", 2: "#F0E442", 3: "#56B4E9"}  # LV cavity, LV myocardium, RV cavity (on a grey image)
LABEL_NAMES = {1: "LV cavity", 2: "LV myocardium", 3: "RV cavity"}
MARK_COLOUR = "#C44E52"  # R peaks, warnings
REFERENCE_MARKERS = ("s", "D", "^", "v", "P", "X")  # reference rows, in registry order; methods are filled circles

# Two-column paper layout: widths in inches, and the smallest font a printed figure keeps at that size.
SINGLE_COLUMN_IN = 3.5
DOUBLE_COLUMN_IN = 7.2
MIN_FONT_PT = 7.0
KIT_RC = {
    "figure.dpi": 110, "savefig.dpi": 200, "font.size": 7.5, "axes.titlesize": 7.5, "axes.labelsize": 7.5,
    "xtick.labelsize": 7, "ytick.labelsize": 7, "legend.fontsize": 7, "legend.title_fontsize": 7,
    "figure.titlesize": 8.5, "figure.labelsize": 7.5, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": False, "axes.linewidth": 0.6, "axes.titlepad": 4.0, "xtick.major.width": 0.6,
    "ytick.major.width": 0.6, "xtick.major.size": 2.5, "ytick.major.size": 2.5, "lines.linewidth": 1.0,
    "lines.markersize": 3.5, "legend.frameon": False, "legend.handlelength": 1.6, "image.cmap": "viridis",
    "pdf.fonttype": 42, "ps.fonttype": 42,  # editable text in the PDF
}


def use_kit_style() -> None:
    """The kit's fonts and lines for every figure drawn after it (the kit's own figures set them themselves)."""
    plt.rcParams.update(KIT_RC)


def kit_style(function):
    """Build a figure under the kit's style whatever the caller's rcParams (a decorator of the plotting functions)."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with plt.rc_context(KIT_RC):
            figure = function(*args, **kwargs)
            for axis in figure.axes:  # tick labels are made at draw time, after the context: fix their size now
                axis.tick_params(which="both", labelsize=KIT_RC["xtick.labelsize"])
        return figure
    return wrapper


def panel_title(axis: plt.Axes, letter: str, title: str = "", **kwargs) -> None:
    """The panel letter (bold, top left) and the panel's title after it, left-aligned above the axes."""
    text = rf"$\mathbf{{{letter}}}$" + (f"  {title}" if title else "")
    axis.set_title(text, loc="left", **kwargs)


def suptitle(figure: plt.Figure, text: str) -> None:
    """The figure's title, wrapped to the figure's width (at the kit's title size; about 0.5 em a character)."""
    width = max(int(figure.get_size_inches()[0] * 72 / (0.5 * KIT_RC["figure.titlesize"])) - 2, 20)
    figure.suptitle(textwrap.fill(text, width))


def is_reference(method: str) -> bool:
    """A reference row of the comparison (a bound: supervised model, CMR embedding, feature rows), not a method."""
    return method in METHODS and METHODS[method].kind == "reference"


def method_style(method: str) -> dict:
    """Line2D keywords of a method: methods are filled circles on solid lines in their colour; reference rows are
    hollow markers (one shape each) on dashed lines, in greys."""
    if is_reference(method):
        references = [name for name in METHODS if is_reference(name)]
        marker = REFERENCE_MARKERS[references.index(method) % len(REFERENCE_MARKERS)]
        return {"color": colour(method), "marker": marker, "markerfacecolor": "white", "linestyle": "--"}
    return {"color": colour(method), "marker": "o", "markerfacecolor": colour(method), "linestyle": "-"}


def condition_name(condition: str) -> str:
    """"lv_hypertrophy" -> "LV hypertrophy"."""
    return " ".join("LV" if word == "lv" else word for word in str(condition).split("_"))


def condition_short(condition: str) -> str:
    """The abbreviation a crowded figure shows ("DCM"); unknown conditions are written out."""
    return CONDITION_ABBREVIATIONS.get(condition, condition_name(condition))


def condition_legend_label(condition: str) -> str:
    """"dilated cardiomyopathy (DCM)": the full name, and the abbreviation the figure's ticks or captions use."""
    short, name = condition_short(condition), condition_name(condition)
    return name if short == name else f"{name} ({short})"


def present_conditions(conditions) -> list[str]:
    """The conditions among ``conditions``, in the palette's order (unknown ones last, alphabetically)."""
    found = {str(c) for c in conditions}
    return [c for c in CONDITION_COLOURS if c in found] + sorted(found - set(CONDITION_COLOURS))


def zero_border(image: np.ndarray) -> tuple[slice, slice]:
    """Row and column slices that drop the all-zero border (crop padding) of an image (H, W) or a stack (..., H, W);
    the whole image when it is all zero."""
    image = np.nan_to_num(np.abs(np.asarray(image, dtype=float)))
    flat = image.reshape(-1, *image.shape[-2:]).max(axis=0)
    rows, columns = np.flatnonzero(flat.max(axis=1) > 0), np.flatnonzero(flat.max(axis=0) > 0)
    if not len(rows):
        return slice(None), slice(None)
    return slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1)


def image_window(image: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """(vmin, vmax) of a grey image: its ``low``-``high`` percentiles, so that a few bright voxels do not set
    the scale."""
    values = np.asarray(image, dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return 0.0, 1.0
    vmin, vmax = (float(v) for v in np.percentile(values, [low, high]))
    return (vmin, vmax) if vmax > vmin else (vmin, vmin + 1.0)


LETTERS = "abcdefghijklmnopqrstuvwxyz"  # panel letters, in order


def bin_ticks(axis: plt.Axes, n_bins: int, which: str = "both") -> None:
    """Phase-bin ticks of a K x K image labelled 1..K (every bin up to K = 12, then about six of them)."""
    step = 1 if n_bins <= 12 else int(np.ceil(n_bins / 6))
    positions = [p for p in range(n_bins) if p == 0 or (p + 1) % step == 0]
    labels = [str(p + 1) for p in positions]
    if which in ("both", "x"):
        axis.set_xticks(positions, labels)
    if which in ("both", "y"):
        axis.set_yticks(positions, labels)


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
    Returns None, so a cell ending with it prints no paths. A figure that breaks the kit's figure standard
    (``checks.figure_problems``: labels and units, overlapping text, size) is shown with a warning naming each
    problem, so an executed notebook says so next to the figure."""
    from ptacl_core.plotting.checks import figure_problems  # lazy: checks imports this module's sizes

    problems = figure_problems(figure)
    if problems:
        warnings.warn(f"figure {name!r} breaks the kit's figure standard: " + "; ".join(problems), stacklevel=2)
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
