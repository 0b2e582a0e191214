"""Controls and figure plumbing shared by the widgets: the run picker (method + seed), the subject-id search box,
the ipympl canvas (``canvas``, ``locked``, ``redraw``), frames for the browser (``png_data_url``), and the one gate
cohort text passes to reach the browser or a figure.

Threads: JupyterLab (4.4 and later) sends widget messages to the kernel over subshells, and ipykernel (7) answers a
widget's messages on the thread that last sent from it, so an ipympl canvas's draw requests can be handled on one
kernel thread while a dropdown's callback changes the same figure on another. A draw that ran while the callback was
inside ``Figure.tight_layout`` (which swaps the renderer's drawing methods for no-ops) sent the browser an empty frame:
the blank panel of issue 21. Every figure of ``canvas`` therefore has a lock (``locked``): each draw holds it, and so
does every widget while it changes its figure.

Cohort text (subject ids, condition names, splits, file names, error messages quoting them) is untrusted: an id
``<img src=x onerror=...>`` put into an ``ipywidgets.HTML`` value would run script in the user's JupyterLab, and an
id ``$\\frac{x}$`` in a matplotlib title would be parsed as mathtext. Every piece of it goes through ``html_text``
before it joins HTML (the widgets' markup is the kit's own), and through ``LITERAL_TEXT`` / ``literal_texts`` into
matplotlib text. Dropdown options, ``Label`` and ``Text`` values are plain text in the browser and need neither."""

from __future__ import annotations

import base64
import functools
import html
import io
import threading
from collections.abc import Callable, Iterable
from contextlib import nullcontext

import numpy as np
import PIL.Image
from matplotlib.figure import Figure

from ptacl_core import plotting
from ptacl_core.explore.compute import MAX_OPTIONS
from ptacl_core.explore.data import DEFAULT_METHOD, ExploreData


class RunPicker:
    """The method and seed dropdowns of a widget. ``on_change()`` runs exactly once per change of the chosen run,
    including a change of method whose first seed equals the previous seed (ipywidgets sends no seed change then,
    which is why no widget should wire these two dropdowns itself). A method change keeps the seed when the new
    method has it. ``method``, ``seed``: the dropdowns; ``value``: (method, seed), (None, None) without runs."""

    def __init__(self, data: ExploreData, on_change: Callable[[], None], method: str | None = None,
                 seed: int | None = None, description: str = "method", contrastive_only: bool = False):
        import ipywidgets as w  # lazy: widgets load only when a widget is shown

        methods = data.methods(contrastive_only)
        if method not in methods:
            method = DEFAULT_METHOD if DEFAULT_METHOD in methods else (methods or [None])[0]
        self.data, self._on_change, self._switching = data, on_change, False
        self.method = w.Dropdown(options=methods, value=method, description=description)
        self.seed = w.Dropdown(options=data.seeds(method) if method else [], description="seed")
        if seed is not None and int(seed) in self.seed.options:
            self.seed.value = int(seed)
        self.method.observe(self._method_changed, "value")
        self.seed.observe(self._seed_changed, "value")

    @property
    def value(self) -> tuple[str | None, int | None]:
        return self.method.value, self.seed.value

    def _method_changed(self, change) -> None:
        previous = self.seed.value
        self._switching = True
        try:
            seeds = self.data.seeds(change["new"]) if change["new"] else []
            self.seed.options = seeds
            if previous in seeds:
                self.seed.value = previous
        finally:
            self._switching = False
        self._on_change()

    def _seed_changed(self, _change) -> None:
        if not self._switching:
            self._on_change()


LITERAL_TEXT = {"parse_math": False, "usetex": False}  # matplotlib text keywords: drawn as written, never TeX


def literal_texts(texts: Iterable) -> None:
    """Make matplotlib Text artists (e.g. a legend's labels) draw their text as written: no mathtext, no TeX."""
    for text in texts:
        text.set_parse_math(False)
        text.set_usetex(False)


def html_text(value) -> str:
    """``value`` (any cohort text: an id, a condition, a file name, an error message) as the text content of an
    HTML element, displaying exactly those characters: ``& < >`` escaped, so nothing in it is markup or script.
    Content only: the widgets never put cohort text into an attribute (where quotes would matter)."""
    return html.escape(str(value), quote=False)


def id_search(open_subject: Callable[[str], None], status) -> object:
    """A text box: type a subject id and press Enter to ``open_subject(id)`` (any of the cohort's ids, not only
    the listed ones; the text as typed, which ``ExploreData.resolve`` matches exactly first, then without
    surrounding spaces); a ValueError (unknown id, wrong split) or OSError (an unreadable file) is shown in the
    ``status`` HTML widget, escaped."""
    import ipywidgets as w  # lazy: widgets load only when a widget is shown

    box = w.Text(placeholder="type an id, press Enter", description="id", continuous_update=False)

    def submitted(change) -> None:
        text = change["new"]
        if not text.strip():
            return
        try:
            open_subject(text)
        except (ValueError, OSError) as error:
            status.value = error_html(error)

    box.observe(submitted, "value")
    return box


def list_first(dropdown, subject_id: str) -> None:
    """Select ``subject_id`` in a subject dropdown, listing it first when it is not among its options."""
    if subject_id not in dropdown.options:
        dropdown.options = [subject_id, *dropdown.options[:MAX_OPTIONS - 1]]
    dropdown.value = subject_id


@functools.cache
def _locked_canvas_class() -> type:
    """ipympl's canvas whose every draw, blit and save holds the figure's lock (``locked``)."""
    from ipympl.backend_nbagg import Canvas  # lazy: ipympl loads only when a canvas is shown

    class LockedCanvas(Canvas):
        def draw(self):
            with locked(self.figure):
                super().draw()

        def blit(self, bbox=None):
            with locked(self.figure):
                super().blit(bbox)

        def print_figure(self, *args, **kwargs):
            with locked(self.figure):
                return super().print_figure(*args, **kwargs)

    return LockedCanvas


def canvas(width: float, height: float, toolbar: bool = False, layout: str | None = None):
    """A matplotlib Figure in an ipympl canvas widget (the kernel renders, the browser shows PNG frames), with its
    lock (``locked``). toolbar: ipympl's zoom / pan toolbar, on the figure's right edge while the pointer is over it
    (a figure that shows it keeps its right margin free); without it the canvas shows none. layout: the figure's
    layout engine ("constrained" keeps titles, labels and colour bars apart)."""
    from ipympl.backend_nbagg import FigureManager  # lazy: ipympl loads only when a canvas is shown

    figure = Figure(figsize=(width, height), dpi=90, layout=layout)
    figure.explore_lock = threading.RLock()
    widget = _locked_canvas_class()(figure)
    FigureManager(widget, 0)
    widget.header_visible = widget.footer_visible = False  # no title bar, no pointer coordinates line
    widget.toolbar_visible = "fade-in-fade-out" if toolbar else False
    widget.toolbar_position = "right"
    widget.resizable = False
    return figure, widget


def locked(figure):
    """The lock of a ``canvas`` figure (a context manager): hold it while changing the figure, so that no draw
    (on any kernel thread) sees it half changed. A figure of no ``canvas`` (offscreen Agg) has none."""
    return getattr(figure, "explore_lock", None) or nullcontext()


def browser_attached(widget) -> bool:
    """Whether a browser view of this ipympl canvas is up (it said so: ipympl then stops embedding its image)."""
    return getattr(widget, "syncing_data_url", True) is False


def redraw(figure) -> None:
    """Put the figure's current state on screen. With a browser view up it is drawn now and pushed: ipympl's own
    ``draw_idle`` asks the browser to request a draw, and the browser drops that request while an earlier frame is
    on its way, which left the previous state on screen. Before a view exists, only the request (nothing to push)."""
    if browser_attached(figure.canvas):
        figure.canvas.draw()
    else:
        figure.canvas.draw_idle()


def png_data_url(pixels: np.ndarray, colours: int | None = None) -> bytes:
    """An (H, W, 3) uint8 image as a PNG ``data:`` URL, the value of an ``ipywidgets.Image(format="url")``.
    colours: at most that many colours (a plot: a quarter of the bytes), else every one (a cine). Measured in
    Chromium: frames switched in the browser at 16 per second showed an empty image in 3 % of paints with
    ipywidgets' blob URLs (each view decodes its image again) and in none with data URLs."""
    image = PIL.Image.fromarray(np.ascontiguousarray(pixels, np.uint8))
    if colours is not None:
        image = image.quantize(colours, method=PIL.Image.Quantize.FASTOCTREE, dither=PIL.Image.Dither.NONE)
    buffer = io.BytesIO()
    image.save(buffer, format="png", compress_level=1 if colours is None else 6)
    return b"data:image/png;base64," + base64.b64encode(buffer.getvalue())


def table(rows: list[tuple], header: tuple) -> str:
    """An HTML table of ``rows`` under ``header``; every cell is text (``html_text``), never markup."""
    head = "".join(f"<th style='padding:0 6px'>{html_text(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td style='padding:0 6px;text-align:right'>{html_text(v)}</td>" for v in row)
                   + "</tr>" for row in rows)
    return f"<table style='font-size:12px;line-height:1.35'><tr>{head}</tr>{body}</table>"


def fmt(value: float, digits: int = 1) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def error_html(error) -> str:
    """An error message (which may quote a typed id or a file name) as red HTML text, escaped."""
    return f"<span style='color:{plotting.MARK_COLOUR}'>{html_text(error)}</span>"
