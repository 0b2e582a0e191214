"""The encoder-choice figure (notebook 08), from the choice table of ``evaluation.encoder_choice.encoder_table``
(columns preset, method, endpoint, split, value, ci_low, ci_high, n_seeds, chosen)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ptacl_core.methods import label, ordered
from ptacl_core.plotting.style import DOUBLE_COLUMN_IN, LETTERS, kit_style, method_style, panel_title

PRESET_LABELS = {"tiny": "ViT (tiny)", "tiny_resnet": "1-D ResNet (tiny)", "paper": "ViT-B (paper)"}


def preset_label(preset: str) -> str:
    """How a figure names a model preset: its ECG encoder ("tiny_resnet" -> "1-D ResNet (tiny)")."""
    return PRESET_LABELS.get(preset, preset.replace("_", " "))


def _x_label(endpoint: str, split: str) -> str:
    quantity = ("precision@10" if "precision@" in endpoint else
                "R² within condition" if "within condition" in endpoint else "R²")
    if split == "val":
        return f"{quantity} on the validation split" + (" (share of 10)" if "precision" in quantity else "")
    return f"test {quantity}" + (" (share of 10)" if "precision" in quantity else "")


@kit_style
def plot_encoder_choice(table: pd.DataFrame) -> plt.Figure:
    """Panel a: the choice, each method's primary endpoint on the validation split per preset (seed mean); the
    chosen preset's label says so. Then one panel per endpoint on test: each method's seed mean with its 95%
    interval (test subjects and seeds), per preset."""
    presets = list(dict.fromkeys(table.preset))
    chosen = set(table[table.chosen].preset)
    names = [f"{preset_label(p)}\n(chosen)" if p in chosen else preset_label(p) for p in presets]
    val = table[table.split == "val"]
    test = table[table.split == "test"]
    endpoints = [e for e in dict.fromkeys(test.endpoint) if np.isfinite(test[test.endpoint == e].value).any()]
    panels = [("val", val.endpoint.iloc[0] if not val.empty else "")] + [("test", e) for e in endpoints]
    columns = 2  # endpoint names are long: two panels a row keep their titles inside the figure
    rows = int(np.ceil(len(panels) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(DOUBLE_COLUMN_IN, 1.35 * rows + 0.8), squeeze=False,
                                layout="constrained")
    methods = ordered(table.method.unique())
    for index, (axis, (split, endpoint)) in enumerate(zip(axes.ravel(), panels, strict=False)):
        shown = (val if split == "val" else test)
        shown = shown[shown.endpoint == endpoint]
        for position, method in enumerate(methods):
            style = method_style(method)
            for y, preset in enumerate(presets):
                row = shown[(shown.method == method) & (shown.preset == preset)]
                if row.empty:
                    continue
                row = row.iloc[0]
                offset = y + 0.18 * (position - (len(methods) - 1) / 2)
                if np.isfinite(row.ci_low):
                    axis.plot([row.ci_low, row.ci_high], [offset, offset], color=style["color"], lw=1.0)
                axis.plot(row.value, offset, style["marker"], color=style["color"], ms=4,
                          markerfacecolor=style["markerfacecolor"])
        axis.set_yticks(range(len(presets)), names)
        axis.set_ylim(len(presets) - 0.5, -0.5)
        axis.set_ylabel("ECG encoder preset")
        axis.set_xlabel(_x_label(endpoint, split))
        axis.margins(x=0.15)
        title = f"the choice: {endpoint} on validation" if split == "val" else endpoint
        panel_title(axis, LETTERS[index], title)
    for axis in axes.ravel()[len(panels):]:
        axis.axis("off")
    handles = [Line2D([], [], marker=method_style(m)["marker"], color=method_style(m)["color"], ls="-", lw=1.0,
                      markerfacecolor=method_style(m)["markerfacecolor"], label=label(m)) for m in methods]
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles),
                  title="method (test: seed mean and 95% interval over test subjects and seeds)")
    return figure
