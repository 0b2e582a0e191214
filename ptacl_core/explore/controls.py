"""Controls and figure plumbing shared by the widgets: the run picker (method + seed), the subject-id search box,
the ipympl canvas, and the one gate cohort text passes to reach the browser or a figure.

Cohort text (subject ids, condition names, splits, file names, error messages quoting them) is untrusted: an id
``<img src=x onerror=...>`` put into an ``ipywidgets.HTML`` value would run script in the user's JupyterLab, and an
id ``$\\frac{x}$`` in a matplotlib title would be parsed as mathtext. Every piece of it goes through ``html_text``
before it joins HTML (the widgets' markup is the kit's own), and through ``LITERAL_TEXT`` / ``literal_texts`` into
matplotlib text. Dropdown options, ``Label`` and ``Text`` values are plain text in the browser and need neither."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable

import numpy as np
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


def canvas(width: float, height: float):
    """A matplotlib Figure in an ipympl canvas widget (the kernel renders, the browser shows PNG frames)."""
    from ipympl.backend_nbagg import Canvas, FigureManager  # lazy: ipympl loads only when a canvas is shown

    figure = Figure(figsize=(width, height), dpi=90)
    widget = Canvas(figure)
    FigureManager(widget, 0)
    widget.header_visible = False
    widget.toolbar_position = "left"
    widget.resizable = False
    return figure, widget


def redraw(figure) -> None:
    figure.canvas.draw_idle()


def table(rows: list[tuple], header: tuple) -> str:
    """An HTML table of ``rows`` under ``header``; every cell is text (``html_text``), never markup."""
    head = "".join(f"<th style='padding:0 6px'>{html_text(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td style='padding:0 6px;text-align:right'>{html_text(v)}</td>" for v in row)
                   + "</tr>" for row in rows)
    return f"<table style='font-size:12px'><tr>{head}</tr>{body}</table>"


def fmt(value: float, digits: int = 1) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def error_html(error) -> str:
    """An error message (which may quote a typed id or a file name) as red HTML text, escaped."""
    return f"<span style='color:{plotting.MARK_COLOUR}'>{html_text(error)}</span>"
