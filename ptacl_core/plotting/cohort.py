"""Figures of the cohort, the cache and training (notebooks 00-02): ECGs, cines, phenotypes by condition, RR and
quality flags, phase similarity. Each function returns its Figure (``style.save_figure`` writes it), sized for a
two-column paper (``style.SINGLE_COLUMN_IN`` / ``style.DOUBLE_COLUMN_IN``) and drawn under ``style.kit_style``;
``checks.figure_problems`` finds nothing in any of them."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt  # the backend is the caller's: inline in JupyterLab, Agg under the runner
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MultipleLocator

from ptacl_core.leads import LEAD_NAMES
from ptacl_core.methods import label as method_label
from ptacl_core.phenotypes import axis_label
from ptacl_core.plotting.style import (
    CONDITION_COLOURS,
    DOUBLE_COLUMN_IN,
    LABEL_COLOURS,
    LABEL_NAMES,
    LETTERS,
    MARK_COLOUR,
    SINGLE_COLUMN_IN,
    UNKNOWN_COLOUR,
    bin_ticks,
    condition_legend_label,
    condition_short,
    image_window,
    kit_style,
    panel_title,
    present_conditions,
    suptitle,
    zero_border,
)

ECG_GRID = "#f4c7c7"  # the pink of ECG paper
VOLUME_COLOUR = "#0072B2"


@kit_style
def plot_ecg_12lead(signal: np.ndarray, fs: float, rpeaks: np.ndarray | None = None, title: str = "",
                    seconds: float | None = None) -> plt.Figure:
    """12 leads (12, L) in mV on a 6 x 2 grid with a shared time axis and one mV scale; R peaks as ticks."""
    n = signal.shape[1] if seconds is None else min(signal.shape[1], int(seconds * fs))
    t = np.arange(n) / fs
    figure, axes = plt.subplots(6, 2, figsize=(DOUBLE_COLUMN_IN, 6.2), sharex=True, sharey=True, layout="constrained")
    for index, (axis, lead) in enumerate(zip(axes.T.ravel(), LEAD_NAMES, strict=True)):
        axis.plot(t, signal[index, :n], lw=0.6, color="k")
        if rpeaks is not None:
            inside = rpeaks[rpeaks < n]
            axis.plot(inside / fs, signal[index, inside], "v", color=MARK_COLOUR, ms=2.5)
        axis.set_ylabel(f"{lead} (mV)")
        axis.grid(True, color=ECG_GRID, lw=0.4)
    for axis in axes[-1]:
        axis.set_xlabel("time (s)")
    if np.ptp(signal[:, :n]) <= 5.0:  # one scale for every lead, ticked (and gridded) every 0.5 mV
        axes[0, 0].yaxis.set_major_locator(MultipleLocator(0.5))
    if title:
        suptitle(figure, title + ("; ▼ R peaks" if rpeaks is not None else ""))
    return figure


@kit_style
def plot_cine_phases(image: np.ndarray, labels: np.ndarray | None, slice_index: int, ed_frame: int, es_frame: int,
                     frame_interval_ms: float, n_strip: int = 10, title: str = "") -> plt.Figure:
    """One slice of a cine (X, Y, Z, T): ED (a) and ES (b) with contours of the masks, then a strip of frames
    over the cycle (c); one grey window (0.5-99.5th percentile) for every frame."""
    n_frames = image.shape[-1]
    strip = np.linspace(0, n_frames - 1, n_strip).round().astype(int)
    frames = np.moveaxis(image[:, :, slice_index, :], -1, 0).transpose(0, 2, 1)  # (T, Y, X), y up with origin lower
    rows, columns = zero_border(frames)
    vmin, vmax = image_window(frames[:, rows, columns])
    figure = plt.figure(figsize=(DOUBLE_COLUMN_IN, 3.7), layout="constrained")
    grid = figure.add_gridspec(2, n_strip, height_ratios=[2.6, 1])
    half = n_strip // 2
    for position, (frame, name) in enumerate(((ed_frame, "ED"), (es_frame, "ES"))):
        axis = figure.add_subplot(grid[0, position * half:(position + 1) * half])
        axis.imshow(frames[frame][rows, columns], cmap="gray", vmin=vmin, vmax=vmax, origin="lower")
        if labels is not None:
            masks = labels[:, :, slice_index, frame].T[rows, columns]
            for value, colour in sorted(LABEL_COLOURS.items(), reverse=True):  # the LV cavity's edge over the myocardium's
                if (masks == value).any():
                    axis.contour(masks == value, levels=[0.5], colors=colour, linewidths=0.9)
        panel_title(axis, LETTERS[position], f"{name}: frame {frame} ({frame * frame_interval_ms:.0f} ms)")
        axis.axis("off")
    for position, frame in enumerate(strip):
        axis = figure.add_subplot(grid[1, position])
        axis.imshow(frames[frame][rows, columns], cmap="gray", vmin=vmin, vmax=vmax, origin="lower")
        if position == 0:
            panel_title(axis, "c", f"{frame * frame_interval_ms:.0f} ms")
        else:
            axis.set_title(f"{frame * frame_interval_ms:.0f} ms", fontsize=7)
        axis.axis("off")
    if labels is not None:
        handles = [Line2D([], [], color=colour, lw=1.5, label=LABEL_NAMES[value]) for value, colour in LABEL_COLOURS.items()]
        figure.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    if title:
        suptitle(figure, title)
    return figure


@kit_style
def plot_electromechanical_coupling(lead: np.ndarray, fs: float, rpeak: int, volume_ml: np.ndarray,
                                    frame_interval_ms: float, t_end_ms: float | None = None,
                                    lead_name: str = "II", title: str = "") -> plt.Figure:
    """One beat of an ECG lead with the LV volume curve on the same time axis (0 = R peak); end-systole (the
    smallest volume) and the end of the T wave as vertical lines, named in the legend below."""
    n_frames = len(volume_ml)
    rr_samples = int(round(n_frames * frame_interval_ms / 1000.0 * fs))
    start = max(rpeak - int(0.2 * fs), 0)
    stop = min(rpeak + rr_samples, len(lead))
    t_ms = (np.arange(start, stop) - rpeak) / fs * 1000.0
    figure, axis = plt.subplots(figsize=(SINGLE_COLUMN_IN, 2.9), layout="constrained")
    handles = axis.plot(t_ms, lead[start:stop], color="k", lw=0.8, label=f"lead {lead_name}")
    axis.set_xlabel("time from R peak (ms)")
    axis.set_ylabel(f"lead {lead_name} (mV)")
    volume_axis = axis.twinx()
    volume_axis.spines["right"].set_visible(True)
    frame_ms = np.arange(n_frames) * frame_interval_ms
    handles += volume_axis.plot(frame_ms, volume_ml, "o-", color=VOLUME_COLOUR, ms=2, lw=1, label="LV volume")
    volume_axis.set_ylabel("LV volume (mL)", color=VOLUME_COLOUR)
    volume_axis.tick_params(axis="y", colors=VOLUME_COLOUR)
    es_frame = int(np.argmin(volume_ml))
    handles.append(axis.axvline(es_frame * frame_interval_ms, color=VOLUME_COLOUR, ls="--", lw=0.8,
                                label=f"end-systole ({es_frame * frame_interval_ms:.0f} ms)"))
    if t_end_ms is not None:
        handles.append(axis.axvline(t_end_ms, color="0.35", ls=":", lw=1.0, label=f"T-wave end ({t_end_ms:.0f} ms)"))
    figure.legend(handles=handles, loc="outside lower center", ncols=2)
    if title:
        axis.set_title(title)
    return figure


@kit_style
def plot_phenotypes_by_condition(phenotypes: pd.DataFrame, columns: list[str]) -> plt.Figure:
    """Box plots of phenotypes (one lettered panel each, display name and unit on the y axis) by condition
    (abbreviated on the x axis, named in the legend); whiskers 1.5 IQR, outliers not drawn."""
    conditions = present_conditions(phenotypes.condition)
    n_cols = min(len(columns), 4)
    n_rows = int(np.ceil(len(columns) / n_cols))
    spare = n_rows * n_cols - len(columns)
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(DOUBLE_COLUMN_IN, 1.75 * n_rows + (0.3 if not spare else 0.1)),
                                squeeze=False, layout="constrained")
    for index, (axis, column) in enumerate(zip(axes.ravel(), columns, strict=False)):
        data = [phenotypes.loc[phenotypes.condition == c, column].dropna().values for c in conditions]
        boxes = axis.boxplot(data, patch_artist=True, showfliers=False, widths=0.6,
                             medianprops={"color": "k", "lw": 1.0}, whiskerprops={"lw": 0.7}, capprops={"lw": 0.7},
                             boxprops={"lw": 0.7})
        for patch, condition in zip(boxes["boxes"], conditions, strict=True):
            patch.set_facecolor(CONDITION_COLOURS.get(condition, UNKNOWN_COLOUR))
            patch.set_alpha(0.85)
        axis.set_xticks(range(1, len(conditions) + 1), [condition_short(c) for c in conditions])
        axis.set_xlabel("condition")
        axis.set_ylabel(axis_label(column))
        panel_title(axis, LETTERS[index])
    handles = [Patch(facecolor=CONDITION_COLOURS.get(c, UNKNOWN_COLOUR), label=condition_legend_label(c)) for c in conditions]
    for axis in axes.ravel()[len(columns):]:
        axis.axis("off")
    if spare:
        axes.ravel()[-1].legend(handles=handles, loc="center", title="condition")
    else:
        figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3))
    return figure


@kit_style
def plot_ecg_before_after(raw: np.ndarray, raw_fs: float, filtered: np.ndarray, fs: float, rpeaks: np.ndarray,
                          leads: tuple[str, ...] = ("II", "V2", "V5"), seconds: float = 5.0, title: str = "") -> plt.Figure:
    """Raw vs preprocessed leads (mV) over the first ``seconds``, with the detected R peaks; one lettered panel
    per lead, the legend below."""
    figure, axes = plt.subplots(len(leads), 1, figsize=(DOUBLE_COLUMN_IN, 1.25 * len(leads) + 0.7), sharex=True,
                                squeeze=False, layout="constrained")
    for index, (axis, lead) in enumerate(zip(axes[:, 0], leads, strict=True)):
        channel = LEAD_NAMES.index(lead)
        n_raw, n = int(seconds * raw_fs), int(seconds * fs)
        axis.plot(np.arange(n_raw) / raw_fs, raw[channel, :n_raw], color="0.6", lw=0.7, label="raw")
        axis.plot(np.arange(n) / fs, filtered[channel, :n], color="k", lw=0.7, label="preprocessed")
        inside = rpeaks[rpeaks < n]
        axis.plot(inside / fs, filtered[channel, inside], "v", color=MARK_COLOUR, ms=3.5, label="R peaks (detected)")
        axis.set_ylabel(f"{lead} (mV)")
        panel_title(axis, LETTERS[index], f"lead {lead}")
    axes[-1, 0].set_xlabel("time (s)")
    figure.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=3)
    if title:
        suptitle(figure, title)
    return figure


@kit_style
def plot_cine_grid(cines: list[np.ndarray], ed_frames: list[int], es_frames: list[int], names: list[str]) -> plt.Figure:
    """Preprocessed crops (T, S, S) at ED (top row) and ES (bottom row), one column per subject; the crop's zero
    padding cut off, each subject in its own grey window (0.5-99.5th percentile of its cine)."""
    n = len(cines)
    side = min(0.9, (DOUBLE_COLUMN_IN - 0.3) / max(n, 1))
    figure, axes = plt.subplots(2, n, figsize=(side * n + 0.3, 2 * side + 0.45), squeeze=False, layout="constrained")
    for column, (cine, ed, es, name) in enumerate(zip(cines, ed_frames, es_frames, names, strict=True)):
        rows, columns = zero_border(cine)
        vmin, vmax = image_window(cine[:, rows, columns])
        for row, frame in enumerate((ed, es)):
            axes[row, column].imshow(cine[frame][rows, columns], cmap="gray", vmin=vmin, vmax=vmax, origin="lower")
            axes[row, column].set_xticks([])
            axes[row, column].set_yticks([])
            for spine in axes[row, column].spines.values():  # the axes stays on for the ED / ES row labels
                spine.set_visible(False)
        axes[0, column].set_title(textwrap.shorten(str(name), 14, placeholder="…"), fontsize=7)
    axes[0, 0].set_ylabel("ED")
    axes[1, 0].set_ylabel("ES")
    return figure


@kit_style
def plot_rr_and_flags(rr_ms: np.ndarray, flag_counts: pd.Series) -> plt.Figure:
    """Histogram of RR intervals (ms) over the cohort (a), and how many subjects raised each quality flag (b)."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(DOUBLE_COLUMN_IN, 2.3), gridspec_kw={"width_ratios": [2, 1]},
                                         layout="constrained")
    left.hist(rr_ms, bins=60, color=VOLUME_COLOUR, alpha=0.85)
    left.set_xlabel("RR interval (ms)")
    left.set_ylabel("beats")
    panel_title(left, "a", f"RR intervals ({len(rr_ms)} beats)")
    if len(flag_counts):
        names = [str(n).replace("_", " ") for n in flag_counts.index]
        right.barh(names, flag_counts.values, color=MARK_COLOUR)
        right.invert_yaxis()
        right.set_xlabel("subjects")
        right.set_ylabel("quality flag")
        panel_title(right, "b", "quality flags (kept subjects)")
    else:
        panel_title(right, "b", "quality flags (kept subjects)")
        right.text(0.5, 0.5, "no quality flags raised", ha="center", va="center", transform=right.transAxes)
        right.axis("off")
    return figure


@kit_style
def plot_phase_similarity(similarities: dict[str, np.ndarray], masks: dict[str, np.ndarray], n_patients: int = 3) -> plt.Figure:
    """K x K ECG-segment x CMR-frame cosine similarity (bins 1..K; empty bins blank) for a few validation
    patients: one lettered column per model, one row per patient, one colour scale (the data's range)."""
    names = list(similarities)
    matrices = {name: [np.where(masks[name][p][:, None] & masks[name][p][None, :], similarities[name][p], np.nan)
                       for p in range(n_patients)] for name in names}
    values = np.concatenate([m[np.isfinite(m)] for ms in matrices.values() for m in ms] or [np.zeros(1)])
    vmin, vmax = (float(values.min()), float(values.max())) if values.max() > values.min() else (-1.0, 1.0)
    side = min(1.75, (DOUBLE_COLUMN_IN - 1.4) / max(len(names), 1))
    figure, axes = plt.subplots(n_patients, len(names), figsize=(side * len(names) + 1.4, side * n_patients + 0.5),
                                squeeze=False, sharex=True, sharey=True, layout="constrained")
    image = None
    for column, name in enumerate(names):
        for row in range(n_patients):
            axis = axes[row, column]
            matrix = matrices[name][row]
            image = axis.imshow(matrix, cmap="viridis", vmin=vmin, vmax=vmax)
            bin_ticks(axis, len(matrix))
            if column == len(names) - 1:
                axis.text(1.06, 0.5, f"patient {row + 1}", rotation=-90, va="center", ha="left", transform=axis.transAxes)
        panel_title(axes[0, column], LETTERS[column], textwrap.fill(method_label(name), 30))
    figure.supxlabel("CMR phase bin")  # one label per axis for the grid: per-panel labels did not fit two columns
    figure.supylabel("ECG phase bin")
    figure.colorbar(image, ax=axes, shrink=0.6, label="cosine similarity")
    return figure
