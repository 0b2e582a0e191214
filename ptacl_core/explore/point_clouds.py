"""Point clouds you can hover and click: the linked 2-D embedding map and the predicted-vs-true scatter."""

from __future__ import annotations

import numpy as np

from ptacl_core.explore.compute import HOVER_PIXELS, nearest_point
from ptacl_core.explore.controls import (
    LITERAL_TEXT,
    RunPicker,
    canvas,
    fmt,
    html_text,
    literal_texts,
    locked,
    redraw,
)
from ptacl_core.explore.data import ExploreData, label_fractions
from ptacl_core.phenotypes import EVALUATED, axis_label, display_name, unit
from ptacl_core.plotting.style import (
    CONDITION_COLOURS,
    CONDITION_MARKERS,
    UNKNOWN_COLOUR,
    condition_name,
    present_conditions,
)

MAP_AXES = {"pca": ("PC 1", "PC 2"), "tsne": ("t-SNE 1", "t-SNE 2")}  # the map's axis labels per map method


class PointPicker:
    """Hover a scatter for the subject under the pointer; click to open it in the linked PatientViewer (and make
    it the linked RetrievalExplorer's query when it is in its gallery).

    Contract for a subclass: call ``_connect(figure, axis, hover_html)`` once; after every redraw set ``points``
    ((M, 2) data coordinates as drawn), ``point_ids`` ((M,) subject ids) and ``rows`` ((M,) cache positions);
    implement ``describe(row) -> str`` (HTML for point ``row``, its cohort text through ``html_text``); set
    ``viewer`` and ``retrieval`` (or None)."""

    points: np.ndarray | None = None
    point_ids: np.ndarray = np.array([])
    viewer = None
    retrieval = None

    def describe(self, row: int) -> str:
        raise NotImplementedError

    def _connect(self, figure, axis, label_widget) -> None:
        self._axis, self._hover = axis, label_widget
        figure.canvas.mpl_connect("motion_notify_event", self._on_move)
        figure.canvas.mpl_connect("button_press_event", self._on_click)

    def _point_at(self, x_pixels: float, y_pixels: float) -> int | None:
        if self.points is None or len(self.points) == 0:
            return None
        screen = self._axis.transData.transform(self.points)
        return nearest_point(screen, x_pixels, y_pixels, HOVER_PIXELS)

    def _on_move(self, event) -> None:
        if event.inaxes is not self._axis:
            return
        found = self._point_at(event.x, event.y)
        self._hover.value = self.describe(found) if found is not None else ""

    def _on_click(self, event) -> None:
        if event.inaxes is not self._axis or (self.viewer is None and self.retrieval is None):
            return
        found = self._point_at(event.x, event.y)
        if found is not None:
            self.open_point(found)

    def open_point(self, row: int) -> None:
        """What a click on point ``row`` does: open its subject in the linked viewer, and make it the linked
        retrieval explorer's query when it is in that gallery."""
        if self.viewer is None and self.retrieval is None:
            raise ValueError("nothing linked: build this widget with viewer=PatientViewer(...) and/or "
                             "retrieval=RetrievalExplorer(...)")
        subject = str(self.point_ids[row])
        if self.viewer is not None:
            self.viewer.show(subject)
        if self.retrieval is not None:
            try:
                self.retrieval.set_query(subject)
            except ValueError as error:  # not in its gallery: say so there, keep its query
                self.retrieval.status.value = f"<i>{html_text(error)}</i>"


class EmbeddingMap(PointPicker):
    """The 2-D map of one run's ECG embeddings (PCA, or t-SNE on a subset), coloured by a phenotype or the
    condition; hover for the subject, click to open it in ``viewer`` (and query it in ``retrieval``). The
    coordinates are computed once per (method, seed, map method): changing the colour only redraws."""

    def __init__(self, data: ExploreData, viewer=None, how: str = "pca", retrieval=None):
        import ipywidgets as w  # lazy: widgets load only when a widget is shown

        if not data.runs:
            raise FileNotFoundError(f"no finished runs in {data.runs_dir}: the embedding map needs trained encoders")
        self.data, self.viewer, self.how, self.retrieval = data, viewer, how, retrieval
        self.runs = RunPicker(data, self.update)
        self.method, self.seed = self.runs.method, self.runs.seed
        present = data.measured_phenotypes()
        colours = ([("condition", "condition")] if "condition" in data.index else []) + [
            (display_name(p), p) for p in present]
        values = [value for _, value in colours]
        self.colour_by = w.Dropdown(options=colours, value="LVEF_pct" if "LVEF_pct" in values else values[0],
                                    description="colour")
        self.hover = w.HTML()
        self.figure, self.canvas = canvas(6.5, 5.0, layout="constrained")
        self.axis = self.figure.add_subplot()
        self._colourbar = None
        self._connect(self.figure, self.axis, self.hover)
        self.colour_by.observe(lambda _: self.update(), "value")
        self.update()
        self.widget = w.VBox([w.HBox([self.method, self.seed, self.colour_by]), self.hover, self.canvas])

    def describe(self, row: int) -> str:
        data = self.data
        position = self.rows[row]
        name = self.colour_by.value
        value = (condition_name(data.index["condition"].astype(str).iloc[position]) if name == "condition" else
                 f"{display_name(name)} {fmt(data.phenotypes()[position, EVALUATED.index(name)])} {unit(name)}")
        return (f"<b>{html_text(self.point_ids[row])}</b> · {html_text(data.splits[position])} · {html_text(value)} "
                "(click: open in the patient viewer)")

    def update(self) -> None:
        data = self.data
        method, seed = self.runs.value
        rows, points = data.map(method, seed, self.how)
        with locked(self.figure):
            self.rows, self.points = rows, points
            self.point_ids = data.subject_ids[self.rows]
            if self.colour_by.value == "condition" and self._colourbar is not None:
                self._colourbar.remove()  # before clearing the axis it belongs to (the map gets its space back)
                self._colourbar = None
            self.axis.clear()
            if self.colour_by.value == "condition":
                conditions = data.index["condition"].astype(str).to_numpy()[self.rows]
                for condition in present_conditions(conditions):
                    chosen = conditions == condition
                    self.axis.scatter(*self.points[chosen].T, s=8, color=CONDITION_COLOURS.get(condition, UNKNOWN_COLOUR),
                                      marker=CONDITION_MARKERS.get(condition, "o"), label=condition_name(condition),
                                      linewidths=0)
                legend = self.axis.legend(fontsize=7, markerscale=2, title="condition", title_fontsize=7)
                literal_texts(legend.get_texts())  # condition names as written
            else:
                values = data.phenotypes()[self.rows, EVALUATED.index(self.colour_by.value)]
                scatter = self.axis.scatter(*self.points.T, s=6, c=values, cmap="viridis", linewidths=0)
                if self._colourbar is None:
                    self._colourbar = self.figure.colorbar(scatter, ax=self.axis)
                else:
                    self._colourbar.update_normal(scatter)
                self._colourbar.set_label(axis_label(self.colour_by.value))
            self.axis.set_title(f"{method} seed {seed}: ECG embedding ({self.how.upper()}, {len(self.rows)} "
                                "subjects)", fontsize=9, **LITERAL_TEXT)
            x_label, y_label = MAP_AXES.get(self.how, ("map 1", "map 2"))
            self.axis.set_xlabel(x_label)
            self.axis.set_ylabel(y_label)
            self.axis.set_xticks([])
            self.axis.set_yticks([])
            redraw(self.figure)


class PredictionScatter(PointPicker):
    """Predicted (notebook 03's probe) against true on the test split for a run, phenotype and label fraction;
    hover for the subject and condition, click to open it in ``viewer``."""

    def __init__(self, data: ExploreData, viewer=None, retrieval=None):
        import ipywidgets as w  # lazy: widgets load only when a widget is shown

        if not data.runs:
            raise FileNotFoundError(f"no finished runs in {data.runs_dir}: predictions need trained encoders")
        self.data, self.viewer, self.retrieval = data, viewer, retrieval
        self.runs = RunPicker(data, self.update)
        self.method, self.seed = self.runs.method, self.runs.seed
        present = data.measured_phenotypes()
        self.phenotype = w.Dropdown(options=[(display_name(p), p) for p in present],
                                    value="LVEF_pct" if "LVEF_pct" in present else present[0], description="phenotype")
        self.fraction = w.Dropdown(options=[(f"{f:.0%} labels", f) for f in label_fractions()], value=1.0,
                                   description="probe")
        self.hover = w.HTML()
        self.figure, self.canvas = canvas(6.2, 4.6, layout="constrained")
        self.axis = self.figure.add_subplot()
        self._connect(self.figure, self.axis, self.hover)
        for control in (self.phenotype, self.fraction):
            control.observe(lambda _: self.update(), "value")
        self.update()
        self.widget = w.VBox([w.HBox([self.method, self.seed, self.phenotype, self.fraction]), self.hover,
                              self.canvas])

    def describe(self, row: int) -> str:
        data, position = self.data, self.rows[row]
        condition = data.index["condition"].astype(str).iloc[position] if "condition" in data.index else "unknown"
        true, predicted = self.points[row]
        return (f"<b>{html_text(self.point_ids[row])}</b> · {html_text(condition_name(condition))} · "
                f"{html_text(display_name(self.phenotype.value))} true {fmt(true)}, predicted {fmt(predicted)} "
                f"{html_text(unit(self.phenotype.value))} (click: open in the patient viewer)")

    def update(self) -> None:
        data = self.data
        method, seed = self.runs.value
        column = EVALUATED.index(self.phenotype.value)
        test = np.flatnonzero(data.splits == "test")
        true = data.phenotypes()[test, column]
        predicted = data.predictions(method, seed, self.fraction.value)[test, column]
        known = np.isfinite(true) & np.isfinite(predicted)
        with locked(self.figure):
            self.rows, self.points = test[known], np.stack([true[known], predicted[known]], 1)
            self.point_ids = data.subject_ids[self.rows]
            conditions = data.index["condition"].astype(str).to_numpy()[self.rows] if "condition" in data.index \
                else np.full(len(self.rows), "unknown")
            self.axis.clear()
            for condition in present_conditions(conditions):  # each condition its colour and marker (reads in grey)
                chosen = conditions == condition
                self.axis.scatter(*self.points[chosen].T, s=18, linewidths=0, label=condition_name(condition),
                                  color=CONDITION_COLOURS.get(condition, UNKNOWN_COLOUR),
                                  marker=CONDITION_MARKERS.get(condition, "o"))
            name, symbol = self.phenotype.value, unit(self.phenotype.value)
            title = f"{method} seed {seed}, {self.fraction.value:.0%} labels"
            if len(self.points):
                low, high = np.nanmin(self.points), np.nanmax(self.points)
                self.axis.plot([low, high], [low, high], "--", color="0.5", lw=0.8)
                residual = self.points[:, 1] - self.points[:, 0]
                spread = max(((self.points[:, 0] - self.points[:, 0].mean()) ** 2).sum(), 1e-12)
                r2 = 1 - (residual ** 2).sum() / spread
                title += f": test R² {r2:.2f}, MAE {np.abs(residual).mean():.1f} {symbol}".rstrip()
            self.axis.set_title(title, fontsize=9, **LITERAL_TEXT)
            if len(self.points):
                legend = self.axis.legend(fontsize=7, title="condition", title_fontsize=7, loc="upper left")
                literal_texts(legend.get_texts())  # condition names as written
            self.axis.set_xlabel(axis_label(name, "CMR"))
            self.axis.set_ylabel(axis_label(name, "ECG-predicted"))
            redraw(self.figure)
