"""Figures of the cohort, the cache and training (notebooks 00-02): ECGs, cines, phenotypes by condition, RR and
quality flags, phase similarity. Each function returns its Figure (``style.save_figure`` writes it)."""

from __future__ import annotations

import matplotlib.pyplot as plt  # the backend is the caller's: inline in JupyterLab, Agg under the runner
import numpy as np
import pandas as pd

from ptacl_core.leads import LEAD_NAMES
from ptacl_core.plotting.style import CONDITION_COLOURS, LABEL_COLOURS, MARK_COLOUR


def plot_ecg_12lead(signal: np.ndarray, fs: float, rpeaks: np.ndarray | None = None, title: str = "",
                    seconds: float | None = None) -> plt.Figure:
    """12 leads (12, L) in mV on a 4 x 3 grid with a shared time axis; R peaks as ticks."""
    n = signal.shape[1] if seconds is None else min(signal.shape[1], int(seconds * fs))
    t = np.arange(n) / fs
    figure, axes = plt.subplots(6, 2, figsize=(11, 7), sharex=True)
    for index, (axis, lead) in enumerate(zip(axes.T.ravel(), LEAD_NAMES, strict=True)):
        axis.plot(t, signal[index, :n], lw=0.7, color="k")
        if rpeaks is not None:
            inside = rpeaks[rpeaks < n]
            axis.plot(inside / fs, signal[index, inside], "v", color=MARK_COLOUR, ms=3)
        axis.set_ylabel(f"{lead}\n(mV)", rotation=0, ha="right", va="center")
        axis.grid(True, color="#f4c7c7", lw=0.4)
    for axis in axes[-1]:
        axis.set_xlabel("time (s)")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_cine_phases(image: np.ndarray, labels: np.ndarray | None, slice_index: int, ed_frame: int, es_frame: int,
                     frame_interval_ms: float, n_strip: int = 10, title: str = "") -> plt.Figure:
    """One slice of a cine (X, Y, Z, T): ED and ES with contours of the masks, then a strip of frames."""
    n_frames = image.shape[-1]
    strip = np.linspace(0, n_frames - 1, n_strip).round().astype(int)
    figure = plt.figure(figsize=(11, 4.2))
    grid = figure.add_gridspec(2, n_strip, height_ratios=[2.2, 1])
    vmax = np.percentile(image[..., slice_index, :], 99.5)
    for position, (frame, name) in enumerate(((ed_frame, "ED"), (es_frame, "ES"))):
        axis = figure.add_subplot(grid[0, position * (n_strip // 2):(position + 1) * (n_strip // 2)])
        axis.imshow(image[:, :, slice_index, frame].T, cmap="gray", vmin=0, vmax=vmax, origin="lower")
        if labels is not None:
            for label, colour in LABEL_COLOURS.items():
                mask = labels[:, :, slice_index, frame].T == label
                if mask.any():
                    axis.contour(mask, levels=[0.5], colors=colour, linewidths=0.8)
        axis.set_title(f"{name}: frame {frame} ({frame * frame_interval_ms:.0f} ms)")
        axis.axis("off")
    for position, frame in enumerate(strip):
        axis = figure.add_subplot(grid[1, position])
        axis.imshow(image[:, :, slice_index, frame].T, cmap="gray", vmin=0, vmax=vmax, origin="lower")
        axis.set_title(f"{frame * frame_interval_ms:.0f} ms", fontsize=7)
        axis.axis("off")
    figure.suptitle(title)
    return figure


def plot_electromechanical_coupling(lead: np.ndarray, fs: float, rpeak: int, volume_ml: np.ndarray,
                                    frame_interval_ms: float, t_end_ms: float | None = None,
                                    lead_name: str = "II", title: str = "") -> plt.Figure:
    """One beat of an ECG lead with the LV volume curve on the same time axis (0 = R peak)."""
    n_frames = len(volume_ml)
    rr_samples = int(round(n_frames * frame_interval_ms / 1000.0 * fs))
    start = max(rpeak - int(0.2 * fs), 0)
    stop = min(rpeak + rr_samples, len(lead))
    t_ms = (np.arange(start, stop) - rpeak) / fs * 1000.0
    figure, axis = plt.subplots(figsize=(8, 3.2))
    axis.plot(t_ms, lead[start:stop], color="k", lw=0.8)
    axis.set_xlabel("time from R peak (ms)")
    axis.set_ylabel(f"lead {lead_name} (mV)")
    volume_axis = axis.twinx()
    frame_ms = np.arange(n_frames) * frame_interval_ms
    volume_axis.plot(frame_ms, volume_ml, "o-", color=MARK_COLOUR, ms=2.5, lw=1)
    volume_axis.set_ylabel("LV volume (mL)", color=MARK_COLOUR)
    es_frame = int(np.argmin(volume_ml))
    volume_axis.axvline(es_frame * frame_interval_ms, color=MARK_COLOUR, ls="--", lw=0.8)
    volume_axis.annotate("end-systole", (es_frame * frame_interval_ms, volume_ml.min()), color=MARK_COLOUR,
                         xytext=(5, -12), textcoords="offset points", fontsize=8)
    if t_end_ms is not None:
        axis.axvline(t_end_ms, color="0.4", ls=":", lw=0.8)
        axis.annotate("T-wave end", (t_end_ms, axis.get_ylim()[1]), color="0.3", xytext=(5, -12),
                      textcoords="offset points", fontsize=8)
    axis.set_title(title)
    figure.tight_layout()
    return figure


def plot_phenotypes_by_condition(phenotypes: pd.DataFrame, columns: list[str]) -> plt.Figure:
    """Box plots of phenotypes, one panel each, grouped by condition."""
    conditions = [c for c in CONDITION_COLOURS if c in set(phenotypes.condition)]
    n_cols = min(len(columns), 4)
    n_rows = int(np.ceil(len(columns) / n_cols))
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(3.0 * n_cols, 2.8 * n_rows), squeeze=False)
    for axis, column in zip(axes.ravel(), columns, strict=False):
        data = [phenotypes.loc[phenotypes.condition == c, column].dropna().values for c in conditions]
        boxes = axis.boxplot(data, patch_artist=True, showfliers=False, widths=0.6)
        for patch, condition in zip(boxes["boxes"], conditions, strict=True):
            patch.set_facecolor(CONDITION_COLOURS[condition])
            patch.set_alpha(0.7)
        axis.set_xticks(range(1, len(conditions) + 1), [c.replace("_", "\n") for c in conditions], fontsize=6)
        axis.set_title(column)
    for axis in axes.ravel()[len(columns):]:
        axis.axis("off")
    figure.tight_layout()
    return figure


def plot_ecg_before_after(raw: np.ndarray, raw_fs: float, filtered: np.ndarray, fs: float, rpeaks: np.ndarray,
                          leads: tuple[str, ...] = ("II", "V2", "V5"), seconds: float = 5.0, title: str = "") -> plt.Figure:
    """Raw vs preprocessed leads (mV) over the first ``seconds``, with the detected R peaks."""
    figure, axes = plt.subplots(len(leads), 1, figsize=(10, 1.9 * len(leads)), sharex=True, squeeze=False)
    for axis, lead in zip(axes[:, 0], leads, strict=True):
        index = LEAD_NAMES.index(lead)
        n_raw, n = int(seconds * raw_fs), int(seconds * fs)
        axis.plot(np.arange(n_raw) / raw_fs, raw[index, :n_raw], color="0.6", lw=0.7, label="raw")
        axis.plot(np.arange(n) / fs, filtered[index, :n], color="k", lw=0.8, label="preprocessed")
        inside = rpeaks[rpeaks < n]
        axis.plot(inside / fs, filtered[index, inside], "v", color=MARK_COLOUR, ms=4, label="R peaks")
        axis.set_ylabel(f"{lead} (mV)")
    axes[0, 0].legend(loc="upper right", fontsize=7, ncol=3)
    axes[-1, 0].set_xlabel("time (s)")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_cine_grid(cines: list[np.ndarray], ed_frames: list[int], es_frames: list[int], names: list[str]) -> plt.Figure:
    """Preprocessed crops (T, S, S) at ED (top row) and ES (bottom row), one column per subject."""
    figure, axes = plt.subplots(2, len(cines), figsize=(1.6 * len(cines), 3.6), squeeze=False)
    for column, (cine, ed, es, name) in enumerate(zip(cines, ed_frames, es_frames, names, strict=True)):
        for row, frame in enumerate((ed, es)):
            axes[row, column].imshow(cine[frame], cmap="gray", vmin=0, vmax=1, origin="lower")  # y up, as in plot_cine_phases
            axes[row, column].set_xticks([])
            axes[row, column].set_yticks([])
        axes[0, column].set_title(name, fontsize=7)
    axes[0, 0].set_ylabel("ED")
    axes[1, 0].set_ylabel("ES")
    figure.tight_layout()
    return figure


def plot_rr_and_flags(rr_ms: np.ndarray, flag_counts: pd.Series) -> plt.Figure:
    """Histogram of RR intervals (ms) over the cohort, and how many subjects raised each quality flag."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3), gridspec_kw={"width_ratios": [2, 1]})
    left.hist(rr_ms, bins=60, color="#4C72B0", alpha=0.8)
    left.set_xlabel("RR interval (ms)")
    left.set_ylabel("beats")
    if len(flag_counts):
        right.barh(flag_counts.index, flag_counts.values, color=MARK_COLOUR)
        right.set_xlabel("subjects")
    else:
        right.text(0.5, 0.5, "no quality flags raised", ha="center", va="center")
        right.axis("off")
    right.set_title("quality flags (kept subjects)")
    figure.tight_layout()
    return figure


def plot_phase_similarity(similarities: dict[str, np.ndarray], masks: dict[str, np.ndarray], n_patients: int = 3) -> plt.Figure:
    """K x K ECG-segment x CMR-frame cosine similarity for a few patients, one row per model."""
    names = list(similarities)
    figure, axes = plt.subplots(len(names), n_patients, figsize=(2.6 * n_patients, 2.5 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        for column in range(n_patients):
            matrix = np.where(masks[name][column][:, None] & masks[name][column][None, :], similarities[name][column], np.nan)
            image = axes[row, column].imshow(matrix, cmap="viridis", vmin=-1, vmax=1)
            axes[row, column].set_title(f"{name}, patient {column + 1}", fontsize=8)
            axes[row, column].set_xlabel("CMR phase bin", fontsize=7)
            axes[row, column].set_ylabel("ECG phase bin", fontsize=7)
    figure.colorbar(image, ax=axes, shrink=0.7, label="cosine similarity")
    return figure
