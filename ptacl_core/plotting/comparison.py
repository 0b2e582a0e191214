"""The figures of the comparison (notebook 05), in the kit's style (``style.kit_style``), sized for a two-column
paper; each function returns its Figure, ``plotting.save_figure`` writes PNG + PDF. Methods are filled circles
on solid lines in their registry colour, reference rows (bounds: supervised model, CMR embedding, feature rows)
hollow grey markers on dashed lines (``style.method_style``); phenotypes are named by ``phenotypes.display_name``
and ``axis_label``."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from ptacl_core.leads import LEAD_NAMES
from ptacl_core.methods import label, ordered
from ptacl_core.phenotypes import PHENOTYPES, axis_label, display_name, unit
from ptacl_core.plotting.style import (
    CONDITION_COLOURS,
    CONDITION_MARKERS,
    DOUBLE_COLUMN_IN,
    LETTERS,
    SINGLE_COLUMN_IN,
    UNKNOWN_COLOUR,
    bin_ticks,
    condition_legend_label,
    condition_short,
    image_window,
    is_reference,
    kit_style,
    method_style,
    panel_title,
    present_conditions,
    suptitle,
    zero_border,
)

METRIC_LABELS = {"r2": "test R²", "pearson": "Pearson r", "r2_within": "test R² within condition"}
MAP_NAMES = {"tsne": "t-SNE", "pca": "PCA"}
CLIPPED_MARKER = "<"  # a value or interval end beyond the axis floor


def _wrapped(method: str, width: int = 26) -> str:
    return textwrap.fill(label(method), width)


@kit_style
def plot_probe_r2(summary: pd.DataFrame, fraction: float = 1.0, metric: str = "r2", floor: float = -1.0,
                  phenotypes=None) -> plt.Figure:
    """Small multiples, one lettered panel per phenotype: the mean test R² over seeds (dot) and the bootstrap 95%
    interval of the seed mean (line) of every method (rows; methods first, then the reference rows, hollow on a
    grey band). The axis stops at ``floor``; values or intervals below it end in a ``<`` at the floor (the tables
    keep every value)."""
    subset = summary[np.isclose(summary.fraction, fraction)]
    names = ordered(subset.method)
    methods = [m for m in names if not is_reference(m)] + [m for m in names if is_reference(m)]
    n_methods = sum(not is_reference(m) for m in methods)
    phenotypes = [p for p in (phenotypes or PHENOTYPES) if p in set(subset.phenotype)]
    keyed = subset.set_index(["method", "phenotype"])
    n_cols = min(len(phenotypes), 5)
    n_rows = int(np.ceil(len(phenotypes) / n_cols))
    wrapped = [_wrapped(m, 24) for m in methods]
    heights = np.array([1.0 + 0.8 * w.count("\n") for w in wrapped])  # a row per method, taller for a wrapped label
    y = np.cumsum(heights) - heights / 2
    row_height = 0.135 * heights.sum()
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(DOUBLE_COLUMN_IN, n_rows * (row_height + 0.55) + 0.75),
                                squeeze=False, sharex=True, sharey=True, layout="constrained")
    high_limit = 1.0
    clipped_any = False
    for index, (axis, phenotype) in enumerate(zip(axes.ravel(), phenotypes, strict=False)):
        if n_methods < len(methods):
            axis.axhspan(heights[:n_methods].sum(), heights.sum(), color="0.93", lw=0, zorder=0)
        axis.axvline(0.0, color="0.6", lw=0.6, zorder=1)
        for row, method in enumerate(methods):
            if (method, phenotype) not in keyed.index:
                continue
            record = keyed.loc[(method, phenotype)]
            value, low, high = (float(record[k]) for k in (metric, f"{metric}_low", f"{metric}_high"))
            style = method_style(method)
            low, high = min(low, value), max(high, value)  # a point may sit just outside its percentile interval
            axis.plot([max(low, floor), min(high, high_limit)], [y[row], y[row]], color=style["color"], lw=1.0,
                      ls="-", solid_capstyle="butt", zorder=2)
            if value < floor:
                axis.plot(floor, y[row], CLIPPED_MARKER, color=style["color"], ms=4, zorder=3,
                          markerfacecolor=style["markerfacecolor"])
            else:
                axis.plot(value, y[row], style["marker"], color=style["color"], ms=4, zorder=3,
                          markerfacecolor=style["markerfacecolor"], markeredgewidth=0.9)
            if low < floor and value >= floor:
                axis.plot(floor, y[row], CLIPPED_MARKER, color=style["color"], ms=3, zorder=3)
            clipped_any |= low < floor
        panel_title(axis, LETTERS[index], display_name(phenotype))
    for axis in axes.ravel()[len(phenotypes):]:
        axis.axis("off")
    first = axes[0, 0]
    first.set_xlim(floor - 0.08 * (high_limit - floor), high_limit + 0.04 * (high_limit - floor))
    first.set_ylim(heights.sum(), 0.0)
    first.set_yticks(y, wrapped)
    for axis in axes[:, 0]:
        axis.set_ylabel("method")
        for tick, method in zip(axis.get_yticklabels(), methods, strict=True):
            tick.set_color("0.3" if is_reference(method) else "k")
    for axis in axes.ravel():
        if axis.axison:
            axis.tick_params(axis="y", length=0)
    metric_label = METRIC_LABELS.get(metric, metric)
    for column in range(n_cols):
        bottom = max(r for r in range(n_rows) if r * n_cols + column < len(phenotypes))
        axes[bottom, column].set_xlabel(metric_label)
        axes[bottom, column].xaxis.set_tick_params(labelbottom=True)
    handles = [Line2D([], [], marker="o", color="0.2", ls="-", ms=4, label="method: mean over seeds, 95% CI"),
               Line2D([], [], marker="s", color="0.35", markerfacecolor="white", ls="-", ms=4,
                      label="reference row (a bound, grey band)")]
    if clipped_any:
        handles.append(Line2D([], [], marker=CLIPPED_MARKER, color="0.2", ls="", ms=4, label=f"beyond {metric_label} = {floor:g}"))
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    suptitle(figure, f"Linear probe on frozen embeddings, {fraction:.0%} of training labels: {metric_label} per phenotype")
    return figure


@kit_style
def plot_predicted_vs_true(predictions: pd.DataFrame, conditions: dict[str, str], method: str = "ptacl", seed: int = 0,
                           phenotypes=("LVEF_pct", "LVEDV_mL")) -> plt.Figure:
    """Test predictions of one run against the CMR truth (one lettered panel per phenotype, equal axes), coloured
    and shaped by condition (legend on the right, off the data), identity line dashed."""
    figure, axes = plt.subplots(1, len(phenotypes), figsize=(DOUBLE_COLUMN_IN, 3.0), squeeze=False, layout="constrained")
    present = present_conditions(conditions.get(s, "unknown") for s in set(predictions.subject_id))
    for index, (axis, phenotype) in enumerate(zip(axes[0], phenotypes, strict=True)):
        rows = predictions[(predictions.method == method) & (predictions.seed == seed) & (predictions.phenotype == phenotype)]
        subject_conditions = np.array([conditions.get(s, "unknown") for s in rows.subject_id])
        for condition in present:
            chosen = subject_conditions == condition
            if chosen.any():
                axis.scatter(rows.true[chosen], rows.predicted[chosen], s=14, color=CONDITION_COLOURS.get(condition, UNKNOWN_COLOUR),
                             marker=CONDITION_MARKERS.get(condition, "o"), alpha=0.85, linewidths=0.3, edgecolors="white",
                             zorder=3)
        values = np.concatenate([rows.true.to_numpy(), rows.predicted.to_numpy()]) if len(rows) else np.array([0.0, 1.0])
        low, high = float(np.nanmin(values)), float(np.nanmax(values))
        pad = 0.05 * (high - low or 1.0)
        limits = (low - pad, high + pad)
        axis.plot(limits, limits, "--", color="0.5", lw=0.8, zorder=1)
        axis.set_xlim(limits)
        axis.set_ylim(limits)
        axis.set_aspect("equal", adjustable="box")
        residual = rows.predicted - rows.true
        r2 = 1 - (residual ** 2).sum() / ((rows.true - rows.true.mean()) ** 2).sum() if len(rows) > 1 else float("nan")
        mae_unit = f" {unit(phenotype)}" if unit(phenotype) else ""
        panel_title(axis, LETTERS[index], f"{display_name(phenotype)}: R² {r2:.2f}, MAE {residual.abs().mean():.1f}{mae_unit}".replace("-", "−"))
        axis.set_xlabel(axis_label(phenotype, "CMR"))
        axis.set_ylabel(axis_label(phenotype, "ECG-predicted"))
    handles = [Line2D([], [], marker=CONDITION_MARKERS.get(c, "o"), ls="", color=CONDITION_COLOURS.get(c, UNKNOWN_COLOUR),
                      label=textwrap.fill(condition_legend_label(c), 18)) for c in present]
    handles.append(Line2D([], [], ls="--", color="0.5", label="identity"))
    figure.legend(handles=handles, loc="outside right center", title="condition")
    suptitle(figure, f"{label(method)} (seed {seed}): phenotypes predicted from the ECG embedding, test split")
    return figure


@kit_style
def plot_retrieval_panel(queries: list[dict], fs: float, seconds: float = 4.0, method: str = "") -> plt.Figure:
    """One row per query: its ECG (lead II, mV) and the mid-ventricular end-diastolic frame of its own CMR and
    of its top-3 retrieved patients, each captioned with its rank, LVEF and condition and framed in the
    condition's colour. Each query dict: ``ecg`` (12, L), ``title``, ``own_frame`` (S, S) or None, ``lvef`` and
    ``condition`` (optional), and ``retrieved``: dicts with ``frame`` (S, S), ``title``, ``lvef``, ``condition``
    (the last two optional: the caption is then the title). ``method``: its label goes into the suptitle."""
    n_retrieved = max(len(q["retrieved"]) for q in queries)
    n_images = 1 + n_retrieved
    figure = plt.figure(figsize=(DOUBLE_COLUMN_IN, 1.45 * len(queries) + 0.75), layout="constrained")
    grid = figure.add_gridspec(len(queries), 1 + n_images, width_ratios=[2.6] + [1] * n_images)
    lead = LEAD_NAMES.index("II")
    first_ecg, seen = None, []
    for row, query in enumerate(queries):
        axis = figure.add_subplot(grid[row, 0], sharex=first_ecg)
        first_ecg = first_ecg or axis
        trace = np.asarray(query["ecg"])[lead]
        t = np.arange(min(len(trace), int(seconds * fs))) / fs
        axis.plot(t, trace[: len(t)], color="black", lw=0.6)
        axis.set_ylabel("II (mV)")
        axis.yaxis.set_major_locator(MaxNLocator(4, steps=[1, 2, 5, 10]))  # few ticks: their labels (and the layout) stay put
        if row == len(queries) - 1:
            axis.set_xlabel("time (s)")
        else:
            axis.tick_params(labelbottom=False)
        caption = (f"query: LVEF {query['lvef']:.0f} %, {condition_short(query['condition'])}" if "lvef" in query
                   and "condition" in query else textwrap.fill(query.get("title", "query"), 44))
        panel_title(axis, LETTERS[row], caption)
        images = [(query.get("own_frame"), "own CMR", query.get("condition"))]
        for rank, retrieved in enumerate(query["retrieved"], start=1):
            caption = (f"#{rank}: LVEF {retrieved['lvef']:.0f} %\n{condition_short(retrieved['condition'])}"
                       if "lvef" in retrieved and "condition" in retrieved
                       else "\n".join(textwrap.fill(line, 18) for line in retrieved.get("title", f"#{rank}").splitlines()))
            images.append((retrieved["frame"], caption, retrieved.get("condition")))
        for column, (frame, caption, condition) in enumerate(images):
            axis = figure.add_subplot(grid[row, 1 + column])
            axis.set_xticks([])
            axis.set_yticks([])
            if frame is not None:
                frame = np.asarray(frame, dtype=float)
                rows, columns = zero_border(frame)
                vmin, vmax = image_window(frame[rows, columns])
                axis.imshow(frame[rows, columns], cmap="gray", vmin=vmin, vmax=vmax)
            colour = CONDITION_COLOURS.get(condition, UNKNOWN_COLOUR) if condition else "0.6"
            for spine in axis.spines.values():
                spine.set_visible(True)
                spine.set_color(colour)
                spine.set_linewidth(2.0)
            axis.set_title(caption, fontsize=7)
            if condition:
                seen.append(condition)
    if seen:
        handles = [Patch(facecolor="white", edgecolor=CONDITION_COLOURS.get(c, UNKNOWN_COLOUR), lw=2.0,
                         label=condition_legend_label(c)) for c in present_conditions(seen)]
        figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), title="frame: condition")
    by = f" ({label(method)} ECG embedding)" if method else ""
    suptitle(figure, f"ECG→ECG retrieval{by}: test ECGs and the CMR (ED, mid slice) of their top-3 retrieved patients")
    return figure


@kit_style
def plot_mean_phase_alignment(matrices: dict[str, np.ndarray]) -> plt.Figure:
    """K x K mean cosine similarity (ECG phase bin x CMR phase bin, 1..K) per method, side by side. Each matrix is
    drawn minus its own off-diagonal mean (one diverging scale for all), so that the diagonal's contrast (same
    phase vs other phases) is comparable across methods whose similarities sit at different levels; each title
    gives the raw means on and off the diagonal."""
    names = list(matrices)
    centred, titles = {}, {}
    for name in names:
        matrix = np.asarray(matrices[name], dtype=float)
        off_diagonal = ~np.eye(len(matrix), dtype=bool)
        diagonal, off = np.nanmean(np.diag(matrix)), np.nanmean(matrix[off_diagonal])
        centred[name] = matrix - off
        titles[name] = f"{textwrap.fill(label(name), 30)}\nsame phase {diagonal:.3f}, other {off:.3f}"
    limit = max(float(np.nanmax(np.abs(m))) for m in centred.values()) or 1.0
    side = min(2.0, (DOUBLE_COLUMN_IN - 1.1) / max(len(names), 1))
    figure, axes = plt.subplots(1, len(names), figsize=(side * len(names) + 1.1, side + 0.8), squeeze=False,
                                sharey=True, layout="constrained")
    image = None
    for index, (axis, name) in enumerate(zip(axes[0], names, strict=True)):
        image = axis.imshow(centred[name], cmap="PuOr_r", vmin=-limit, vmax=limit)
        bin_ticks(axis, len(centred[name]))
        panel_title(axis, LETTERS[index], titles[name])
        axis.set_xlabel("CMR phase bin")
    axes[0, 0].set_ylabel("ECG phase bin")
    figure.colorbar(image, ax=axes, shrink=0.85, label="cosine similarity\n− its off-diagonal mean")
    return figure


@kit_style
def plot_embedding_map(coordinates: dict[str, np.ndarray], lvef: np.ndarray, conditions: np.ndarray, how: str) -> plt.Figure:
    """2-D maps of ECG embeddings (``how``: t-SNE or PCA), one column per method: coloured by LVEF (top row, one
    colour bar) and by condition (bottom row, one legend below), both off the data."""
    names = list(coordinates)
    map_name = MAP_NAMES.get(how.lower(), how)
    side = min(1.9, (DOUBLE_COLUMN_IN - 1.0) / max(len(names), 1))
    width = max(side * len(names) + 1.0, SINGLE_COLUMN_IN)
    figure, axes = plt.subplots(2, len(names), figsize=(width, 2 * side + 1.5), squeeze=False,
                                layout="constrained")
    conditions = np.asarray(conditions).astype(str)
    present = present_conditions(conditions)
    size = 9 if len(lvef) <= 300 else 4
    scatter = None
    for column, name in enumerate(names):
        xy = np.asarray(coordinates[name])
        scatter = axes[0, column].scatter(xy[:, 0], xy[:, 1], c=lvef, cmap="viridis", s=size, linewidths=0)
        for condition in present:
            chosen = conditions == condition
            axes[1, column].scatter(xy[chosen, 0], xy[chosen, 1], s=size, linewidths=0,
                                    color=CONDITION_COLOURS.get(condition, UNKNOWN_COLOUR),
                                    marker=CONDITION_MARKERS.get(condition, "o"), label=condition_legend_label(condition))
        for row, what in enumerate(("LVEF", "condition")):
            axis = axes[row, column]
            axis.set_xticks([])
            axis.set_yticks([])
            axis.set_xlabel(f"{map_name} 1")
            axis.set_ylabel(f"{map_name} 2")
            panel_title(axis, LETTERS[row * len(names) + column], f"{textwrap.fill(label(name), 20)}: {what}")
    figure.colorbar(scatter, ax=axes[0, :], label=axis_label("LVEF_pct"), shrink=0.9)
    handles = [Line2D([], [], marker=CONDITION_MARKERS.get(c, "o"), ls="", ms=4, color=CONDITION_COLOURS.get(c, UNKNOWN_COLOUR),
                      label=condition_legend_label(c)) for c in present]
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), title="condition")
    suptitle(figure, f"{map_name} maps of the ECG embeddings (every cached subject)")
    return figure


@kit_style
def plot_label_efficiency(summary: pd.DataFrame, phenotypes=("LVEF_pct", "LVEDV_mL"), floor: float = -1.0) -> plt.Figure:
    """Test R² against the share of training labels (log axis), one lettered panel per phenotype: one line per
    method with the 95% interval of its seed mean as error bars (methods solid and filled, reference rows dashed
    and hollow); the axis stops at ``floor``, values below it drawn as ``v`` at the floor (the tables keep every
    value). The legend sits on the right, off the data."""
    figure, axes = plt.subplots(1, len(phenotypes), figsize=(DOUBLE_COLUMN_IN, 2.9), squeeze=False, sharey=True,
                                layout="constrained")
    methods = ordered(summary.method)
    methods = [m for m in methods if not is_reference(m)] + [m for m in methods if is_reference(m)]
    clipped_any, handles = False, {}
    fractions_all = sorted(summary.fraction.unique())
    for index, (axis, phenotype) in enumerate(zip(axes[0], phenotypes, strict=True)):
        subset = summary[summary.phenotype == phenotype]
        present = [m for m in methods if m in set(subset.method)]
        for position, method in enumerate(present):
            rows = subset[subset.method == method].sort_values("fraction")
            style = method_style(method)
            dodge = 10 ** (0.025 * (position - (len(present) - 1) / 2))  # side by side on the log axis
            x = rows.fraction.to_numpy() * 100 * dodge
            value = rows.r2.to_numpy()
            low, high = np.minimum(rows.r2_low.to_numpy(), value), np.maximum(rows.r2_high.to_numpy(), value)
            shown = np.maximum(value, floor)
            axis.vlines(x, np.maximum(low, floor), np.maximum(high, floor), color=style["color"], lw=0.7, alpha=0.8)
            line, = axis.plot(x, shown, color=style["color"], ls=style["linestyle"], lw=1.0, marker=style["marker"], ms=3.5,
                              markerfacecolor=style["markerfacecolor"], markeredgewidth=0.8, label=_wrapped(method, 30))
            below = value < floor
            if below.any():
                axis.plot(x[below], shown[below], "v", color=style["color"], ms=5, markerfacecolor="white")
                clipped_any = True
            handles.setdefault(method, line)
        axis.set_xscale("log")
        fractions = [f * 100 for f in fractions_all]
        axis.set_xticks(fractions, [f"{f:g}" for f in fractions])
        axis.minorticks_off()
        axis.set_xlim(min(fractions) / 1.6, max(fractions) * 1.6)
        axis.set_ylim(floor - 0.05, None)
        axis.axhline(0.0, color="0.6", lw=0.6)
        axis.set_xlabel("training labels used (%)")
        panel_title(axis, LETTERS[index], display_name(phenotype))
    axes[0, 0].set_ylabel("test R²")
    legend_handles = [handles[m] for m in methods if m in handles]
    if clipped_any:
        legend_handles.append(Line2D([], [], marker="v", ls="", color="0.3", markerfacecolor="white",
                                     label=f"below R² = {floor:g}\n(drawn at the floor)"))
    figure.legend(handles=legend_handles, loc="outside right center", title="method\n(dashed, hollow: reference row)")
    return figure
