"""The kit's figure standard as a check: ``figure_problems(figure)`` lists what a figure breaks, [] when none.

Rules (each problem names its text or axes):

- **labels**: every axes that shows data (lines, collections, patches, or an image with tick labels; not a
  picture with its axis off or without ticks, not a colour bar) has an x and a y label. A label may come from an
  axes it shares that axis with (stacked panels label the bottom one; a twin axes its parent) or from the
  figure's ``supxlabel`` / ``supylabel``. A colour bar has a label.
- **units**: a label of a quantity carries its unit in parentheses at its end ("LVEF (%)", "time (s)"), unless it
  names a unit-less quantity (``UNITLESS``: "test R²", "Pearson r", "cosine similarity", "rank", "epoch",
  counts ...) or its axis is categorical (text tick labels: methods, conditions).
- **names**: no text shows a raw column or registry name ("LVEF_pct", "ptacl_cross"): figures name things with
  ``phenotypes.display_name`` and ``methods.label``.
- **overlap**: no two visible texts overlap (titles, axis and tick labels, legend texts, annotations, the
  suptitle; bounding boxes after a draw), and no text leaves the figure.
- **text over data**: no legend or free text (annotations, figure texts) covers a data point (line vertices and
  the segments between them, scatter points, bars).
- **size**: the figure is at most ``style.DOUBLE_COLUMN_IN`` wide and no text is smaller than
  ``style.MIN_FONT_PT``, so that it prints at its size in a two-column paper.
"""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.patches import Rectangle
from matplotlib.text import Text

from ptacl_core.plotting.style import DOUBLE_COLUMN_IN, MIN_FONT_PT

# Quantities without a unit: a label that starts with one of these needs no "(unit)".
UNITLESS = ("test R²", "R²", "Pearson r", "mean cosine similarity", "cosine similarity", "rank", "epoch", "method",
            "condition", "ECG phase bin", "CMR phase bin", "phase bin", "t-SNE", "PCA", "subjects", "patients", "beats",
            "count", "quality flag", "lead", "relative", "share", "fraction")
TOLERANCE_PX = 1.0  # bounding boxes may touch by this much (anti-aliasing, rounding)
_UNIT = re.compile(r"\(([^()]*\S[^()]*)\)\s*$")
_NUMBER = re.compile(r"^[−\-+]?(\d+([.,]\d*)?|[.,]\d+)([eE][−\-+]?\d+)?\s*%?$")
_RAW_NAME = re.compile(r"[A-Za-z0-9]_[A-Za-z]")
_MATH = re.compile(r"\$[^$]*\$")


def figure_problems(figure: plt.Figure) -> list[str]:
    """Every break of the kit's figure standard (module docstring), as sentences; [] for a clean figure. Draws
    the figure (its layout engine runs) to measure its texts."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    problems: list[str] = []
    width = figure.get_size_inches()[0]
    if width > DOUBLE_COLUMN_IN + 1e-6:
        problems.append(f"figure is {width:.2f} in wide, more than a double column ({DOUBLE_COLUMN_IN} in)")
    for index, axis in enumerate(figure.axes):
        problems += _label_problems(figure, axis, _axes_name(axis, index))
    texts = _visible_texts(figure)
    for name, text in texts:
        size = text.get_fontsize()
        if size < MIN_FONT_PT - 1e-6:
            problems.append(f"{name} is {size:g} pt, smaller than {MIN_FONT_PT:g} pt")
        if _RAW_NAME.search(_MATH.sub("", text.get_text())):
            problems.append(f"{name} shows a raw column or registry name (an underscore)")
    problems += _overlap_problems(figure, texts, renderer)
    problems += _text_over_data_problems(figure, renderer)
    return problems


def _axes_name(axis: plt.Axes, index: int) -> str:
    title = next((t.get_text() for t in (axis.title, axis._left_title, axis._right_title) if t.get_text()), "")
    return f"axes {index}" + (f" ({_MATH.sub('', title).strip()[:40]!r})" if title else "")


def _is_colorbar(axis: plt.Axes) -> bool:
    return getattr(axis, "_colorbar", None) is not None


def _tick_texts(axis) -> list[str]:
    """The texts of the tick labels an x or y axis draws."""
    if not axis.get_visible():
        return []
    try:
        ticks = axis._update_ticks()  # the ticks inside the view interval (private, but the only exact answer)
    except AttributeError:  # pragma: no cover - an older or newer matplotlib
        ticks = axis.get_major_ticks()
    return [t.label1.get_text() for t in ticks if t.label1.get_visible() and t.label1.get_text().strip()] + \
           [t.label2.get_text() for t in ticks if t.label2.get_visible() and t.label2.get_text().strip()]


def _numeric(text: str) -> bool:
    plain = re.sub(r"\\mathdefault|[{}$^]", "", text).replace("\\times", "").strip()
    return bool(_NUMBER.match(plain)) or bool(re.match(r"^[−\-+]?\d+(\.\d+)?\s*10[−\-+]?\d+$", plain))


def _shows_data(axis: plt.Axes) -> bool:
    if not axis.get_visible() or not axis.axison or _is_colorbar(axis):
        return False
    drawn = [a for a in (*axis.lines, *axis.collections, *axis.patches) if a.get_visible()]
    if drawn:
        return True
    return bool(axis.images) and bool(_tick_texts(axis.xaxis) or _tick_texts(axis.yaxis))


def _shared_label(figure: plt.Figure, axis: plt.Axes, which: str) -> str:
    """The label of ``axis``'s x or y axis, else one of an axes sharing it (a twin, a stacked panel), else the
    figure's sup-label."""
    own = axis.get_xlabel() if which == "x" else axis.get_ylabel()
    if own.strip():
        return own
    group = axis.get_shared_x_axes() if which == "x" else axis.get_shared_y_axes()
    # a twin axes shares its parent's other axis too: twinx shares x
    for sibling in group.get_siblings(axis):
        text = sibling.get_xlabel() if which == "x" else sibling.get_ylabel()
        if sibling is not axis and sibling.get_visible() and text.strip():
            return text
    sup = getattr(figure, "_supxlabel" if which == "x" else "_supylabel", None)
    return sup.get_text() if sup is not None and sup.get_visible() else ""


def _unit_problem(label: str, categorical: bool) -> bool:
    """True when ``label`` names a quantity without its unit in parentheses at the end."""
    if categorical:
        return False
    plain = _MATH.sub("", label).strip()
    if _UNIT.search(plain):
        return False
    lowered = plain.lower()
    return not any(lowered.startswith(name.lower()) for name in UNITLESS)


def _label_problems(figure: plt.Figure, axis: plt.Axes, name: str) -> list[str]:
    if _is_colorbar(axis):
        if not axis.get_visible():
            return []
        label = axis.get_ylabel() or axis.get_xlabel()
        if not label.strip():
            return [f"{name}: colour bar without a label"]
        return [f"{name}: colour-bar label {label!r} has no unit in parentheses"] if _unit_problem(label, False) else []
    if not _shows_data(axis):
        return []
    problems = []
    for which, tick_axis in (("x", axis.xaxis), ("y", axis.yaxis)):
        label = _shared_label(figure, axis, which)
        if not label.strip():
            problems.append(f"{name}: no {which} label")
            continue
        ticks = _tick_texts(tick_axis)
        categorical = bool(ticks) and not all(_numeric(t) for t in ticks)
        if _unit_problem(label, categorical):
            problems.append(f"{name}: {which} label {label!r} has no unit in parentheses (or is not a unit-less "
                            f"quantity of checks.UNITLESS)")
    return problems


def _visible_texts(figure: plt.Figure) -> list[tuple[str, Text]]:
    """(name, Text) of every visible, non-empty text of the figure."""
    found: list[tuple[str, Text]] = []

    def add(name: str, text: Text) -> None:
        if isinstance(text, Text) and text.get_visible() and text.get_text().strip() and text.get_alpha() != 0:
            found.append((f"{name} {text.get_text()[:40]!r}", text))

    def add_legend(name: str, legend) -> None:
        if legend is None or not legend.get_visible():
            return
        add(f"{name} title", legend.get_title())
        for text in legend.get_texts():
            add(f"{name} text", text)

    for text in figure.texts:
        add("figure text", text)
    for legend in figure.legends:
        add_legend("figure legend", legend)
    for index, axis in enumerate(figure.axes):
        if not axis.get_visible():
            continue
        where = _axes_name(axis, index)
        for title in (axis.title, axis._left_title, axis._right_title):
            add(f"{where} title", title)
        if axis.axison:
            for which, tick_axis in (("x", axis.xaxis), ("y", axis.yaxis)):
                if not tick_axis.get_visible():  # a twin's shared axis
                    continue
                add(f"{where} {which} label", tick_axis.label)
                add(f"{where} {which} offset", tick_axis.get_offset_text())
                try:
                    ticks = tick_axis._update_ticks()
                except AttributeError:  # pragma: no cover
                    ticks = tick_axis.get_major_ticks()
                for tick in ticks:
                    if tick.get_visible():
                        add(f"{where} {which} tick label", tick.label1)
                        add(f"{where} {which} tick label", tick.label2)
        for text in axis.texts:
            add(f"{where} text", text)
        add_legend(f"{where} legend", axis.get_legend())
    return found


def _overlap_problems(figure: plt.Figure, texts: list[tuple[str, Text]], renderer) -> list[str]:
    if not texts:
        return []
    boxes = np.array([[b.x0, b.y0, b.x1, b.y1] for b in (t.get_window_extent(renderer) for _, t in texts)])
    problems = []
    page = figure.bbox
    for (name, _), (x0, y0, x1, y1) in zip(texts, boxes, strict=True):
        if x0 < page.x0 - TOLERANCE_PX or y0 < page.y0 - TOLERANCE_PX or x1 > page.x1 + TOLERANCE_PX or y1 > page.y1 + TOLERANCE_PX:
            problems.append(f"{name} leaves the figure")
    x0, y0, x1, y1 = boxes.T
    overlap = ((np.minimum(x1[:, None], x1[None, :]) - np.maximum(x0[:, None], x0[None, :]) > TOLERANCE_PX)
               & (np.minimum(y1[:, None], y1[None, :]) - np.maximum(y0[:, None], y0[None, :]) > TOLERANCE_PX))
    for i, j in zip(*np.nonzero(np.triu(overlap, k=1)), strict=True):
        if texts[i][1] is not texts[j][1]:
            problems.append(f"{texts[i][0]} overlaps {texts[j][0]}")
    return problems


def _densify(points: np.ndarray, step_px: float = 2.0, limit: int = 50_000) -> np.ndarray:
    """Points along a polyline (display coordinates) at most ``step_px`` apart (at most ``limit`` of them)."""
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) < 2:
        return points
    lengths = np.hypot(*np.diff(points, axis=0).T)
    counts = np.minimum(np.ceil(lengths / step_px).astype(int), max(limit // len(points), 1))
    pieces = [points[:-1][i] + (points[1:][i] - points[:-1][i]) * np.linspace(0, 1, n, endpoint=False)[:, None]
              for i, n in enumerate(counts) if n > 1]
    return np.concatenate([points, *pieces]) if pieces else points


def _data_points(axis: plt.Axes, renderer) -> tuple[np.ndarray, list]:
    """Display coordinates of an axes' data points inside its frame, and the display boxes of its bars."""
    points = []
    for line in axis.lines:
        if not line.get_visible() or not line.get_transform().contains_branch(axis.transData):
            continue  # axhline/axvline (axes-fraction extent) are guides, not data
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float))
        points.append(_densify(xy) if line.get_linestyle() not in ("None", "", " ", "none") else xy)
    for collection in axis.collections:
        if not collection.get_visible():
            continue
        if isinstance(collection, PathCollection) and len(collection.get_offsets()):
            points.append(collection.get_offset_transform().transform(np.asarray(collection.get_offsets(), dtype=float)))
        elif isinstance(collection, LineCollection):  # error bars
            transform = collection.get_transform()
            for segment in collection.get_segments():
                if len(segment):
                    points.append(_densify(transform.transform(np.asarray(segment, dtype=float))))
    bars = [p.get_window_extent(renderer) for p in axis.patches if p.get_visible() and isinstance(p, Rectangle)]
    frame = axis.bbox
    if points:
        stacked = np.concatenate(points)
        inside = ((stacked[:, 0] >= frame.x0) & (stacked[:, 0] <= frame.x1) & (stacked[:, 1] >= frame.y0)
                  & (stacked[:, 1] <= frame.y1))
        return stacked[inside], bars
    return np.empty((0, 2)), bars


def _text_over_data_problems(figure: plt.Figure, renderer) -> list[str]:
    free = [(f"figure text {t.get_text()[:40]!r}", t) for t in figure.texts if t.get_visible() and t.get_text().strip()]
    free += [("figure legend", legend) for legend in figure.legends if legend.get_visible()]
    for index, axis in enumerate(figure.axes):
        if not axis.get_visible():
            continue
        where = _axes_name(axis, index)
        free += [(f"{where} text {t.get_text()[:40]!r}", t) for t in axis.texts if t.get_visible() and t.get_text().strip()]
        if axis.get_legend() is not None and axis.get_legend().get_visible():
            free.append((f"{where} legend", axis.get_legend()))
    if not free:
        return []
    data = [(_axes_name(axis, index), *_data_points(axis, renderer)) for index, axis in enumerate(figure.axes)
            if axis.get_visible() and axis.axison and not _is_colorbar(axis)]
    problems = []
    for name, artist in free:
        box = artist.get_window_extent(renderer)
        x0, y0, x1, y1 = box.x0 + TOLERANCE_PX, box.y0 + TOLERANCE_PX, box.x1 - TOLERANCE_PX, box.y1 - TOLERANCE_PX
        for where, points, bars in data:
            covered = int(((points[:, 0] > x0) & (points[:, 0] < x1) & (points[:, 1] > y0) & (points[:, 1] < y1)).sum())
            covered += sum(1 for b in bars if min(b.x1, x1) > max(b.x0, x0) and min(b.y1, y1) > max(b.y0, y0))
            if covered:
                problems.append(f"{name} covers data of {where} ({covered} points)")
    return problems
