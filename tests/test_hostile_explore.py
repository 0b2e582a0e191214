"""Notebook 06's widgets on a hostile cohort (issue 20, section 1): subject ids, condition names and folder names
that are HTML/JS payloads or mathtext reach the browser as text, never as markup or script; matplotlib draws them
as written; ids with surrounding spaces open.

The cohort is the test cohort with every id and condition renamed (the tiny cache copied with a rewritten
index.csv, the cohort folder's tables rewritten, its files linked), so the trained runs still belong to it."""

import shutil
from html.parser import HTMLParser
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ptacl_core import explore
from ptacl_core.explore.controls import error_html, html_text, table
from ptacl_core.io.csv_cells import read_kit_csv, write_csv
from ptacl_core.plotting.style import condition_name

# ipympl's own toolbar passes traitlets an argument it deprecates: theirs, harmless
pytestmark = pytest.mark.filterwarnings("ignore:Passing unrecognized arguments to super\\(Toolbar\\):DeprecationWarning")

SCRIPT_PAYLOADS = ("<img src=x onerror=alert(1)>", "<script>alert(1)</script>", '"><svg onload=alert(1)>',
                   "<b onmouseover=alert(1)>bold</b>")
ENTITY_ID = "&lt;script&gt;alert(1)&lt;/script&gt;"  # already escaped: must show as these characters, not as <script>
TEX_ID = "$\\undefinedmacro{x}$"  # mathtext that does not parse: a title built from it raised when drawn
SPACED_ID = " 0007 "  # leading and trailing spaces, kept as stored
PLAIN_TEXT_WIDGETS = ("Dropdown", "SelectMultiple", "Text", "Label", "ToggleButtons")  # the browser shows as text
SAFE_TAGS = {"b", "i", "br", "span", "table", "thead", "tbody", "tr", "th", "td"}  # the widgets' own markup
SAFE_ATTRIBUTES = {"style", "border", "class"}


class _Markup(HTMLParser):
    """The tags, attributes and displayed text of an HTML fragment, as a browser parses it."""

    def __init__(self, fragment: str):
        super().__init__(convert_charrefs=True)
        self.tags, self.attributes, self.text = set(), set(), []
        self.feed(fragment)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)

    def handle_data(self, data):
        self.text.append(data)


def shown_text(fragment: str) -> str:
    """What the browser displays of an HTML fragment (entities decoded)."""
    return "".join(_Markup(fragment).text)


def _widget_tree(root):
    stack, seen = [root], set()
    while stack:
        widget = stack.pop()
        if id(widget) in seen:
            continue
        seen.add(id(widget))
        yield widget
        stack.extend(getattr(widget, "children", ()))


def _strings(widget):
    """(field, text) of every text a widget sends the browser: value, description, tooltips, placeholder, options."""
    for name in ("value", "description", "tooltip", "placeholder"):
        value = getattr(widget, name, None)
        if isinstance(value, str):
            yield name, value
    for option in getattr(widget, "_options_labels", ()) or ():
        yield "options", str(option)


def assert_no_markup_from_the_cohort(*roots) -> list[str]:
    """Walk every widget under ``roots``: each HTML value (and HTML description) holds only the widgets' own tags
    and attributes and no payload verbatim; a payload appears verbatim only in a field the browser shows as text.
    Returns the displayed texts of the HTML values (for checking that the ids are shown)."""
    import ipywidgets as w

    shown = []
    for root in roots:
        for widget in _widget_tree(root):
            kind = type(widget).__name__
            assert not isinstance(widget, w.HTMLMath), f"{kind} typesets $...$ in cohort text"
            for field, text in _strings(widget):
                as_html = (isinstance(widget, w.HTML) and field == "value") or (
                    field == "description" and getattr(widget, "description_allow_html", False))
                if as_html:
                    markup = _Markup(text)
                    assert markup.tags <= SAFE_TAGS, f"{kind}.{field} has tags {markup.tags - SAFE_TAGS}: {text!r}"
                    assert markup.attributes <= SAFE_ATTRIBUTES, f"{kind}.{field}: {markup.attributes}: {text!r}"
                    assert not [p for p in SCRIPT_PAYLOADS if p in text], f"{kind}.{field} verbatim: {text!r}"
                    shown.append("".join(markup.text))
                elif any(p in text for p in SCRIPT_PAYLOADS):
                    assert kind in PLAIN_TEXT_WIDGETS, f"a payload in {kind}.{field}, not a plain-text widget"
    return shown


def _hostile_ids(index: pd.DataFrame) -> dict:
    """Original id -> hostile id: the first two test subjects with a known LVEF get TEX_ID and SPACED_ID, every
    other subject a payload with a number (unique)."""
    gallery = index.subject_id[(index.split == "test") & index.LVEF_pct.notna()].tolist()
    renamed = {gallery[0]: TEX_ID, gallery[1]: SPACED_ID}
    payloads = (*SCRIPT_PAYLOADS, ENTITY_ID, TEX_ID)
    for i, subject in enumerate(index.subject_id):
        renamed.setdefault(subject, f"{payloads[i % len(payloads)]}{i}")
    return renamed


def _hostile_conditions(conditions) -> dict:
    """Each condition -> a payload followed by its name (the first one mathtext)."""
    payloads = (TEX_ID, *SCRIPT_PAYLOADS, ENTITY_ID)
    return {c: f"{payloads[i % len(payloads)]}_{c}" for i, c in enumerate(sorted(set(conditions)))}


def _rename(table: pd.DataFrame, ids: dict, conditions: dict) -> pd.DataFrame:
    table = table.copy()
    table["subject_id"] = table.subject_id.map(ids)
    if "condition" in table:
        table["condition"] = table.condition.map(conditions)
    return table


@pytest.fixture(scope="module")
def hostile(cohort, tiny_cache, trained_runs, tmp_path_factory):
    """(ExploreData over the renamed cohort, original id -> hostile id). The cache and runs folders are named
    with payloads too: their names reach error messages."""
    root = tmp_path_factory.mktemp("hostile")
    cache = root / "cache <img src=x onerror=alert(2)>"
    shutil.copytree(tiny_cache, cache)
    index = read_kit_csv(cache / "index.csv", id_columns=("subject_id", "flags"))
    ids, conditions = _hostile_ids(index), _hostile_conditions(index.condition)
    write_csv(_rename(index, ids, conditions), cache / "index.csv", index=False)
    folder = root / "cohort"
    folder.mkdir()
    for name in ("ecg", "cmr"):
        (folder / name).symlink_to(cohort / name, target_is_directory=True)
    for name in ("manifest.csv", "phenotypes.csv"):
        write_csv(_rename(read_kit_csv(cohort / name), ids, conditions), folder / name, index=False)
    runs = root / "runs <svg onload=alert(3)>"
    runs.symlink_to(trained_runs, target_is_directory=True)
    data = explore.ExploreData.load(folder, cache, "tiny", runs, root / "embeddings")
    assert len(data.runs) == 2, "the renamed cache must keep its runs"
    return data, ids


def _hover(picker, row: int) -> None:
    picker.figure.canvas.draw()
    x, y = picker.axis.transData.transform(picker.points[row])
    picker._on_move(SimpleNamespace(inaxes=picker.axis, x=x, y=y))


def test_every_explorer_widget_shows_payload_ids_and_conditions_as_text(hostile, monkeypatch):
    data, ids = hostile
    viewer = explore.PatientViewer(data)
    retrieval = explore.RetrievalExplorer(data)
    embedding_map = explore.EmbeddingMap(data, viewer, retrieval=retrieval)
    scatter = explore.PredictionScatter(data, viewer)
    phases = explore.PhaseSimilarityBrowser(data)
    widgets = (viewer.widget, retrieval.widget, embedding_map.widget, scatter.widget, phases.widget)
    assert viewer.subject_id in set(ids.values())
    assert viewer.subject_id in " ".join(assert_no_markup_from_the_cohort(*widgets))

    # a payload subject from the dropdown, and a payload condition filter
    viewer.condition.value = viewer.condition.options[2][1]
    viewer.subject.value = viewer.subject.options[-1]
    assert viewer.subject_id in shown_text(viewer.readout.value)
    viewer.condition.value = ""
    escaped = next(subject for subject in ids.values() if subject.startswith(ENTITY_ID))
    viewer.show(escaped)
    assert shown_text(viewer.readout.value).startswith(escaped + ":")  # shown as spelled, not decoded
    # a typed unknown id: the error quotes it (and the cache folder, a payload too)
    typed = "<script>alert('typed')</script>"
    viewer.search.value = typed
    assert repr(typed) in shown_text(viewer.status.value) and data.cache.folder.name in shown_text(viewer.status.value)
    retrieval.search.value = typed + " "
    phases.search.value = typed + "  "
    assert repr(typed + " ") in shown_text(retrieval.status.value)
    assert repr(typed + "  ") in shown_text(phases.summary.value)
    assert_no_markup_from_the_cohort(*widgets)

    # hover and click the map: its subject in the viewer and as the retrieval query
    gallery = set(data.subject_ids[retrieval.gallery_rows])
    row = next(r for r, subject in enumerate(embedding_map.point_ids) if subject in gallery and "<" in subject)
    _hover(embedding_map, row)
    assert embedding_map.point_ids[row] in shown_text(embedding_map.hover.value)
    embedding_map.open_point(row)
    assert viewer.subject_id == retrieval.query.value == embedding_map.point_ids[row]
    listed = " ".join(shown_text(retrieval.table.value).split())  # as the browser lays out whitespace
    assert all(" ".join(subject.split()) in listed for subject in retrieval.result.subject_id)
    embedding_map.colour_by.value = "condition"
    _hover(embedding_map, row)
    assert condition_name(data.index.condition.iloc[embedding_map.rows[row]]) in shown_text(embedding_map.hover.value)
    # a click on a subject outside the gallery: retrieval says why, naming it
    outside = next(r for r, subject in enumerate(embedding_map.point_ids) if subject not in gallery)
    embedding_map.open_point(outside)
    assert repr(embedding_map.point_ids[outside]) in shown_text(retrieval.status.value)
    assert_no_markup_from_the_cohort(*widgets)

    # the scatter's hover and click, the phase browser's summary and its error naming the runs folder
    _hover(scatter, 0)
    assert scatter.point_ids[0] in shown_text(scatter.hover.value)
    scatter.open_point(1)
    assert viewer.subject_id == scatter.point_ids[1]
    phases.subject.value = phases.subject.options[1]
    assert phases.subject.value in shown_text(phases.summary.value)
    monkeypatch.setattr(data, "seeds", lambda method: [0, 7] if method == "ptacl" else [0])  # a seed global lacks
    monkeypatch.setattr(phases, "matrix", lambda method, seed, subject: np.eye(3))
    phases.methods.value = ("ptacl",)
    phases.methods.value = ("global", "ptacl")
    phases.seed.value = 7
    assert str(data.runs_dir) in shown_text(phases.summary.value)
    assert_no_markup_from_the_cohort(*widgets)


def test_the_shared_helpers_escape_what_they_are_given():
    for payload in (*SCRIPT_PAYLOADS, ENTITY_ID):
        for fragment in (error_html(ValueError(f"unknown subject id {payload!r}")), table([(payload, 1.0)], (payload, "x")),
                         html_text(payload)):
            markup = _Markup(fragment)
            assert markup.tags <= SAFE_TAGS and markup.attributes <= SAFE_ATTRIBUTES and payload not in fragment
            assert payload in "".join(markup.text)  # shown exactly as the cohort spells it
    assert html_text("a < b & 'c'") == "a &lt; b &amp; 'c'"


def test_mathtext_ids_and_conditions_are_drawn_as_written(hostile):
    data, _ = hostile
    viewer = explore.PatientViewer(data, TEX_ID)
    viewer.ecg_figure.canvas.draw()  # raised ValueError (mathtext) before
    assert viewer.ecg_axis.get_title().startswith(TEX_ID + " · ")
    retrieval = explore.RetrievalExplorer(data, TEX_ID)
    retrieval.figure.canvas.draw()
    assert retrieval.figure.axes[1].get_title().startswith(f"query {TEX_ID}")
    embedding_map = explore.EmbeddingMap(data, viewer)
    embedding_map.colour_by.value = "condition"
    embedding_map.figure.canvas.draw()  # legend labels: condition names, the first one mathtext
    legend = {t.get_text() for t in embedding_map.axis.get_legend().get_texts()}
    assert any(label.startswith(TEX_ID) for label in legend)
    scatter = explore.PredictionScatter(data, viewer)
    scatter.figure.canvas.draw()
    phases = explore.PhaseSimilarityBrowser(data, TEX_ID)
    phases.figure.canvas.draw()
    assert phases.subject.value == TEX_ID


def test_an_id_with_surrounding_spaces_opens_as_stored_or_typed_without_them(hostile):
    data, _ = hostile
    assert data.resolve(SPACED_ID) == data.resolve("0007") == data.resolve(" 0007") == SPACED_ID
    assert data.cine(SPACED_ID)["source"] == "cohort" and data.cine("0007")["masks"] is not None
    viewer = explore.PatientViewer(data)
    viewer.search.value = SPACED_ID  # typed exactly
    assert viewer.subject_id == viewer.subject.value == SPACED_ID and viewer.status.value == ""
    viewer.show(viewer.subject.options[-1])
    viewer.search.value = "0007"  # typed without its spaces
    assert viewer.subject_id == SPACED_ID and SPACED_ID in shown_text(viewer.readout.value)
    retrieval = explore.RetrievalExplorer(data)
    retrieval.search.value = "0007"
    assert retrieval.query.value == SPACED_ID and retrieval.status.value == ""
    phases = explore.PhaseSimilarityBrowser(data)
    phases.search.value = "0007 "
    assert phases.subject.value == SPACED_ID
    with pytest.raises(ValueError, match="unknown subject id '0008'"):
        data.resolve("0008")


def test_a_stripped_id_matching_two_stored_ids_is_ambiguous_and_exact_ids_win(tmp_path):
    index = pd.DataFrame({"subject_id": ["A1", " A1", "B2 ", " B2", "C3"], "split": "test"})
    data = explore.ExploreData(SimpleNamespace(index=index, folder=tmp_path), None, [], tmp_path)
    assert [data.position(i) for i in ("A1", " A1", "B2 ", " B2", "C3", " C3 ")] == [0, 1, 2, 3, 4, 4]
    with pytest.raises(ValueError, match=r"'A1 ' is ambiguous .*\['A1', ' A1'\]"):
        data.position("A1 ")
    with pytest.raises(ValueError, match=r"'B2' is ambiguous"):
        data.resolve("B2")
    assert np.array_equal(data.subject_ids, index.subject_id.to_numpy())


def test_an_unreadable_file_of_a_typed_id_is_shown_escaped_and_keeps_the_subject(hostile, monkeypatch):
    data, _ = hostile
    viewer = explore.PatientViewer(data)
    shown, target = viewer.subject_id, viewer.subject.options[-1]
    missing = "cmr/<img src=x onerror=alert(4)>_sa.nii.gz"

    def unreadable(subject_id):
        raise FileNotFoundError(f"{missing}: no such file")

    monkeypatch.setattr(data, "cine", unreadable)
    viewer.search.value = target
    assert viewer.subject_id == shown and shown_text(viewer.status.value) == f"{missing}: no such file"
    assert_no_markup_from_the_cohort(viewer.widget)
