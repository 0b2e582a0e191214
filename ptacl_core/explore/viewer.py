"""``PatientViewer``: one subject's ECG with R peaks and phase bins, the cine with masks and a frame slider, the
volume curves with a cursor, and the phenotypes against a probe's prediction."""

from __future__ import annotations

import numpy as np
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import to_rgb

from ptacl_core import plotting
from ptacl_core.explore.compute import MAX_OPTIONS, phase_bin_edges, phase_samples, select_subjects, worst_predicted
from ptacl_core.explore.controls import (
    LITERAL_TEXT,
    RunPicker,
    canvas,
    error_html,
    fmt,
    html_text,
    id_search,
    list_first,
    redraw,
    table,
)
from ptacl_core.explore.data import DEFAULT_BINS, ExploreData, label_fractions
from ptacl_core.leads import LEAD_NAMES
from ptacl_core.methods import label
from ptacl_core.phenotypes import EVALUATED, UNITS
from ptacl_core.plotting import LABEL_COLOURS


class PatientViewer:
    """One subject: 12-lead ECG with R peaks, phase bins and the current frame's phase in every beat; the cine
    with a frame slider and play button, the filled mask overlay, LV/RV volume curves with a cursor; phenotypes true
    vs predicted (notebook 03's probe of a chosen run and label fraction). ``widget`` is what to display."""

    def __init__(self, data: ExploreData, subject: str | None = None, method: str | None = None,
                 seed: int | None = None):
        import ipywidgets as w  # lazy: widgets load only when a widget is shown

        self.data = data
        index = data.index
        conditions = sorted(index["condition"].astype(str).unique()) if "condition" in index else []
        self.condition = w.Dropdown(options=[("any condition", "")] + [(c.replace("_", " "), c) for c in conditions],
                                    description="condition")
        self.split = w.Dropdown(options=[("any split", ""), ("train", "train"), ("val", "val"), ("test", "test")],
                                description="split")
        self.listing = w.Dropdown(options=[("all (index order)", "all"), ("worst predicted (test)", "worst")],
                                  description="list")
        present = [p for p in EVALUATED if np.isfinite(data.phenotypes()[:, EVALUATED.index(p)]).any()]
        self.worst_by = w.Dropdown(options=[("all phenotypes (z)", "")] + [(p, p) for p in present],
                                   description="worst by")
        self.subject = w.Dropdown(options=[], description="patient")
        self.status = w.HTML()
        self.search = id_search(self.show, self.status)
        self.runs = RunPicker(data, self._run_changed, method, seed, description="probe of")
        self.method, self.seed = self.runs.method, self.runs.seed
        self.fraction = w.Dropdown(options=[(f"{f:.0%} labels", f) for f in label_fractions()], value=1.0,
                                   description="probe")
        self.frame = w.IntSlider(min=0, max=1, value=0, description="frame", continuous_update=True)
        self.play = w.Play(min=0, max=1, interval=150, description="play")
        w.jslink((self.play, "value"), (self.frame, "value"))
        self.frame_label = w.Label()  # plain text: no markup needed
        self.readout = w.HTML()
        self._build_figures()
        self.subject_id: str | None = None
        self._cine: dict | None = None
        self._refresh_options()
        for control in (self.condition, self.split, self.listing, self.worst_by):
            control.observe(lambda _: self._refresh_options(), "value")
        self.subject.observe(lambda change: change["new"] and change["new"] != self.subject_id
                             and self.show(change["new"]), "value")
        self.fraction.observe(lambda _: (self._update_readout(), self._refresh_options()), "value")
        self.frame.observe(lambda change: self.set_frame(change["new"]), "value")
        first = subject or (self.subject.options[0] if self.subject.options else None)
        if first is not None:
            self.show(first)
        self.widget = w.VBox([
            w.HBox([self.condition, self.split, self.listing, self.worst_by]),
            w.HBox([self.subject, self.search, self.method, self.seed, self.fraction]),
            self.status, self.ecg_canvas,
            w.HBox([self.play, self.frame, self.frame_label]),
            w.HBox([self.cine_canvas, self.readout]),
        ])

    def _build_figures(self) -> None:
        self.ecg_figure, self.ecg_canvas = canvas(11.0, 4.6)
        axis = self.ecg_figure.add_subplot()
        self.ecg_axis = axis
        self.bin_patches = PolyCollection([], facecolors="#4C72B0", alpha=0.07, edgecolors="none")
        self.current_bin = PolyCollection([], facecolors="#DD8452", alpha=0.25, edgecolors="none")
        axis.add_collection(self.bin_patches)
        axis.add_collection(self.current_bin)
        self.lead_lines = [axis.plot([], [], lw=0.6, color="k")[0] for _ in LEAD_NAMES]
        self.rpeak_marks = axis.plot([], [], "v", color=plotting.MARK_COLOUR, ms=4)[0]
        self.ecg_cursors = LineCollection([], colors="#DD8452", linewidths=1.2)
        axis.add_collection(self.ecg_cursors)
        axis.set_yticks(-3.0 * np.arange(12), LEAD_NAMES)
        axis.set_ylim(-3.0 * 11 - 2.5, 2.5)
        axis.set_xlabel("time (s)")
        self.ecg_figure.tight_layout()

        self.cine_figure, self.cine_canvas = canvas(7.5, 3.4)
        image_axis, volume_axis = self.cine_figure.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.3]})
        self.image_axis, self.volume_axis = image_axis, volume_axis
        self.cine_image = image_axis.imshow(np.zeros((2, 2)), cmap="gray")
        self.mask_image = image_axis.imshow(np.zeros((2, 2, 4)))
        image_axis.set_axis_off()
        self.lv_line = volume_axis.plot([], [], color="#e41a1c", label="LV cavity")[0]
        self.rv_line = volume_axis.plot([], [], color="#377eb8", label="RV cavity")[0]
        self.volume_cursor = volume_axis.axvline(0, color="#DD8452", lw=1.2)
        volume_axis.set_xlabel("time after R (ms)")
        volume_axis.set_ylabel("volume (mL)")
        volume_axis.legend(fontsize=7, loc="upper right")
        self.cine_figure.tight_layout()

    # selection
    def _refresh_options(self) -> None:
        data = self.data
        if self.listing.value == "worst":
            ids = self.worst_ids()
        else:
            ids = select_subjects(data.index, self.condition.value or None, self.split.value or None)
        current = self.subject.value
        self.subject.options = ids
        if current in ids:
            self.subject.value = current
        self.status.value = "" if ids else error_html("no subject matches these filters")

    def worst_ids(self, n: int = MAX_OPTIONS) -> list[str]:
        """Test subjects (of the chosen condition, if any) worst predicted by the chosen run's probe
        (``worst_predicted``), worst first, at most ``n``."""
        method, seed = self.runs.value
        if method is None or seed is None:
            return []
        data = self.data
        test = np.flatnonzero(data.splits == "test")
        if self.condition.value:
            test = test[data.index["condition"].astype(str).to_numpy()[test] == self.condition.value]
        predicted = data.predictions(method, seed, self.fraction.value)[test]
        true = data.phenotypes()[test]
        if self.worst_by.value:
            column = EVALUATED.index(self.worst_by.value)
            rows = worst_predicted(true[:, column], predicted[:, column], n=n)
        else:
            rows = worst_predicted(true, predicted, data.training_sd(), n=n)
        return data.subject_ids[test[rows]].tolist()

    def _run_changed(self) -> None:
        """Another run (method or seed): its worst-predicted list, its K phase bins, its predictions."""
        self._refresh_options()
        if self.subject_id is not None and self._cine is not None:
            self._draw_bins()
            self._update_readout()
            self.set_frame(self.frame.value)

    def show(self, subject_id: str) -> None:
        """Display one subject (its id as stored or typed with other surrounding spaces, ``ExploreData.resolve``;
        a ValueError naming an unknown id). Everything is read before anything is changed, so a subject that
        cannot be shown leaves the previous one on screen."""
        data = self.data
        subject_id = data.resolve(subject_id)
        ecg, rpeaks = data.ecg(subject_id)
        cine = data.cine(subject_id)
        self.subject_id, self._rpeaks, self._cine = subject_id, rpeaks, cine
        list_first(self.subject, subject_id)  # e.g. opened from the map or the id box: listed first
        self.status.value = ""
        t = np.arange(ecg.shape[1]) / data.fs
        for lead, line in enumerate(self.lead_lines):
            line.set_data(t, ecg[lead] - 3.0 * lead)
        self.rpeak_marks.set_data(rpeaks / data.fs, np.full(len(rpeaks), 1.8))
        self.ecg_axis.set_xlim(0, t[-1])
        self._draw_bins()
        image = cine["image"]
        self.cine_image.set_data(image[0])
        self.cine_image.set_clim(float(np.percentile(image, 1)), float(np.percentile(image, 99.5)))
        self.cine_image.set_extent((-0.5, image.shape[2] - 0.5, image.shape[1] - 0.5, -0.5))
        self.mask_image.set_extent(self.cine_image.get_extent())
        n_frames = image.shape[0]
        timed = np.isfinite(cine["frame_interval_ms"])
        times = np.arange(n_frames) * (cine["frame_interval_ms"] if timed else 1.0)
        self.volume_axis.set_xlabel("time after R (ms)" if timed else "frame (no frame timing)")
        if cine["lv_ml"] is not None:
            self.lv_line.set_data(times, cine["lv_ml"])
            self.rv_line.set_data(times, cine["rv_ml"])
            self.volume_axis.set_xlim(0, max(float(times[-1]), 1.0))
            both = np.concatenate([cine["lv_ml"], cine["rv_ml"]])
            self.volume_axis.set_ylim(0, max(float(np.nanmax(both)), 1.0) * 1.1)
            self.volume_axis.set_title("LV / RV volume from the masks", fontsize=9)
        else:
            self.lv_line.set_data([], [])
            self.rv_line.set_data([], [])
            self.volume_axis.set_title("no masks in the cohort folder: no volume curve", fontsize=9)
        self.image_axis.set_title(f"mid short-axis slice ({cine['source']})", fontsize=9)
        self.frame.max = self.play.max = n_frames - 1
        self.ecg_figure.tight_layout()  # room for this subject's titles
        self.cine_figure.tight_layout()
        self._update_readout()
        if self.frame.value != 0:
            self.frame.value = 0  # set_frame follows through the observer
        else:
            self.set_frame(0)
        redraw(self.ecg_figure)

    def _draw_bins(self) -> None:
        """The chosen run's K phase bins in every beat of the shown subject, and the ECG title naming K."""
        data = self.data
        method, seed = self.runs.value
        self._num_bins = data.num_bins(method, seed) if method is not None and seed is not None else DEFAULT_BINS
        edges = phase_bin_edges(self._rpeaks, self._num_bins) / data.fs
        self._bin_edges = edges
        shaded = [[(a, -40), (b, -40), (b, 3), (a, 3)] for beat in edges
                  for a, b in zip(beat[0:-1:2], beat[1::2], strict=False)]
        self.bin_patches.set_verts(shaded)
        position = data.position(self.subject_id)
        condition = data.index["condition"].iloc[position] if "condition" in data.index else "unknown"
        self.ecg_axis.set_title(f"{self.subject_id} · {str(condition).replace('_', ' ')} · {data.splits[position]} "
                                f"split · K = {self._num_bins} phase bins per RR (shaded alternately)", fontsize=10,
                                **LITERAL_TEXT)

    def set_frame(self, frame: int) -> None:
        """Move the cine, the volume cursor and the ECG cursors to ``frame`` (phase frame / T in every beat)."""
        if self._cine is None:
            return
        image, masks = self._cine["image"], self._cine["masks"]
        frame = int(np.clip(frame, 0, len(image) - 1))
        phase = frame / len(image)
        self.cine_image.set_data(image[frame])
        overlay = np.zeros((*image.shape[1:], 4))
        if masks is not None:


            for label, colour in LABEL_COLOURS.items():
                inside = masks[frame] == label
                overlay[inside] = (*to_rgb(colour), 0.35)
        self.mask_image.set_data(overlay)
        time_ms = frame * self._cine["frame_interval_ms"]  # NaN without frame timing
        cursor = time_ms if np.isfinite(time_ms) else float(frame)
        self.volume_cursor.set_xdata([cursor, cursor])
        cursor_s = phase_samples(self._rpeaks, phase) / self.data.fs
        self.ecg_cursors.set_segments([[(c, -40), (c, 3)] for c in cursor_s])
        current = int(phase * self._num_bins)
        self.current_bin.set_verts([[(b[current], -40), (b[current + 1], -40), (b[current + 1], 3), (b[current], 3)]
                                    for b in self._bin_edges])
        timing = " (interval from the ECG)" if self._cine["interval_from_ecg"] else ""
        self.frame_label.value = (f"frame {frame} of {len(image)} · phase {phase:.2f} · bin {current + 1}/"
                                  f"{self._num_bins} · {fmt(time_ms, 0)} ms after R{timing}")
        redraw(self.ecg_figure)
        redraw(self.cine_figure)

    def _update_readout(self) -> None:
        if self.subject_id is None:
            return

        data = self.data
        position = data.position(self.subject_id)
        true = data.phenotypes()[position]
        method, seed = self.runs.value
        predicted = data.predictions(method, seed, self.fraction.value)[position] \
            if method is not None and seed is not None else np.full(len(EVALUATED), np.nan)
        rows = [(name.replace("_", " "), UNITS[name], fmt(true[i]), fmt(predicted[i]), fmt(predicted[i] - true[i]))
                for i, name in enumerate(EVALUATED) if np.isfinite(true[i]) or np.isfinite(predicted[i])]
        note = ("in-sample: a training subject of the probe" if data.splits[position] == "train" else
                f"held out ({data.splits[position]} split)")
        source = (f"{label(method)} seed {seed}, {self.fraction.value:.0%} of training labels" if method else
                  "no trained run")
        timing = ""
        if self._cine is not None and self._cine["interval_from_ecg"]:
            timing = ("<br><i>frame timing derived from the ECG's RR interval: the cine file gives none "
                      "(cache flag frame_interval_from_ecg)</i>")
        elif self._cine is not None and not np.isfinite(self._cine["frame_interval_ms"]):
            timing = "<br><i>no frame timing: the volume curve is drawn against the frame number</i>"
        self.readout.value = (f"<b>{html_text(self.subject_id)}</b>: phenotypes, CMR truth vs predicted from the "
                              f"ECG ({html_text(source)}; {html_text(note)}){timing}"
                              + table(rows, ("phenotype", "unit", "true", "predicted", "error")))
