"""The figures of the comparison (notebook 05), in the kit's style (``plotting.use_kit_style``); each function
returns its Figure, ``plotting.save_figure`` writes PNG + PDF."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ptacl_core.methods import colour, label, ordered
from ptacl_core.phenotypes import PHENOTYPES, UNITS
from ptacl_core.plotting.style import CONDITION_COLOURS


def plot_probe_r2(summary: pd.DataFrame, fraction: float = 1.0, metric: str = "r2") -> plt.Figure:
    """Mean test R² per phenotype (x) and method (colour), with the bootstrap 95% interval of the seed mean."""
    subset = summary[np.isclose(summary.fraction, fraction)]
    methods = ordered(subset.method)
    phenotypes = [p for p in PHENOTYPES if p in set(subset.phenotype)]
    keyed = subset.set_index(["method", "phenotype"])
    figure, axis = plt.subplots(figsize=(max(6.0, 1.0 * len(phenotypes) + 2), 3.6))
    width = 0.8 / max(len(methods), 1)
    for i, method in enumerate(methods):
        rows = [keyed.loc[(method, p)] if (method, p) in keyed.index else None for p in phenotypes]
        x = np.arange(len(phenotypes)) + (i - (len(methods) - 1) / 2) * width
        values = np.array([r[metric] if r is not None else np.nan for r in rows])
        low = np.array([r[f"{metric}_low"] if r is not None else np.nan for r in rows])
        high = np.array([r[f"{metric}_high"] if r is not None else np.nan for r in rows])
        errors = np.clip([values - low, high - values], 0, None)  # a point may sit just outside its percentile interval
        axis.errorbar(x, values, yerr=errors, fmt="o", ms=4, capsize=2, color=colour(method),
                      label=label(method))
    axis.axhline(0, color="0.7", lw=0.8)
    axis.set_xticks(np.arange(len(phenotypes)), [p.replace("_", " ") for p in phenotypes], rotation=30, ha="right")
    axis.set_ylabel({"r2": "test R²", "pearson": "Pearson r"}.get(metric, metric))
    axis.set_title(f"Linear probe on frozen embeddings ({fraction:.0%} of training labels; mean over seeds, 95% CI)")
    axis.legend(fontsize=7, ncol=min(len(methods), 4), loc="upper center", bbox_to_anchor=(0.5, -0.32), frameon=False)
    figure.tight_layout()
    return figure


def plot_predicted_vs_true(predictions: pd.DataFrame, conditions: dict[str, str], method: str = "ptacl", seed: int = 0,
                           phenotypes=("LVEF_pct", "LVEDV_mL")) -> plt.Figure:
    """Test predictions of one run against the CMR truth, coloured by condition, identity line dashed."""
    figure, axes = plt.subplots(1, len(phenotypes), figsize=(4.0 * len(phenotypes), 3.8), squeeze=False)
    for axis, phenotype in zip(axes[0], phenotypes, strict=True):
        rows = predictions[(predictions.method == method) & (predictions.seed == seed) & (predictions.phenotype == phenotype)]
        colours = [CONDITION_COLOURS.get(conditions.get(s, ""), "#777777") for s in rows.subject_id]
        axis.scatter(rows.true, rows.predicted, s=10, c=colours, alpha=0.8, linewidths=0)
        limits = [min(rows.true.min(), rows.predicted.min()), max(rows.true.max(), rows.predicted.max())]
        axis.plot(limits, limits, "--", color="0.5", lw=0.8)
        residual = rows.predicted - rows.true
        r2 = 1 - (residual ** 2).sum() / ((rows.true - rows.true.mean()) ** 2).sum()
        axis.set_title(f"{phenotype}: R² {r2:.2f}, MAE {residual.abs().mean():.1f} {UNITS[phenotype]}")
        axis.set_xlabel(f"CMR {phenotype} ({UNITS[phenotype]})")
        axis.set_ylabel(f"predicted from ECG ({UNITS[phenotype]})")
    present = sorted({conditions.get(s, "") for s in predictions.subject_id} & set(CONDITION_COLOURS))
    handles = [plt.Line2D([], [], marker="o", ls="", color=CONDITION_COLOURS[c], label=c.replace("_", " ")) for c in present]
    if handles:
        axes[0, -1].legend(handles=handles, fontsize=7, loc="lower right")
    figure.suptitle(f"{label(method)} (seed {seed}): ECG-only prediction on the test split")
    figure.tight_layout()
    return figure


def plot_retrieval_panel(queries: list[dict], fs: float) -> plt.Figure:
    """One row per query: its ECG (lead II) and the mid-ventricular end-diastolic frame of its top-3 retrieved
    patients. Each query dict: ``ecg`` (12, L), ``title``, ``own_frame`` (S, S) or None, and ``retrieved``:
    a list of dicts with ``frame`` (S, S) and ``title``."""
    n_retrieved = max(len(q["retrieved"]) for q in queries)
    columns = 2 + n_retrieved
    figure = plt.figure(figsize=(2.2 * columns + 1.5, 2.3 * len(queries)))
    grid = figure.add_gridspec(len(queries), columns + 1, width_ratios=[2.5, 0.001] + [1] * (columns - 1))
    for row, query in enumerate(queries):
        axis = figure.add_subplot(grid[row, 0])
        lead_ii = query["ecg"][1]
        seconds = np.arange(min(len(lead_ii), int(4 * fs))) / fs
        axis.plot(seconds, lead_ii[: len(seconds)], color="black", lw=0.7)
        axis.set_title(query["title"], fontsize=7)
        axis.set_xlabel("s", fontsize=7)
        axis.set_yticks([])
        images = [("query's own CMR", query.get("own_frame"))] + [(r["title"], r["frame"]) for r in query["retrieved"]]
        for column, (title, frame) in enumerate(images):
            axis = figure.add_subplot(grid[row, 2 + column])
            if frame is not None:
                axis.imshow(frame, cmap="gray")
            axis.set_title(title, fontsize=6.5)
            axis.axis("off")
    figure.suptitle("ECG→ECG retrieval: a test ECG and the CMR of its top-3 retrieved patients (ED, mid slice)", fontsize=9)
    figure.tight_layout()
    return figure


def plot_mean_phase_alignment(matrices: dict[str, np.ndarray]) -> plt.Figure:
    """K x K mean cosine similarity (ECG phase bin x CMR phase bin) per method, side by side."""
    names = list(matrices)
    figure, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names) + 0.8, 3.2), squeeze=False)
    for axis, name in zip(axes[0], names, strict=True):
        matrix = matrices[name]
        image = axis.imshow(matrix, cmap="viridis", vmin=np.nanmin([np.nanmin(m) for m in matrices.values()]),
                            vmax=np.nanmax([np.nanmax(m) for m in matrices.values()]))
        diagonal = np.nanmean(np.diag(matrix))
        off = np.nanmean(matrix[~np.eye(len(matrix), dtype=bool)])
        axis.set_title(f"{label(name)}\nsame phase {diagonal:.2f}, other phases {off:.2f}", fontsize=8)
        axis.set_xlabel("CMR phase bin")
        axis.set_ylabel("ECG phase bin")
    figure.colorbar(image, ax=axes, shrink=0.8, label="mean cosine similarity")
    return figure


def plot_embedding_map(coordinates: dict[str, np.ndarray], lvef: np.ndarray, conditions: np.ndarray, how: str) -> plt.Figure:
    """2-D maps of ECG embeddings (one row per method): coloured by LVEF (left) and by condition (right)."""
    names = list(coordinates)
    figure, axes = plt.subplots(len(names), 2, figsize=(8.2, 3.4 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        xy = coordinates[name]
        scatter = axes[row, 0].scatter(xy[:, 0], xy[:, 1], c=lvef, cmap="coolwarm_r", s=5, linewidths=0)
        figure.colorbar(scatter, ax=axes[row, 0], label="LVEF (%)")
        for condition in sorted(set(conditions)):
            chosen = conditions == condition
            axes[row, 1].scatter(xy[chosen, 0], xy[chosen, 1], s=5, linewidths=0, label=condition.replace("_", " "),
                                 color=CONDITION_COLOURS.get(condition, "#777777"))
        axes[row, 1].legend(fontsize=6, markerscale=2, loc="best")
        for column in range(2):
            axes[row, column].set_xticks([])
            axes[row, column].set_yticks([])
            axes[row, column].set_title(f"{label(name)} ECG embedding ({how})", fontsize=8)
    figure.tight_layout()
    return figure


def plot_label_efficiency(summary: pd.DataFrame, phenotypes=("LVEF_pct", "LVEDV_mL"), floor: float = -1.0) -> plt.Figure:
    """Test R² against the fraction of training labels (log axis), one line per method, 95% CI band; the axis
    stops at ``floor`` (the tables keep every value)."""
    figure, axes = plt.subplots(1, len(phenotypes), figsize=(4.2 * len(phenotypes), 3.4), squeeze=False)
    for axis, phenotype in zip(axes[0], phenotypes, strict=True):
        subset = summary[summary.phenotype == phenotype]
        for method in ordered(subset.method):
            rows = subset[subset.method == method].sort_values("fraction")
            axis.plot(rows.fraction, rows.r2, "o-", ms=3, color=colour(method), label=label(method))
            axis.fill_between(rows.fraction, rows.r2_low, rows.r2_high, color=colour(method), alpha=0.12, linewidth=0)
        axis.set_xscale("log")
        if subset.r2_low.min() < floor:  # a probe on a handful of labels can be far below 0: keep the rest readable
            axis.set_ylim(bottom=floor)
            axis.annotate(f"axis cut at R² = {floor:g}", xy=(0.02, 0.02), xycoords="axes fraction", fontsize=7, color="0.4")
        fractions = sorted(subset.fraction.unique())
        axis.set_xticks(fractions, [f"{f:.0%}" for f in fractions])
        axis.set_xlabel("training labels used")
        axis.set_ylabel("test R²")
        axis.set_title(phenotype)
    axes[0, -1].legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    return figure
