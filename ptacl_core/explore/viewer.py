"""``PatientViewer``: one subject's ECG with R peaks and phase bins, the cine with masks, a frame slider and play,
the volume curves with a cursor, and the phenotypes against a probe's prediction.

The cine plays in the browser: every frame (the cine with its masks, the volume curve with the frame's cursor, the
frame's label) is rendered once when the subject is shown and sent as a small image, and ``ipywidgets.Stack``
widgets linked in the browser to the frame slider show frame *f* of each together, so play is as smooth as the
browser's timer whatever the kernel does, and the label is always the one of the frame shown. The kernel follows
the slider with the ECG cursors (blitted: the ECG's traces are drawn once per subject)."""

from __future__ import annotations

import threading
import time

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from ptacl_core import plotting
from ptacl_core.explore.compute import (
    MAX_OPTIONS,
    cine_frames_rgb,
    phase_bin_edges,
    phase_samples,
    select_subjects,
    worst_predicted,
)
from ptacl_core.explore.controls import (
    LITERAL_TEXT,
    RunPicker,
    browser_attached,
    canvas,
    error_html,
    fmt,
    html_text,
    id_search,
    list_first,
    locked,
    png_data_url,
    redraw,
    table,
)
from ptacl_core.explore.data import DEFAULT_BINS, ExploreData, label_fractions
from ptacl_core.leads import LEAD_NAMES
from ptacl_core.methods import label
from ptacl_core.phenotypes import EVALUATED, display_name, unit
from ptacl_core.plotting.style import LABEL_COLOURS, LABEL_NAMES, condition_name

MASK_ALPHA = 0.35  # the masks' weight over the grey cine
CURSOR_COLOUR = "#CC79A7"  # the frame's cursor and phase bin, on the ECG and the volume curve (not a mask colour)
CINE_PIXELS = 240  # displayed width of the cine (frames travel at their own resolution; the browser scales them)
PLAY_INTERVAL_MS = 45  # between frames while playing (22 frames per second asked; the browser shows what it can)
VOLUME_INCHES = (3.9, 2.9)  # the volume curve's frames (at 90 dots per inch)
PLOT_COLOURS = 64  # colours of the volume plot's frames (lines and text need no more)
ECG_PUSH_WHILE_PLAYING_S = 0.2  # the ECG's cursors while playing: at most 5 updates a second (each costs the browser)
LEAD_SPACING_MV = 3.0  # vertical distance between the ECG's leads


class PatientViewer:
    """One subject: 12-lead ECG with R peaks, phase bins and the current frame's phase in every beat; the cine
    with the filled mask overlay, a frame slider, play / stop (stop keeps the frame) and repeat; LV/RV volume curves
    with a cursor; phenotypes true vs predicted (notebook 03's probe of a chosen run and label fraction). The first
    subject shown is a test subject (held out from the probe) unless one is asked for. ``widget`` is what to
    display."""

    def __init__(self, data: ExploreData, subject: str | None = None, method: str | None = None,
                 seed: int | None = None):
        import ipywidgets as w  # lazy: widgets load only when a widget is shown

        self.data = data
        self._lock = threading.RLock()  # show / set_frame / a run change: never two at once (kernel threads)
        index = data.index
        conditions = sorted(index["condition"].astype(str).unique()) if "condition" in index else []
        self.condition = w.Dropdown(options=[("any condition", "")] + [(condition_name(c), c) for c in conditions],
                                    description="condition")
        self.split = w.Dropdown(options=[("any split", ""), ("train", "train"), ("val", "val"), ("test", "test")],
                                description="split")
        self.listing = w.Dropdown(options=[("all (index order)", "all"), ("worst predicted (test)", "worst")],
                                  description="list")
        present = [p for p in EVALUATED if np.isfinite(data.phenotypes()[:, EVALUATED.index(p)]).any()]
        self.worst_by = w.Dropdown(options=[("all phenotypes (z)", "")] + [(display_name(p), p) for p in present],
                                   description="worst by")
        self.subject = w.Dropdown(options=[], description="patient")
        self.status = w.HTML()
        self.search = id_search(self.show, self.status)
        self.runs = RunPicker(data, self._run_changed, method, seed, description="probe of")
        self.method, self.seed = self.runs.method, self.runs.seed
        self.fraction = w.Dropdown(options=[(f"{f:.0%} labels", f) for f in label_fractions()], value=1.0,
                                   description="probe")
        # the frame: a slider without its 0-based readout (the frame label counts from 1); ipywidgets' Play runs the
        # browser's timer, hidden, because its stop button rewinds to the first frame: play / stop is a toggle
        self.frame = w.IntSlider(min=0, max=1, value=0, description="frame", readout=False, continuous_update=True)
        self.play = w.Play(min=0, max=1, interval=PLAY_INTERVAL_MS, repeat=True, layout=w.Layout(display="none"))
        self.playing = w.ToggleButton(description="play", icon="play", tooltip="play / stop (stop keeps the frame)",
                                      layout=w.Layout(width="90px"))
        self.repeat = w.ToggleButton(value=True, description="repeat", icon="repeat", tooltip="loop the cycle",
                                     layout=w.Layout(width="90px"))
        self.play_links = [w.jslink((self.play, "value"), (self.frame, "value")),
                           w.jslink((self.playing, "value"), (self.play, "playing")),
                           w.jslink((self.repeat, "value"), (self.play, "repeat"))]
        # one child per frame, each Stack showing the slider's frame (linked in the browser once it has children)
        fixed = {"flex": "0 0 auto", "overflow": "hidden"}  # the frames' own size: never squeezed, no scroll bars
        self.cine_stack, self.volume_stack = w.Stack(layout=w.Layout(**fixed)), w.Stack(layout=w.Layout(**fixed))
        self.label_stack = w.Stack()
        self._cine_pool: list = []
        self._volume_pool: list = []
        self._label_pool: list = []
        self._linked = False
        self.cine_title = w.Label(layout=w.Layout(width=f"{CINE_PIXELS}px"))  # plain text
        self.mask_legend = w.HTML()
        self.readout = w.HTML()
        self._build_ecg_figure()
        self._build_volume_figure()
        self.subject_id: str | None = None
        self._cine: dict | None = None
        self._num_bins = DEFAULT_BINS
        self._quiet = False
        self._pushed_at = -np.inf
        self._refresh_options()
        for control in (self.condition, self.split, self.listing, self.worst_by):
            control.observe(lambda _: self._refresh_options(), "value")
        self.subject.observe(lambda change: change["new"] and change["new"] != self.subject_id
                             and self.show(change["new"]), "value")
        self.fraction.observe(lambda _: (self._update_readout(), self._refresh_options()), "value")
        self.frame.observe(lambda change: self.set_frame(change["new"]), "value")
        self.play.observe(lambda change: change["new"] or self.set_frame(self.frame.value), "playing")  # on stop
        first = subject if subject is not None else self.first_subject()
        if first is not None:
            self.show(first)
        self.widget = w.VBox([
            w.HBox([self.condition, self.split, self.listing, self.worst_by]),
            w.HBox([self.subject, self.search, self.method, self.seed, self.fraction]),
            self.status, self.ecg_canvas,
            w.HBox([self.playing, self.repeat, self.frame, self.label_stack, self.play]),
            w.HBox([w.VBox([self.cine_title, self.cine_stack, self.mask_legend],
                           layout=w.Layout(flex="0 0 auto", width=f"{CINE_PIXELS + 10}px")),
                    self.volume_stack, self.readout]),
        ])

    def _build_ecg_figure(self) -> None:
        self.ecg_figure, self.ecg_canvas = canvas(11.0, 4.6, toolbar=True)
        figure = self.ecg_figure
        axis = figure.add_subplot()
        # fixed margins: the lead names on the left, ipympl's toolbar (shown on hover) over the empty right edge
        figure.subplots_adjust(left=0.055, right=0.95, top=0.92, bottom=0.11)
        self.ecg_axis = axis
        self.bin_patches = PolyCollection([], facecolors="#4C72B0", alpha=0.07, edgecolors="none")
        self.current_bin = PolyCollection([], facecolors=CURSOR_COLOUR, alpha=0.25, edgecolors="none", animated=True)
        axis.add_collection(self.bin_patches)
        axis.add_collection(self.current_bin)
        self.lead_lines = [axis.plot([], [], lw=0.6, color="k")[0] for _ in LEAD_NAMES]
        self.rpeak_marks = axis.plot([], [], "v", color=plotting.MARK_COLOUR, ms=4)[0]
        self.ecg_cursors = LineCollection([], colors=CURSOR_COLOUR, linewidths=1.2, animated=True)
        axis.add_collection(self.ecg_cursors)
        self.scale_bar = axis.plot([], [], color="k", lw=1.5, solid_capstyle="butt")[0]
        self.scale_text = axis.text(0, 0, "1 mV", fontsize=8, va="center", ha="left")
        axis.set_yticks(-LEAD_SPACING_MV * np.arange(12), LEAD_NAMES)
        axis.set_ylim(-LEAD_SPACING_MV * 11 - 2.5, 2.5)
        axis.set_xlabel("time (s)")
        self._ecg_background = None
        figure.canvas.mpl_connect("draw_event", self._ecg_drawn)

    def _build_volume_figure(self) -> None:
        """The volume curves, offscreen (Agg): rendered once per frame into the images the browser switches."""
        self.volume_figure = Figure(figsize=VOLUME_INCHES, dpi=90)
        FigureCanvasAgg(self.volume_figure)
        axis = self.volume_axis = self.volume_figure.add_subplot()
        self.volume_figure.subplots_adjust(left=0.17, right=0.96, top=0.89, bottom=0.16)
        self.lv_line = axis.plot([], [], color=LABEL_COLOURS[1], label=LABEL_NAMES[1])[0]
        self.rv_line = axis.plot([], [], color=LABEL_COLOURS[3], label=LABEL_NAMES[3])[0]
        self.volume_cursor = axis.axvline(0, color=CURSOR_COLOUR, lw=1.2, animated=True)
        axis.set_xlabel("time after R (ms)")
        axis.set_ylabel("volume (mL)")
        axis.legend(fontsize=7, loc="lower right")

    # selection
    def _refresh_options(self) -> None:
        data = self.data
        if self.listing.value == "worst":
            ids = self.worst_ids()
        else:
            ids = select_subjects(data.index, self.condition.value or None, self.split.value or None)
        current = self.subject.value
        self.subject.options = ids
        if current in ids and self.listing.value != "worst":
            self.subject.value = current  # still listed: kept
        elif ids:
            self.subject.value = ids[0]  # the worst predicted first (or the first matching the filters)
        self.status.value = "" if ids else error_html("no subject matches these filters")

    def first_subject(self) -> str | None:
        """The subject shown when none is asked for: the first test subject (its predictions are held out), else
        the first listed."""
        tests = select_subjects(self.data.index, split="test", limit=1)
        return tests[0] if tests else (self.subject.options[0] if self.subject.options else None)

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

    def _run_bins(self) -> int:
        method, seed = self.runs.value
        return self.data.num_bins(method, seed) if method is not None and seed is not None else DEFAULT_BINS

    def _run_changed(self) -> None:
        """Another run (method or seed): its worst-predicted list, its K phase bins, its predictions."""
        self._refresh_options()
        with self._lock:
            if self.subject_id is None or self._cine is None:
                return
            self._num_bins = self._run_bins()
            with locked(self.ecg_figure):
                self._draw_bins()
                self._set_cursors(self.frame.value)
            self._set_frame_labels()
            self._update_readout()
            redraw(self.ecg_figure)

    # showing a subject
    def show(self, subject_id: str) -> None:
        """Display one subject (its id as stored or typed with other surrounding spaces, ``ExploreData.resolve``;
        a ValueError naming an unknown id). Everything is read and rendered before anything is changed, so a
        subject that cannot be shown leaves the previous one on screen."""
        data = self.data
        with self._lock:
            subject_id = data.resolve(subject_id)
            ecg, rpeaks = data.ecg(subject_id)
            cine = data.cine(subject_id)
            num_bins = self._run_bins()
            cine_urls = self._cine_frames(cine)
            volume_urls = self._volume_frames(cine)
            self.subject_id, self._rpeaks, self._cine, self._num_bins = subject_id, rpeaks, cine, num_bins
            list_first(self.subject, subject_id)  # e.g. opened from the map or the id box: listed first
            self.status.value = ""
            with locked(self.ecg_figure):
                self._ecg_background = None  # the traces change: the next push is a full draw
                t = np.arange(ecg.shape[1]) / data.fs
                for lead, line in enumerate(self.lead_lines):
                    line.set_data(t, ecg[lead] - LEAD_SPACING_MV * lead)
                self.rpeak_marks.set_data(rpeaks / data.fs, np.full(len(rpeaks), 1.8))
                end = float(t[-1]) if len(t) else 1.0
                self.ecg_axis.set_xlim(0, end + 0.45)  # room for the 1 mV scale bar after the last sample
                bar = end + 0.2
                self.scale_bar.set_data([bar, bar], [-LEAD_SPACING_MV * 11, -LEAD_SPACING_MV * 11 + 1.0])
                self.scale_text.set_position((bar + 0.04, -LEAD_SPACING_MV * 11 + 0.5))
                self._draw_bins()
                self._set_cursors(0)
            n_frames = len(cine["image"])
            self.cine_title.value = f"mid short-axis slice ({cine['source']})"
            self.mask_legend.value = self._mask_legend(cine["masks"] is not None)
            height, width = cine["image"].shape[1:]
            size = (CINE_PIXELS, round(CINE_PIXELS * height / max(width, 1)))
            cine_frames = self._frames(self._cine_pool, n_frames, "ptacl-cine-frame", size)
            volume_size = tuple(round(90 * inches) for inches in VOLUME_INCHES)
            volume_frames = self._frames(self._volume_pool, n_frames, "ptacl-volume-frame", volume_size)
            for frame, url in zip(cine_frames, cine_urls, strict=True):
                frame.value = url
            for frame, url in zip(volume_frames, volume_urls, strict=True):
                frame.value = url
            self._quiet = True  # the slider's observer moves the cursors; the ECG is drawn once, below
            try:
                self.frame.value = 0
            finally:
                self._quiet = False
            self.frame.max = self.play.max = n_frames - 1
            self._set_frame_labels()
            for stack, children in ((self.cine_stack, cine_frames), (self.volume_stack, volume_frames)):
                self._set_children(stack, children)
            self._link_stacks()
            self._update_readout()
            redraw(self.ecg_figure)

    def _cine_frames(self, cine: dict) -> list[bytes]:
        """Every frame of the cine with its mask overlay, as data URLs (``png_data_url``), at the cine's own size."""
        image = cine["image"]
        clim = (float(np.nanpercentile(image, 1)), float(np.nanpercentile(image, 99.5)))
        colours = {value: to_rgb(colour) for value, colour in LABEL_COLOURS.items()}
        return [png_data_url(frame) for frame in cine_frames_rgb(image, cine["masks"], clim, colours, MASK_ALPHA)]

    def cursor_times(self, cine: dict | None = None) -> np.ndarray:
        """(T,) where each frame's cursor sits on the volume curve's axis: ms after R, or the frame number for a
        cine without timing."""
        cine = self._cine if cine is None else cine
        frames = np.arange(len(cine["image"]), dtype=float)
        interval = cine["frame_interval_ms"]
        return frames * interval if np.isfinite(interval) else frames

    def _volume_frames(self, cine: dict) -> list[bytes]:
        """The volume curves with each frame's cursor, as data URLs: the curves drawn once, the cursor blitted."""
        figure, axis = self.volume_figure, self.volume_axis
        times = self.cursor_times(cine)
        timed = np.isfinite(cine["frame_interval_ms"])
        axis.set_xlabel("time after R (ms)" if timed else "frame (no frame timing)")
        if cine["lv_ml"] is None:
            self.lv_line.set_data([], [])
            self.rv_line.set_data([], [])
            axis.set_title("no masks in the cohort folder: no volume curve", fontsize=9)
            figure.canvas.draw()
            still = png_data_url(np.asarray(figure.canvas.buffer_rgba())[..., :3], PLOT_COLOURS)
            return [still] * len(times)
        self.lv_line.set_data(times, cine["lv_ml"])
        self.rv_line.set_data(times, cine["rv_ml"])
        axis.set_xlim(0, max(float(times[-1]), 1.0))
        both = np.concatenate([cine["lv_ml"], cine["rv_ml"]])
        axis.set_ylim(0, max(float(np.nanmax(both)), 1.0) * 1.1)
        axis.set_title("LV / RV volume from the masks", fontsize=9)
        figure.canvas.draw()
        background = figure.canvas.copy_from_bbox(figure.bbox)
        urls = []
        for x in times:
            figure.canvas.restore_region(background)
            self.volume_cursor.set_xdata([x, x])
            axis.draw_artist(self.volume_cursor)
            urls.append(png_data_url(np.asarray(figure.canvas.buffer_rgba())[..., :3], PLOT_COLOURS))
        return urls

    @staticmethod
    def _mask_legend(masks: bool) -> str:
        if not masks:
            return "<i>no masks in the cohort folder: the cine in grey</i>"
        swatches = " ".join(f"<span style='color:{LABEL_COLOURS[value]}'>&#9632;</span>&nbsp;"
                            + html_text(name).replace(" ", "&nbsp;")  # an item wraps whole
                            for value, name in LABEL_NAMES.items() if value in LABEL_COLOURS)
        return f"<span style='font-size:12px'>masks: {swatches}</span>"

    def _frames(self, pool: list, n: int, kind: str, size: tuple[int, int]) -> list:
        """The first ``n`` image widgets of a pool (grown as needed; frame i is always the pool's i-th, its DOM
        classes ``kind`` and ``ptacl-frame-<i>``), shown at ``size`` (width, height) pixels."""
        import ipywidgets as w  # lazy: widgets load only when a widget is shown

        while len(pool) < n:
            pool.append(w.Image(format="url", layout=w.Layout(flex="0 0 auto"))
                        .add_class(kind).add_class(f"ptacl-frame-{len(pool)}"))
        width, height = f"{size[0]}px", f"{size[1]}px"
        for frame in pool[:n]:
            if (frame.layout.width, frame.layout.height) != (width, height):
                frame.layout.width = frame.layout.min_width = width
                frame.layout.height = height
        return pool[:n]

    def _set_frame_labels(self) -> None:
        """One label per frame (``frame_text``), in the label Stack."""
        import ipywidgets as w  # lazy: widgets load only when a widget is shown

        n = len(self._cine["image"])
        while len(self._label_pool) < n:
            self._label_pool.append(w.Label().add_class("ptacl-frame-label")
                                    .add_class(f"ptacl-frame-{len(self._label_pool)}"))
        for frame, widget in enumerate(self._label_pool[:n]):
            widget.value = self.frame_text(frame)
        self._set_children(self.label_stack, self._label_pool[:n])

    def _set_children(self, stack, children: list) -> None:
        children = tuple(children)
        frame = min(self.frame.value, len(children) - 1)
        with stack.hold_sync():  # one message: the browser never sees an index beyond the children
            if stack.children != children:
                if stack.selected_index is not None and stack.selected_index >= len(children):
                    stack.selected_index = 0
                stack.children = children
            stack.selected_index = frame

    def _link_stacks(self) -> None:
        """Link the frame slider to the Stacks in the browser (once they have children: an index without a child
        is an error there)."""
        import ipywidgets as w  # lazy: widgets load only when a widget is shown

        if not self._linked:
            self._linked = True
            self.stack_links = [w.jsdlink((self.frame, "value"), (stack, "selected_index"))
                                for stack in (self.cine_stack, self.volume_stack, self.label_stack)]

    @property
    def frame_label(self):
        """The label widget of the frame on the slider (what the browser shows beside it)."""
        return self.label_stack.children[min(self.frame.value, len(self.label_stack.children) - 1)]

    def frame_text(self, frame: int) -> str:
        """The label of ``frame`` (0-based): frame and phase bin counted from 1, its time after the R peak."""
        n = len(self._cine["image"])
        phase = frame / n
        current = int(phase * self._num_bins)
        time_ms = frame * self._cine["frame_interval_ms"]  # NaN without frame timing
        timing = " (interval from the ECG)" if self._cine["interval_from_ecg"] else ""
        return (f"frame {frame + 1} of {n} · phase {phase:.2f} · bin {current + 1}/{self._num_bins} · "
                f"{fmt(time_ms, 0)} ms after R{timing}")

    def _draw_bins(self) -> None:
        """The chosen run's K phase bins in every beat of the shown subject, and the ECG title naming K."""
        data = self.data
        self._ecg_background = None
        edges = phase_bin_edges(self._rpeaks, self._num_bins) / data.fs
        self._bin_edges = edges
        shaded = [[(a, -40), (b, -40), (b, 3), (a, 3)] for beat in edges
                  for a, b in zip(beat[0:-1:2], beat[1::2], strict=False)]
        self.bin_patches.set_verts(shaded)
        position = data.position(self.subject_id)
        condition = data.index["condition"].iloc[position] if "condition" in data.index else "unknown"
        self.ecg_axis.set_title(f"{self.subject_id} · {condition_name(condition)} · {data.splits[position]} "
                                f"split · K = {self._num_bins} phase bins per RR (shaded alternately)", fontsize=10,
                                **LITERAL_TEXT)

    # the frame
    def set_frame(self, frame: int) -> None:
        """Follow the slider's frame on the ECG: a cursor at the frame's phase (frame / T) in every beat and its
        phase bin. The cine, the volume cursor and the label follow in the browser (``cine_stack``,
        ``volume_stack``, ``label_stack``). While playing the ECG is updated at most every
        ``ECG_PUSH_WHILE_PLAYING_S`` (ipympl re-encodes the whole canvas in the browser for each update, which
        slowed the cine), and at the frame where play stops."""
        with self._lock:
            if self._cine is None:
                return
            with locked(self.ecg_figure):
                self._set_cursors(frame)
                now = time.monotonic()
                if self._quiet or (self.play.playing and now - self._pushed_at < ECG_PUSH_WHILE_PLAYING_S):
                    return
                self._pushed_at = now
                self._push_cursors()

    def _set_cursors(self, frame: int) -> None:
        frame = int(np.clip(frame, 0, len(self._cine["image"]) - 1))
        phase = frame / len(self._cine["image"])
        cursor_s = phase_samples(self._rpeaks, phase) / self.data.fs
        self.ecg_cursors.set_segments([[(c, -40), (c, 3)] for c in cursor_s])
        current = int(phase * self._num_bins)
        self.current_bin.set_verts([[(b[current], -40), (b[current + 1], -40), (b[current + 1], 3), (b[current], 3)]
                                    for b in self._bin_edges])

    def _draw_cursors(self) -> None:
        self.ecg_figure.draw_artist(self.current_bin)
        self.ecg_figure.draw_artist(self.ecg_cursors)

    def _ecg_drawn(self, event) -> None:
        """After a full draw of the ECG: keep it as the background the cursors are blitted over, then draw them."""
        canvas_ = self.ecg_figure.canvas
        if event.renderer is not getattr(canvas_, "renderer", None):
            return  # a draw into another renderer (a saved file)
        self._ecg_background = canvas_.copy_from_bbox(self.ecg_figure.bbox)
        self._draw_cursors()

    def _push_cursors(self) -> None:
        """The cursors on screen: blitted over the last full draw (a small diff image) when a browser shows the
        ECG, else a full draw."""
        canvas_ = self.ecg_figure.canvas
        if self._ecg_background is None or not browser_attached(canvas_):
            redraw(self.ecg_figure)
            return
        canvas_.restore_region(self._ecg_background)
        self._draw_cursors()
        canvas_.blit(self.ecg_figure.bbox)

    def _update_readout(self) -> None:
        if self.subject_id is None:
            return

        data = self.data
        position = data.position(self.subject_id)
        true = data.phenotypes()[position]
        method, seed = self.runs.value
        predicted = data.predictions(method, seed, self.fraction.value)[position] \
            if method is not None and seed is not None else np.full(len(EVALUATED), np.nan)
        rows = [(display_name(name), unit(name), fmt(true[i]), fmt(predicted[i]), fmt(predicted[i] - true[i]))
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
