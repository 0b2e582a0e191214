"""The scaling figure (notebook 07): every pre-registered endpoint against the subjects per cohort, from the
scaling table of ``evaluation.scaling.collect`` (columns n, cohort, endpoint, row, kind, value, ci_low, ci_high)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ptacl_core.methods import label, ordered
from ptacl_core.plotting.style import DOUBLE_COLUMN_IN, LETTERS, is_reference, kit_style, method_style, panel_title

COHORT, TWIN, CONTRAST = "physiological", "null twin", "physiological − null twin"
# column b's three series: the physiological difference, the twin's, and their contrast (Okabe-Ito)
DIFFERENCE_STYLES = {COHORT: {"color": "#000000", "marker": "o", "ls": "-", "markerfacecolor": "#000000"},
                     TWIN: {"color": "#E69F00", "marker": "s", "ls": "--", "markerfacecolor": "white"},
                     CONTRAST: {"color": "#009E73", "marker": "D", "ls": ":", "markerfacecolor": "#009E73"}}
DIFFERENCE_LABELS = {COHORT: "physiological cohort", TWIN: "null twin (ECG timing decoupled)",
                     CONTRAST: "physiological − twin (the coupling's share)"}


def _y_label(endpoint: str, difference: bool) -> str:
    if "precision@" in endpoint:
        return "precision@10 difference (share of 10)" if difference else "precision@10 (share of 10)"
    quantity = "R² within condition" if "within condition" in endpoint else "R²"
    return f"{quantity} difference" if difference else f"test {quantity}"


def _sizes_axis(axis: plt.Axes, sizes: list[int]) -> None:
    axis.set_xscale("log")
    axis.set_xticks(sizes, [f"{n:,}" for n in sizes])
    axis.minorticks_off()
    axis.set_xlim(min(sizes) / 1.25, max(sizes) * 1.25)


def _draw(axis, x, value, low, high, style: dict, floor: float, text: str) -> tuple[Line2D, bool]:
    shown = np.maximum(value, floor)
    if np.isfinite(low).any():
        axis.vlines(x, np.maximum(low, floor), np.maximum(high, floor), color=style["color"], lw=0.7, alpha=0.8)
    line, = axis.plot(x, shown, color=style["color"], ls=style.get("ls", style.get("linestyle")), lw=1.0,
                      marker=style["marker"], ms=3.5, markerfacecolor=style["markerfacecolor"], markeredgewidth=0.8,
                      label=text)
    below = value < floor
    if below.any():
        axis.plot(x[below], shown[below], "v", color=style["color"], ms=5, markerfacecolor="white")
    return line, bool(below.any())


@kit_style
def plot_scaling(table: pd.DataFrame, endpoints: list[str] | None = None, floor: float = -1.0) -> plt.Figure:
    """One row per endpoint. a: each compared method on the physiological cohort (filled, solid, with the 95%
    interval over test subjects and seeds) and the reference rows (hollow, dashed, one fit each) against N on a
    log axis. b: PTACL − global-only on the physiological cohort and on its null twin, and their contrast, with
    intervals; zero dotted. Values below ``floor`` are drawn as ``v`` at the floor (the table keeps them)."""
    endpoints = [e for e in (endpoints or dict.fromkeys(table.endpoint))
                 if np.isfinite(table[table.endpoint == e].value.to_numpy(float)).any()]  # an endpoint not computed: no row
    sizes = sorted(int(n) for n in table.n.unique())
    figure, axes = plt.subplots(len(endpoints), 2, figsize=(DOUBLE_COLUMN_IN, 1.75 * len(endpoints) + 1.2),
                                squeeze=False, layout="constrained", sharex=True)
    handles: dict[str, Line2D] = {}
    clipped_any = False
    for row, endpoint in enumerate(endpoints):
        rows = table[table.endpoint == endpoint]
        values = rows[(rows.cohort == COHORT) & rows.kind.isin(("method", "reference"))]
        names = ordered(values.row.unique())
        names = [m for m in names if not is_reference(m)] + [m for m in names if is_reference(m)]
        left, right = axes[row]
        for position, name in enumerate(names):
            line = values[values.row == name].sort_values("n")
            dodge = 10 ** (0.012 * (position - (len(names) - 1) / 2))  # side by side on the log axis
            drawn, clipped = _draw(left, line.n.to_numpy(float) * dodge, line.value.to_numpy(float),
                                   line.ci_low.to_numpy(float), line.ci_high.to_numpy(float), method_style(name), floor,
                                   label(name))
            handles.setdefault(name, drawn)
            clipped_any |= clipped
        for position, cohort in enumerate((COHORT, TWIN, CONTRAST)):
            line = rows[(rows.cohort == cohort) & rows.kind.isin(("difference", "contrast"))].sort_values("n")
            if line.empty:
                continue
            dodge = 10 ** (0.02 * (position - 1))
            drawn, clipped = _draw(right, line.n.to_numpy(float) * dodge, line.value.to_numpy(float),
                                   line.ci_low.to_numpy(float), line.ci_high.to_numpy(float), DIFFERENCE_STYLES[cohort],
                                   floor, DIFFERENCE_LABELS[cohort])
            handles.setdefault(cohort, drawn)
            clipped_any |= clipped
        right.axhline(0.0, color="0.5", lw=0.6, ls=":")
        for axis, difference in ((left, False), (right, True)):
            _sizes_axis(axis, sizes)
            bottom = axis.get_ylim()[0]
            if bottom < floor:
                axis.set_ylim(floor - 0.05, None)
            axis.set_ylabel(_y_label(endpoint, difference))
        panel_title(left, LETTERS[2 * row], endpoint)
        panel_title(right, LETTERS[2 * row + 1], "PTACL − global-only")
    for axis in axes[-1]:
        axis.set_xlabel("subjects per cohort")
    order = [*(m for m in handles if m not in DIFFERENCE_STYLES), *(c for c in DIFFERENCE_STYLES if c in handles)]
    legend = [handles[name] for name in order]
    if clipped_any:
        legend.append(Line2D([], [], marker="v", ls="", color="0.3", markerfacecolor="white",
                             label=f"below {floor:g} (drawn at the floor)"))
    figure.legend(handles=legend, loc="outside lower center", ncols=3,
                  title="a: methods (filled) and reference rows (hollow, dashed) on the physiological cohort; "
                        "b: the difference per cohort")
    return figure
