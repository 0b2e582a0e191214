"""What the training runs themselves say (notebook 02, the report): learning curves and whether they flattened,
the phase-clock margin of every run (METHOD.md §4; logged each epoch by the trainer on validation patients), and
the phase geometry each run trained with (bin occupancy).

Tables, one row per run: ``run_table`` (method, seed, final validation loss, margin, late change of the curve,
geometry); ``margin_table`` summarises the margins per method over seeds (mean, SD and a t-interval).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from ptacl_core.evaluation.statistics import t_interval
from ptacl_core.methods import colour, label, ordered

# A learning curve has flattened when its last quarter of epochs brought less than this share of the run's total
# improvement in validation loss (first epoch -> best).
FLAT_LATE_SHARE = 0.10
GEOMETRY_COLUMNS = ("token_ms", "num_bins", "median_bin_ms", "narrow_bin_fraction", "underfilled_fraction", "soft_sigma")


def late_share(values: np.ndarray) -> float:
    """Share of a curve's total improvement (values[0] -> min) made in its last quarter of epochs: the drop from
    the value at 3/4 of the run to the end, over the total drop. NaN with fewer than 4 points or no improvement."""
    values = np.asarray(values, dtype=float)
    if len(values) < 4 or not np.isfinite(values).all():
        return float("nan")
    total = values[0] - values.min()
    if total <= 0:
        return float("nan")
    quarter = values[int(np.floor(0.75 * (len(values) - 1)))]
    return float(max(quarter - values[-1], 0.0) / total)


def run_table(runs: dict[tuple[str, int], Path]) -> pd.DataFrame:
    """One row per run folder: method, seed, epochs, final val_loss, the final phase-clock margin (and its two
    losses), the late share of the validation-loss curve and whether it flattened, training seconds, geometry."""
    from ptacl_core.training import runs as run_layout  # lazy: loads torch; the report imports this module without it

    rows = []
    for (method, seed), folder in runs.items():
        metrics = pd.read_csv(run_layout.metrics_path(folder))
        last = metrics.iloc[-1]
        environment_path = Path(folder) / run_layout.ENVIRONMENT
        geometry = json.loads(environment_path.read_text()).get("geometry", {}) if environment_path.exists() else {}
        share = late_share(metrics.val_loss.to_numpy())
        row = {"method": method, "seed": seed, "epochs": int(last.epoch), "val_loss": float(last.val_loss),
               "val_margin": float(last.get("val_margin", np.nan)), "val_local_own": float(last.get("val_local_own", np.nan)),
               "val_local_other": float(last.get("val_local_other", np.nan)), "late_share": share,
               "flattened": bool(share < FLAT_LATE_SHARE) if np.isfinite(share) else None,
               "train_seconds": float(metrics.seconds.sum())}
        row.update({key: geometry.get(key, np.nan) for key in GEOMETRY_COLUMNS})
        rows.append(row)
    return pd.DataFrame(rows)


def margin_table(table: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per method: the phase-clock margin's mean over seeds, SD, a t-interval over seeds, and the mean losses
    against the own and another patient's CMR (rows of ``run_table`` with a margin)."""
    rows = []
    for method, group in table.dropna(subset=["val_margin"]).groupby("method", sort=False):
        values = group.val_margin.to_numpy()
        mean, n = float(values.mean()), len(values)
        sd = float(values.std(ddof=1)) if n > 1 else float("nan")
        low, high = t_interval(values, confidence)
        rows.append({"method": method, "n_seeds": n, "margin": mean, "sd": sd, "ci_low": low, "ci_high": high,
                     "local_own": float(group.val_local_own.mean()), "local_other": float(group.val_local_other.mean())})
    return pd.DataFrame(rows, columns=["method", "n_seeds", "margin", "sd", "ci_low", "ci_high", "local_own", "local_other"])


def plot_learning_curves(curves: dict[tuple[str, int], pd.DataFrame]):
    """Learning curves, one line per run and one colour per method: (a) the validation loss relative to the run's
    first epoch (methods' objectives differ in scale and terms, so each curve is divided by its own first value),
    (b) the phase-clock margin: the local loss against another patient's CMR minus against the own CMR, on
    validation patients (nats; 0 = the local term carries no patient information). Legend on the right."""

    import matplotlib.pyplot as plt  # lazy: matplotlib is heavy, and the report reads this module without plotting
    from matplotlib.ticker import MaxNLocator  # lazy: with matplotlib

    from ptacl_core.plotting.style import DOUBLE_COLUMN_IN, kit_style, panel_title  # lazy: loads matplotlib

    @kit_style
    def draw():
        margins = any("val_margin" in m and m.val_margin.notna().any() for m in curves.values())
        figure, axes = plt.subplots(1, 2 if margins else 1, figsize=(DOUBLE_COLUMN_IN, 2.5), squeeze=False,
                                    sharex=True, layout="constrained")
        axes = axes[0]
        handles = {}
        for (method, _seed), metrics in curves.items():
            epochs, loss = metrics.epoch.to_numpy(), metrics.val_loss.to_numpy(dtype=float)
            finite = np.flatnonzero(np.isfinite(loss) & (loss != 0))
            marker = "o" if len(metrics) <= 25 else None
            if len(finite):
                line, = axes[0].plot(epochs, loss / loss[finite[0]], color=colour(method), alpha=0.85, lw=0.9, marker=marker,
                                     ms=2.5, label=textwrap.fill(label(method), 24))
                handles.setdefault(method, line)
            if margins and "val_margin" in metrics:
                axes[1].plot(epochs, metrics.val_margin, color=colour(method), alpha=0.85, lw=0.9, marker=marker, ms=2.5)
        panel_title(axes[0], "a", "validation loss (each method's own objective)")
        axes[0].set_ylabel("relative validation loss (÷ epoch 1)")
        if margins:
            panel_title(axes[1], "b", "phase-clock margin: local loss vs another\npatient's CMR − vs own (validation)")
            axes[1].axhline(0.0, color="0.5", lw=0.8, ls="--")
            axes[1].set_ylabel("margin (nats)")
        first = min(int(m.epoch.min()) for m in curves.values())
        last = max(int(m.epoch.max()) for m in curves.values())
        for axis in axes:
            axis.set_xlabel("epoch")
            if last - first < 5:  # a short (fast) run: every epoch, the points away from the frame
                axis.set_xticks(range(first, last + 1))
                axis.set_xlim(first - 0.5, last + 0.5)
            else:
                axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        figure.legend(handles=[handles[m] for m in ordered(handles)], loc="outside right center", title="method")
        return figure

    return draw()
