"""Notebook 06's widgets (ptacl_core.explore): the computations against brute-force references, the widgets driven
from Python as a browser would drive them, the browser's share of a 30,000-subject cohort, and the notebook
headless."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from ptacl_core import explore, paths
from ptacl_core.phenotypes import EVALUATED, PHENOTYPES, axis_label
from ptacl_core.plotting.style import CONDITION_COLOURS, condition_name

# ipympl's own toolbar passes traitlets an argument it deprecates: theirs, harmless
pytestmark = pytest.mark.filterwarnings("ignore:Passing unrecognized arguments to super\\(Toolbar\\):DeprecationWarning")

# --- pure computations against brute force ----------------------------------------------------------------------


def _index(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"subject_id": [f"S{i:04d}" for i in range(n)],
                         "split": rng.choice(["train", "val", "test"], n),
                         "condition": rng.choice(["normal", "lv_hypertrophy", "conduction_delay"], n)})


def test_select_subjects_matches_a_loop_over_rows():
    index = _index()
    for condition in (None, "normal", "conduction_delay"):
        for split in (None, "train", "test"):
            for text in ("", "s001", "0003"):
                expected = [row.subject_id for row in index.itertuples()
                            if (condition is None or row.condition == condition) and (split is None or row.split == split)
                            and text.lower() in row.subject_id.lower()]
                assert explore.select_subjects(index, condition, split, text) == expected
    assert len(explore.select_subjects(index, limit=7)) == 7
    with pytest.raises(ValueError, match="no condition column"):
        explore.select_subjects(index.drop(columns="condition"), condition="normal")


def test_worst_predicted_matches_a_sort_by_hand():
    rng = np.random.default_rng(1)
    true, predicted = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    true[3, :] = np.nan  # never listed
    true[5, 1] = np.nan  # scored on its known phenotypes
    scale = np.array([1.0, 2.0, 0.5, 3.0])
    errors = []
    for row in range(30):
        values = [abs(predicted[row, j] - true[row, j]) / scale[j] for j in range(4) if np.isfinite(true[row, j])]
        if values:
            errors.append((-sum(values) / len(values), row))
    expected = [row for _, row in sorted(errors)][:10]
    assert explore.worst_predicted(true, predicted, scale, n=10).tolist() == expected
    one = explore.worst_predicted(true[:, 0], predicted[:, 0], n=30)
    assert 3 not in one and len(one) == 29
    assert one[0] == int(np.nanargmax(np.abs(predicted[:, 0] - true[:, 0])))
    with pytest.raises(ValueError, match="differ in shape"):
        explore.worst_predicted(true, predicted[:, :2])


def test_centred_cosine_matches_a_loop_and_spreads_a_shared_component():
    rng = np.random.default_rng(2)
    shared = 50.0 * rng.normal(size=16)
    queries, gallery = shared + rng.normal(size=(3, 16)), shared + rng.normal(size=(20, 16))
    mean_q, mean_g = queries.mean(0) + 0.1, gallery.mean(0)
    scores = explore.centred_cosine(queries, gallery, mean_q, mean_g)
    for i in range(3):
        for j in range(20):
            a, b = queries[i] - mean_q, gallery[j] - mean_g
            assert scores[i, j] == pytest.approx(float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)), abs=1e-12)
    assert explore.centred_cosine(queries[0], gallery, mean_q, mean_g) == pytest.approx(scores[0])
    raw = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ (gallery / np.linalg.norm(gallery, axis=1, keepdims=True)).T
    assert np.ptp(raw[0]) < 0.05 < 0.5 < np.ptp(scores[0])  # raw cosines all near 1; centred ones spread


def test_phase_similarity_matrix_matches_a_loop_with_absent_bins():
    rng = np.random.default_rng(3)
    u_ecg, u_cmr = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    mask = np.array([True, True, False, True, True, False])
    matrix = explore.phase_similarity_matrix(u_ecg, u_cmr, mask)
    for k in range(6):
        for j in range(6):
            if mask[k] and mask[j]:
                expected = u_ecg[k] @ u_cmr[j] / np.linalg.norm(u_ecg[k]) / np.linalg.norm(u_cmr[j])
                assert matrix[k, j] == pytest.approx(expected, abs=1e-12)
            else:
                assert np.isnan(matrix[k, j])


def test_phase_cursor_and_bins_follow_the_kits_phase_definition():
    from ptacl_core.model.phases import ecg_token_phases

    rpeaks = np.array([40, 260, 470, 700, 905])
    for phase in (0.0, 0.25, 0.6, 0.95):
        samples = explore.phase_samples(rpeaks, phase)
        assert samples.tolist() == pytest.approx([rpeaks[j] + phase * (rpeaks[j + 1] - rpeaks[j]) for j in range(4)])
        # the kit's own phase of those instants is the phase asked for
        phases, valid = ecg_token_phases(torch.tensor(samples / 500.0, dtype=torch.float64), torch.tensor(rpeaks[None]), 500.0)
        assert valid.all() and phases[0].numpy() == pytest.approx(phase, abs=1e-9)
    edges = explore.phase_bin_edges(rpeaks, 7)
    assert edges.shape == (4, 8) and edges[:, 0].tolist() == rpeaks[:-1].tolist()
    assert edges[:, -1] == pytest.approx(rpeaks[1:])
    assert explore.phase_bin_edges(np.array([10]), 7).shape == (0, 8)


def test_nearest_point_matches_a_loop():
    rng = np.random.default_rng(4)
    points = rng.uniform(0, 100, size=(500, 2))
    points[7] = np.nan
    for x, y in rng.uniform(0, 100, size=(20, 2)):
        distances = [np.hypot(px - x, py - y) if np.isfinite(px) else np.inf for px, py in points]
        assert explore.nearest_point(points, x, y) == int(np.argmin(distances))
        within = explore.nearest_point(points, x, y, max_distance=1.0)
        assert within == (int(np.argmin(distances)) if min(distances) <= 1.0 else None)
    assert explore.nearest_point(np.zeros((0, 2)), 1, 1) is None


def test_cine_frames_rgb_matches_a_loop_over_pixels():
    rng = np.random.default_rng(9)
    image = rng.uniform(-10, 110, size=(3, 5, 4))
    image[0, 0, 0] = np.nan
    masks = rng.integers(0, 4, size=(3, 5, 4))
    colours = {1: (1.0, 0.0, 0.0), 3: (0.0, 0.5, 1.0)}
    frames = explore.compute.cine_frames_rgb(image, masks, (0.0, 100.0), colours, alpha=0.4)
    assert frames.shape == (3, 5, 4, 3) and frames.dtype == np.uint8
    for t, y, x in np.ndindex(*image.shape):
        value = image[t, y, x]
        grey = 0.0 if not np.isfinite(value) else min(max(value / 100.0, 0.0), 1.0)
        expected = [grey] * 3
        if masks[t, y, x] in colours:
            expected = [0.6 * grey + 0.4 * c for c in colours[masks[t, y, x]]]
        assert frames[t, y, x].tolist() == [round(255 * v) for v in expected]
    assert np.array_equal(explore.compute.cine_frames_rgb(image, None, (0.0, 100.0), colours)[..., 0],
                          explore.compute.cine_frames_rgb(image, None, (0.0, 100.0), colours)[..., 2])


def test_a_draw_on_another_kernel_thread_waits_for_the_figure_to_be_changed():
    """Issue 21's blank panel: ipympl's draw, on another kernel thread, ran while a widget was inside
    ``tight_layout`` (drawing methods swapped for no-ops) and sent an empty frame. Each draw now holds the
    figure's lock, which a widget holds while it changes the figure."""
    import threading
    import time

    from ptacl_core.explore.controls import canvas, locked

    figure, widget = canvas(3.0, 2.0)
    figure.add_subplot().plot([0, 1], [0, 1])
    renderer = widget.get_renderer()
    with renderer._draw_disabled():  # what tight_layout does: a draw now draws nothing
        widget.draw()
    assert np.asarray(renderer.buffer_rgba())[..., 3].max() == 0  # the empty frame the browser received

    with locked(figure), renderer._draw_disabled():  # a widget changing its figure
        drawing = threading.Thread(target=widget.draw)  # ipympl answering the browser, on another thread
        drawing.start()
        time.sleep(0.3)
        assert drawing.is_alive()  # waits for the change
    drawing.join(10)
    assert not drawing.is_alive() and np.asarray(widget.get_renderer().buffer_rgba())[..., 3].min() == 255


def test_probe_predictions_equal_notebook_03s_probe_on_the_test_split():
    from ptacl_core.evaluation.probing import ProbeConfig, probe_methods

    rng = np.random.default_rng(5)
    n = 90
    x = rng.normal(size=(n, 6))
    y = np.stack([x @ rng.normal(size=6) + rng.normal(size=n) for _ in range(3)], 1)
    y[::7, 1] = np.nan
    splits = np.array(["train"] * 60 + ["val"] * 10 + ["test"] * 20)
    names = ("LVEF_pct", "LVEDV_mL", "LVM_g")
    for fraction in (1.0, 0.1):
        ours = explore.probe_predictions(x, y, splits, fraction, seed=3)
        theirs = probe_methods({("m", 3): x}, y, splits, np.array([f"S{i}" for i in range(n)]),
                               ProbeConfig(fractions=(fraction,), n_bootstrap=10, phenotypes=names), names=names).predictions
        for column, name in enumerate(names):
            rows = theirs[theirs.phenotype == name]
            positions = rows.subject_id.str[1:].astype(int).to_numpy()
            assert ours[positions, column] == pytest.approx(rows.predicted.to_numpy(), rel=1e-9, abs=1e-9)
    with pytest.raises(ValueError, match="training subjects"):
        explore.probe_predictions(x, y, np.full(n, "test"))


def test_map_coordinates_subsets_tsne_and_refuses_unknown_methods():
    x = np.random.default_rng(6).normal(size=(120, 8))
    rows, coordinates = explore.map_coordinates(x, "pca")
    assert rows.tolist() == list(range(120)) and coordinates.shape == (120, 2)
    rows, coordinates = explore.map_coordinates(x, "tsne", max_points=30)
    assert len(rows) == 30 == len(set(rows.tolist())) and coordinates.shape == (30, 2)
    with pytest.raises(ValueError, match="umap"):
        explore.map_coordinates(x, "umap")


# --- the widgets on the test cohort -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data(cohort, tiny_cache, trained_runs, tmp_path_factory):
    return explore.ExploreData.load(cohort, tiny_cache, "tiny", trained_runs, tmp_path_factory.mktemp("embeddings"))


def test_unknown_subject_and_missing_run_are_named(data):
    with pytest.raises(ValueError, match="unknown subject id 'NOBODY'"):
        data.position("NOBODY")
    with pytest.raises(FileNotFoundError, match=r"no finished run of 'ptacl_cross' seed 4 .*ptacl seed 0"):
        data.run("ptacl_cross", 4)
    with pytest.raises(ValueError, match="space must be"):
        data.embedding("ptacl", 0, "cmr")


def _decoded(image_widget) -> np.ndarray:
    """The pixels of an ``ipywidgets.Image(format="url")`` holding a PNG data URL, as the browser decodes them."""
    import base64
    import io

    from PIL import Image

    header, encoded = bytes(image_widget.value).split(b",", 1)
    assert header == b"data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB"))


def test_patient_viewer_follows_the_dropdown_and_the_frame_slider(data):
    viewer = explore.PatientViewer(data)
    first = viewer.subject_id
    assert data.splits[data.position(first)] == "test"  # the first predictions a newcomer sees are held out
    second = next(s for s in viewer.subject.options if s != first)
    ecg_before, readout_before = viewer.lead_lines[1].get_ydata().copy(), viewer.readout.value
    viewer.subject.value = second  # what the browser's dropdown does
    assert viewer.subject_id == second and second in viewer.readout.value and first not in viewer.readout.value
    assert not np.array_equal(viewer.lead_lines[1].get_ydata(), ecg_before) and viewer.readout.value != readout_before
    ecg, rpeaks = data.ecg(second)
    assert viewer.lead_lines[1].get_ydata() == pytest.approx(ecg[1] - 3.0)
    # the readout's numbers are the probe's: truth and prediction of LVEF for this subject
    position = data.position(second)
    lvef = EVALUATED.index("LVEF_pct")
    assert f"{data.phenotypes()[position, lvef]:.1f}" in viewer.readout.value
    assert f"{data.predictions('ptacl', 0)[position, lvef]:.1f}" in viewer.readout.value
    # every frame rendered once: the cine with its masks, the volume curve with that frame's cursor, the label;
    # the browser shows frame f of each (Stacks linked to the slider there)
    cine = data.cine(second)
    n = len(cine["image"])
    assert len(viewer.cine_stack.children) == len(viewer.volume_stack.children) == len(viewer.label_stack.children) == n
    links = {(link.source[0], link.target[0], link.target[1]) for link in viewer.stack_links}
    assert links == {(viewer.frame, stack, "selected_index")
                     for stack in (viewer.cine_stack, viewer.volume_stack, viewer.label_stack)}
    frames = [_decoded(image) for image in viewer.cine_stack.children]
    assert frames[9].shape[:2] == cine["image"].shape[1:]  # sent at the cine's own resolution
    outside = cine["masks"][9] == 0  # grey there: the frame shown is frame 9 of the cine
    similarity = [np.corrcoef(frames[9][..., 0][outside], cine["image"][f][outside])[0, 1] for f in range(n)]
    assert int(np.argmax(similarity)) == 9 and similarity[9] > 0.99
    inside = cine["masks"][9] == 1  # the LV cavity tinted with its colour
    assert np.abs(frames[9][inside].astype(int)[:, 0] - frames[9][inside].astype(int)[:, 2]).mean() > 10
    assert viewer.cursor_times()[9] == pytest.approx(9 * cine["frame_interval_ms"])
    volumes = [_decoded(image) for image in viewer.volume_stack.children[8:10]]
    assert not np.array_equal(*volumes)  # the cursor moved
    sent = sum(len(bytes(image.value)) for stack in (viewer.cine_stack, viewer.volume_stack) for image in stack.children)
    assert sent < 1_500_000, f"{sent} bytes of frames for one subject"
    viewer.frame.value = 9
    assert viewer.frame_label.value.startswith(f"frame 10 of {n} · phase {9 / n:.2f} · bin ")
    cursors = [segment[0, 0] for segment in viewer.ecg_cursors.get_segments()]
    assert cursors == pytest.approx(explore.phase_samples(rpeaks, 9 / n) / data.fs)
    assert cine["source"] == "cohort" and cine["masks"] is not None and np.ptp(cine["lv_ml"]) > 0
    viewer.search.value = "NOBODY"  # typed and submitted
    assert "unknown subject id 'NOBODY'" in viewer.status.value and viewer.subject_id == second


def test_frame_labels_and_phase_bins_count_from_one_and_units_are_written_once(data):
    viewer = explore.PatientViewer(data)
    n, k = len(viewer._cine["image"]), viewer._num_bins
    labels = [label.value for label in viewer.label_stack.children]
    assert labels[0].startswith(f"frame 1 of {n} · phase 0.00 · bin 1/{k} · 0 ms after R")
    assert labels[-1].startswith(f"frame {n} of {n} ") and f"bin {k}/{k}" in labels[-1]
    for frame, text in enumerate(labels):
        assert f"bin {int(frame / n * k) + 1}/{k}" in text  # the bin the ECG highlights, counted from 1
    # the readout: a phenotype's short name, its unit in the unit column, never both in the name
    assert "<td style='padding:0 6px;text-align:right'>LVEDV</td><td style='padding:0 6px;text-align:right'>mL</td>" \
        in viewer.readout.value
    assert "LVEDV mL" not in viewer.readout.value and "LVEDV_mL" not in viewer.readout.value
    browser = explore.PhaseSimilarityBrowser(data)
    axis = next(a for a in browser.figure.axes if a.images)
    browser.figure.canvas.draw()
    ticks = [t.get_text() for t in axis.get_xticklabels()]
    assert ticks[0] == "1" and axis.get_xlabel() == "CMR phase bin"
    assert "bin 1 starts at the R peak" in browser.summary.value


def test_stop_keeps_the_frame_and_play_runs_in_the_browser(data):
    viewer = explore.PatientViewer(data)
    assert not viewer.frame.readout  # the slider's 0-based number is not shown: the label counts from 1
    assert viewer.play.layout.display == "none" and viewer.play.repeat  # ipywidgets' Play: its timer, hidden
    links = {(link.source[0], link.source[1], link.target[0], link.target[1])
             for link in viewer.play_links}
    assert (viewer.playing, "value", viewer.play, "playing") in links  # play / stop: a toggle, no rewind
    assert (viewer.play, "value", viewer.frame, "value") in links
    assert (viewer.repeat, "value", viewer.play, "repeat") in links
    assert viewer.play.interval <= 100  # at least 10 frames per second


def test_worst_predicted_listing_is_the_test_split_ranked(data):
    viewer = explore.PatientViewer(data)
    viewer.worst_by.value = "LVEF_pct"
    viewer.listing.value = "worst"
    test = np.flatnonzero(data.splits == "test")
    column = EVALUATED.index("LVEF_pct")
    errors = np.abs(data.predictions("ptacl", 0)[test, column] - data.phenotypes()[test, column])
    listed = list(viewer.subject.options)
    assert listed[0] == data.subject_ids[test[np.nanargmax(errors)]]
    assert set(listed) <= set(data.subject_ids[test]) and viewer.subject_id == listed[0]


def test_retrieval_explorer_centred_scores_differ_between_neighbours(data):
    retrieval = explore.RetrievalExplorer(data, k=5)
    for direction in ("ECG→ECG", "ECG→CMR"):
        retrieval.direction.value = direction
        for query in retrieval.query.options[:3]:
            retrieval.query.value = query
            result = retrieval.result
            assert query not in set(result.subject_id) and len(result) == 5
            assert np.all(np.diff(result.cosine.to_numpy()) <= 1e-6)  # ranked as notebook 04 ranks (float32)
            assert np.ptp(result.centred) > 0.05 and np.ptp(result.centred) > 5 * np.ptp(result.cosine)
            assert f"{result.centred.iloc[0]:+.2f}" in " ".join(t.get_text() for a in retrieval.figure.axes for t in [a.title])
    with pytest.raises(ValueError, match="split"):
        retrieval.set_query(data.subject_ids[data.splits == "train"][0])


def test_embedding_map_hover_and_click_open_the_patient(data):
    viewer = explore.PatientViewer(data)
    embedding_map = explore.EmbeddingMap(data, viewer)
    assert len(embedding_map.points) == len(data.index)
    embedding_map.figure.canvas.draw()  # the transform a browser's pointer position is read through
    target = 11
    x, y = embedding_map.axis.transData.transform(embedding_map.points[target])
    found = embedding_map._point_at(x + 1, y - 1)
    assert embedding_map.point_ids[found] == embedding_map.point_ids[target] or np.allclose(
        embedding_map.points[found], embedding_map.points[target], atol=1e-3)
    embedding_map._on_move(SimpleNamespace(inaxes=embedding_map.axis, x=x, y=y))
    assert embedding_map.point_ids[found] in embedding_map.hover.value
    embedding_map._on_click(SimpleNamespace(inaxes=embedding_map.axis, x=x, y=y))
    assert viewer.subject_id == embedding_map.point_ids[found]
    embedding_map.colour_by.value = "condition"
    legend = {t.get_text() for t in embedding_map.axis.get_legend().get_texts()}
    assert legend <= {condition_name(c) for c in CONDITION_COLOURS} and "LV hypertrophy" in legend
    assert (embedding_map.axis.get_xlabel(), embedding_map.axis.get_ylabel()) == ("PC 1", "PC 2")


def test_prediction_scatter_shows_the_probe_on_the_test_split(data):
    viewer = explore.PatientViewer(data)
    scatter = explore.PredictionScatter(data, viewer)
    test = np.flatnonzero(data.splits == "test")
    column = EVALUATED.index("LVEF_pct")
    assert scatter.points[:, 1] == pytest.approx(data.predictions("ptacl", 0)[test, column])
    before = scatter.points.copy()
    scatter.fraction.value = 0.1
    assert not np.allclose(before[:, 1], scatter.points[:, 1])  # another probe, same encoder
    scatter.open_point(2)
    assert viewer.subject_id == scatter.point_ids[2]


def test_phase_similarity_browser_equals_the_batched_diagnostic(data):
    from ptacl_core.evaluation.diagnostics import phase_similarity
    from ptacl_core.preprocessing.dataset import CacheDataset

    browser = explore.PhaseSimilarityBrowser(data)
    assert set(browser.matrices) == {"global", "ptacl"}
    subject = browser.subject.value
    batch = CacheDataset(data.cache, None).batch([data.position(subject)])
    similarity, mask = phase_similarity(data.model("ptacl", 0), batch, data.fs, data.num_bins("ptacl", 0))
    valid = mask[0][:, None] & mask[0][None, :]
    assert browser.matrices["ptacl"][valid] == pytest.approx(similarity[0][valid], abs=1e-5)
    assert np.isnan(browser.matrices["ptacl"][~valid]).all()
    assert list(browser.seed.options) == sorted(set(data.seeds("global")) | set(data.seeds("ptacl")))  # what exists


def test_phase_similarity_seeds_are_the_seeds_of_the_chosen_methods(data, monkeypatch):
    browser = explore.PhaseSimilarityBrowser(data)
    assert list(browser.seed.options) == [0]
    monkeypatch.setattr(data, "seeds", lambda method: [0, 7] if method == "ptacl" else [0])  # a second ptacl run
    monkeypatch.setattr(browser, "matrix", lambda method, seed, subject: np.eye(3))
    browser.methods.value = ("ptacl",)
    assert list(browser.seed.options) == [0, 7]
    browser.methods.value = ("global", "ptacl")
    browser.seed.value = 7
    assert set(browser.matrices) == {"ptacl"}
    assert browser.summary.value.count("no run of seed 7") == 1 and "for global" in browser.summary.value
    assert browser.summary.value.count("ptacl") == 1  # the runs are not listed once per method


# --- a 30,000-subject cohort: rows read on demand, small browser state ------------------------------------------

class _RowReads:
    """A memory-mapped array that records which rows are read (a whole-array read would show as a slice)."""

    def __init__(self, array):
        self.array, self.reads = array, []

    def __getitem__(self, key):
        self.reads.append(key)
        return self.array[key]

    def __len__(self):
        return len(self.array)

    @property
    def shape(self):
        return self.array.shape


def test_a_30000_subject_cohort_reads_rows_on_demand_and_sends_the_browser_little(tmp_path):
    import ipywidgets
    from ipympl.backend_nbagg import Canvas

    n = 30_000
    rng = np.random.default_rng(0)
    index = pd.DataFrame({"subject_id": [f"P{i:05d}" for i in range(n)], "row": np.arange(n),
                          "split": rng.choice(["train", "val", "test"], n, p=[0.7, 0.15, 0.15]),
                          "condition": rng.choice(["normal", "lv_hypertrophy"], n),
                          "rpeaks": " ".join(str(v) for v in range(20, 250, 60)), "frame_interval_ms": 40.0})
    phenotypes = rng.normal(60, 8, size=(n, len(PHENOTYPES)))
    for column, name in enumerate(PHENOTYPES):
        index[name] = phenotypes[:, column]
    ecg = _RowReads(np.lib.format.open_memmap(tmp_path / "ecg.npy", "w+", np.float16, (n, 12, 250)))
    cmr = _RowReads(np.lib.format.open_memmap(tmp_path / "cmr.npy", "w+", np.float16, (n, 6, 8, 8)))
    cache = SimpleNamespace(index=index, ecg=ecg, cmr=cmr, folder=tmp_path, config=SimpleNamespace(ecg=SimpleNamespace(fs=25.0)),
                            rpeaks=lambda p: np.array([20, 80, 140, 200]),
                            phenotypes=lambda names=PHENOTYPES: np.stack([index[c].to_numpy(float) if c in index else np.full(n, np.nan)
                                                                          for c in names], 1))
    data = explore.ExploreData(cache, None, [], tmp_path / "store", runs_dir=tmp_path / "runs")
    viewer = explore.PatientViewer(data)
    viewer.subject.value = viewer.subject.options[5]
    viewer.condition.value = "lv_hypertrophy"
    viewer.frame.value = 3
    # one row per subject shown (the condition filter showed its first match): never a slice of the cohort
    assert all(isinstance(key, int) for key in ecg.reads + cmr.reads) and len(ecg.reads) <= 4
    assert len(viewer.subject.options) == explore.MAX_OPTIONS
    # everything the browser holds for the viewer: the synced state of every widget in it (figures travel as images)
    def tree(widget):
        yield widget
        for child in getattr(widget, "children", ()):
            yield from tree(child)

    widgets = list(tree(viewer.widget))
    assert any(isinstance(w, Canvas) for w in widgets) and all(isinstance(w, ipywidgets.Widget) for w in widgets)
    size = len(json.dumps([w.get_state() for w in widgets], default=str))
    assert size < 100_000, f"{size} bytes of widget state"
    frames = sum(len(bytes(w.value)) for w in widgets if isinstance(w, ipywidgets.Image))  # the cine's frames
    assert frames < 100_000, f"{frames} bytes of frames"
    assert "no trained run" in viewer.readout.value
    with pytest.raises(FileNotFoundError, match="needs trained encoders"):
        explore.RetrievalExplorer(data)

    # the retrieval explorer on the same cohort, with a fake run's embeddings: any test subject is a query by id
    class OneRun(explore.ExploreData):
        def embedding(self, method, seed, space="ecg"):
            return fake

    fake = rng.normal(size=(n, 16)).astype(np.float32)
    index["ed_frame"] = 2
    ecg.reads.clear()
    cmr.reads.clear()
    data = OneRun(cache, None, [SimpleNamespace(method="ptacl", seed=0)], tmp_path / "store", runs_dir=tmp_path)
    retrieval = explore.RetrievalExplorer(data, k=3)
    assert len(retrieval.query.options) == explore.MAX_OPTIONS < len(retrieval.gallery_rows)
    late = data.subject_ids[retrieval.gallery_rows[-1]]  # far beyond the listed ones
    assert late not in retrieval.query.options
    retrieval.search.value = late
    assert retrieval.query.value == late and len(retrieval.query.options) == explore.MAX_OPTIONS
    assert list(retrieval.result.subject_id) and late not in set(retrieval.result.subject_id)
    assert all(isinstance(key, int) for key in ecg.reads + cmr.reads) and len(cmr.reads) <= 2 * 4  # query + 3
    size = len(json.dumps([w.get_state() for w in tree(retrieval.widget)], default=str))
    assert size < 100_000, f"{size} bytes of widget state"


# --- notebook 06 --------------------------------------------------------------------------------------------------

NOTEBOOK = paths.notebooks_dir() / "06_explore.ipynb"


def test_committed_notebook_06_is_clean_and_not_part_of_the_default_run():
    from ptacl_core.tools.runner import list_notebooks

    nb = json.loads(NOTEBOOK.read_text())
    code = [cell for cell in nb["cells"] if cell["cell_type"] == "code"]
    assert all(not cell.get("outputs") and cell.get("execution_count") is None for cell in code)
    parameters = [cell for cell in code if "parameters" in cell.get("metadata", {}).get("tags", [])]
    assert parameters and "fast" in "".join(parameters[0]["source"])
    assert NOTEBOOK not in list_notebooks()
    assert list_notebooks(only=["06"]) == [NOTEBOOK]


@pytest.mark.slow
def test_notebook_06_runs_headless(cohort, tiny_cache, trained_runs, tmp_path):
    from ptacl_core.tools.runner import run_notebooks

    parameters = {"cohort_dir": str(cohort), "cache_dir": str(tiny_cache), "runs_dir": str(trained_runs),
                  "embeddings_dir": str(tmp_path / "embeddings")}
    runs = run_notebooks([NOTEBOOK], tmp_path / "out", parameters, progress_bar=False, log=lambda *a, **k: None)
    executed = json.loads(runs[0].executed.read_text())
    outputs = [o for cell in executed["cells"] if cell["cell_type"] == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    views = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) == 5  # viewer, retrieval, map, scatter, phase similarity


# --- review fixes: every control changes what it should ----------------------------------------------------------

def test_a_method_change_updates_every_widget_even_when_the_seed_stays_the_same(data):
    from ptacl_core.evaluation.retrieval import topk

    assert data.seeds("ptacl") == data.seeds("global") == [0]  # the case ipywidgets sends no seed change for
    retrieval = explore.RetrievalExplorer(data, k=5)
    embedding_map, scatter = explore.EmbeddingMap(data), explore.PredictionScatter(data)
    viewer = explore.PatientViewer(data)
    before = (list(retrieval.result.subject_id), embedding_map.points.copy(), scatter.points.copy(), viewer.readout.value)
    for widget in (retrieval, embedding_map, scatter, viewer):
        widget.method.value = "global"
    rows = retrieval.gallery_rows
    x = data.embedding("global", 0)[rows]
    q = int(np.flatnonzero(data.subject_ids[rows] == retrieval.query.value)[0])
    expected, _ = topk(x[q:q + 1], x, 5, exclude=np.array([q]))
    assert list(retrieval.result.subject_id) == data.subject_ids[rows[expected[0]]].tolist()
    assert list(retrieval.result.subject_id) != before[0] and "global seed 0" in retrieval.figure._suptitle.get_text()
    assert embedding_map.axis.get_title().startswith("global seed 0") and not np.allclose(embedding_map.points, before[1])
    test = np.flatnonzero(data.splits == "test")
    column = EVALUATED.index("LVEF_pct")
    assert scatter.points[:, 1] == pytest.approx(data.predictions("global", 0)[test, column])
    assert scatter.axis.get_title().startswith("global seed 0")
    assert "Global only" in viewer.readout.value or "global" in viewer.readout.value.lower()
    assert viewer.readout.value != before[3]


def test_run_picker_calls_back_once_per_change_and_keeps_the_seed(data):
    calls = []
    picker = explore.RunPicker(data, lambda: calls.append(picker.value))
    assert picker.value == ("ptacl", 0) and calls == []
    picker.method.value = "global"
    assert calls == [("global", 0)]
    picker.method.value = "ptacl"
    assert calls == [("global", 0), ("ptacl", 0)]


def test_patient_viewer_worst_list_and_phase_bins_follow_the_run(data, monkeypatch):
    viewer = explore.PatientViewer(data)
    viewer.worst_by.value = "LVEF_pct"
    viewer.listing.value = "worst"
    test = np.flatnonzero(data.splits == "test")
    column = EVALUATED.index("LVEF_pct")

    def worst(method):
        errors = np.abs(data.predictions(method, 0)[test, column] - data.phenotypes()[test, column])
        order = np.argsort(-np.where(np.isfinite(errors), errors, -np.inf), kind="stable")
        return data.subject_ids[test[order[:np.isfinite(errors).sum()]]].tolist()

    assert list(viewer.subject.options) == worst("ptacl")
    real_bins = data.num_bins
    monkeypatch.setattr(data, "num_bins", lambda method, seed: 5 if method == "global" else real_bins(method, seed))
    viewer.method.value = "global"
    assert list(viewer.subject.options) == worst("global")
    beats = len(explore.phase_bin_edges(viewer._rpeaks, 5))
    assert viewer._num_bins == 5 and len(viewer.bin_patches.get_paths()) == beats * 3  # 5 bins: 3 shaded per beat
    assert "K = 5 phase bins" in viewer.ecg_axis.get_title() and "/5" in viewer.frame_label.value
    # worst predicted within a condition: the condition is filtered first, then the top n taken
    condition = data.index.condition.astype(str).to_numpy()
    viewer.condition.value = "normal"
    normal = set(data.subject_ids[test[condition[test] == "normal"]])
    listed = list(viewer.subject.options)
    assert listed and set(listed) <= normal and viewer.worst_ids(n=3) == [s for s in worst("global") if s in normal][:3]


def test_patient_viewer_split_and_condition_filters(data):
    viewer = explore.PatientViewer(data)
    splits, conditions = dict(zip(data.subject_ids, data.splits, strict=True)), dict(
        zip(data.subject_ids, data.index.condition.astype(str), strict=True))
    viewer.split.value = "train"
    assert viewer.subject.options and all(splits[s] == "train" for s in viewer.subject.options)
    viewer.condition.value = "lv_hypertrophy"
    expected = [s for s in data.subject_ids if splits[s] == "train" and conditions[s] == "lv_hypertrophy"]
    assert list(viewer.subject.options) == expected
    viewer.subject.value = expected[-1]
    assert viewer.subject_id == expected[-1] and expected[-1] in viewer.readout.value


def test_retrieval_scores_against_brute_force(data):
    from ptacl_core.evaluation.retrieval import N_RELEVANT

    retrieval = explore.RetrievalExplorer(data, k=5)
    rows = retrieval.gallery_rows
    lvef = data.cache.phenotypes(PHENOTYPES)[:, PHENOTYPES.index("LVEF_pct")]
    assert set(rows) == set(np.flatnonzero((data.splits == "test") & np.isfinite(lvef)))  # notebook 04's gallery
    assert retrieval.relevance_k.value == min(N_RELEVANT, len(rows) - 1)  # 10 on a gallery of 11 or more
    volumes = data.cache.phenotypes(PHENOTYPES)
    train = data.splits == "train"
    mean, sd = np.nanmean(volumes[train], 0), np.nanstd(volumes[train], 0)
    z = np.nan_to_num((volumes[rows] - mean) / np.where(sd > 0, sd, 1.0))
    for direction, (q_space, g_space) in {"ECG→ECG": ("ecg", "ecg"),
                                          "ECG→CMR": ("ecg_projected", "cmr_projected")}.items():
        retrieval.direction.value = direction
        retrieval.relevance_k.value = 3
        for query in retrieval.query.options[:3]:
            retrieval.query.value = query
            result = retrieval.result
            q_mean = data.embedding("ptacl", 0, q_space)[data.splits == "train"].mean(0)  # the TRAINING mean
            g_mean = data.embedding("ptacl", 0, g_space)[data.splits == "train"].mean(0)
            a = data.embedding("ptacl", 0, q_space)[data.position(query)].astype(np.float64) - q_mean
            for subject, centred in zip(result.subject_id, result.centred, strict=True):
                b = data.embedding("ptacl", 0, g_space)[data.position(subject)].astype(np.float64) - g_mean
                assert centred == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b), abs=1e-6)
            assert np.all(np.diff(result.cosine.to_numpy()) <= 1e-6)  # ranked as notebook 04 ranks (float32 scores)
            q = int(np.flatnonzero(data.subject_ids[rows] == query)[0])
            distance = [np.linalg.norm(z[j] - z[q]) if j != q else np.inf for j in range(len(rows))]
            nearest = set(data.subject_ids[rows[np.argsort(distance, kind="stable")[:3]]])
            assert result.relevant.tolist() == [s in nearest for s in result.subject_id]
    retrieval.rank_by.value = "centred"
    assert np.all(np.diff(retrieval.result.centred.to_numpy()) <= 1e-6)


def test_retrieval_query_by_id_and_thumbnails_from_the_cache(data, monkeypatch):
    retrieval = explore.RetrievalExplorer(data, k=3)
    monkeypatch.setattr(data, "cine", lambda *a: pytest.fail("the thumbnails read the cohort's NIfTI"))
    last = data.subject_ids[retrieval.gallery_rows[-1]]
    retrieval.search.value = last  # typed and submitted
    assert retrieval.query.value == last and retrieval.result is not None
    first = retrieval.result.subject_id.iloc[0]
    thumbnail = retrieval.figure.axes[3].images[0].get_array()  # row 2, column 2: the first neighbour's frame
    expected = np.asarray(data.cache_cine(first)[data.ed_frame(first)], np.float32)
    assert np.array_equal(np.asarray(thumbnail), expected)
    retrieval.search.value = data.subject_ids[data.splits == "train"][0]
    assert "train split" in retrieval.status.value and retrieval.query.value == last


def test_embedding_map_colour_change_reuses_the_coordinates_and_drops_the_colourbar(data):
    embedding_map = explore.EmbeddingMap(data)
    points = embedding_map.points
    assert len(embedding_map.figure.axes) == 2  # map and colourbar
    embedding_map.colour_by.value = "condition"
    assert embedding_map.points is points and len(embedding_map.figure.axes) == 1
    embedding_map.colour_by.value = "LVEDV_mL"
    assert embedding_map.points is points and len(embedding_map.figure.axes) == 2
    assert embedding_map._colourbar.ax.get_ylabel() == axis_label("LVEDV_mL") == "LVEDV (mL)"


def test_clicking_the_map_sets_the_retrieval_query(data):
    retrieval = explore.RetrievalExplorer(data, k=3)
    embedding_map = explore.EmbeddingMap(data, retrieval=retrieval)
    row = next(i for i, p in enumerate(embedding_map.rows) if p in set(retrieval.gallery_rows[5:]))
    embedding_map.open_point(row)
    assert retrieval.query.value == embedding_map.point_ids[row]


def test_prediction_scatter_follows_the_phenotype(data):
    scatter = explore.PredictionScatter(data)
    test = np.flatnonzero(data.splits == "test")
    column = EVALUATED.index("LVEDV_mL")
    scatter.phenotype.value = "LVEDV_mL"
    true, predicted = data.phenotypes()[test, column], data.predictions("ptacl", 0)[test, column]
    known = np.isfinite(true) & np.isfinite(predicted)
    assert scatter.points[:, 0] == pytest.approx(true[known]) and scatter.points[:, 1] == pytest.approx(predicted[known])
    assert scatter.axis.get_xlabel() == axis_label("LVEDV_mL", "CMR") == "CMR LVEDV (mL)"
    assert scatter.axis.get_ylabel() == "ECG-predicted LVEDV (mL)"
    legend = {t.get_text() for t in scatter.axis.get_legend().get_texts()}
    conditions = set(data.index.condition.astype(str).to_numpy()[scatter.rows])
    assert legend == {condition_name(c) for c in conditions}


def test_one_subject_batch_equals_the_datasets_and_caches_are_bounded(data):
    from ptacl_core.preprocessing.dataset import CacheDataset

    subject = data.subject_ids[3]
    ours, theirs = data.batch(subject), CacheDataset(data.cache, None).batch([3])
    assert ours["subject_id"] == theirs["subject_id"]
    for key in ("ecg", "cmr", "rpeaks", "phenotypes"):
        assert torch.equal(ours[key], theirs[key]), key
    browser = explore.PhaseSimilarityBrowser(data)
    browser.search.value = data.subject_ids[0]  # any subject by id, not only the listed test subjects
    assert browser.subject.value == data.subject_ids[0] and data.subject_ids[0] in browser.summary.value
    assert len(data._models) <= 3 and len(data._embeddings) <= 8
    built = data._dataset
    data.batch(data.subject_ids[0])
    assert built is not None and data._dataset is built  # one dataset for the session, not one per update


def _cohort_subset(source, out, n=3):
    """A cohort folder with the first ``n`` subjects of ``source`` (files linked, tables rewritten)."""
    out.mkdir()
    for name in ("ecg", "cmr"):
        (out / name).symlink_to(source / name, target_is_directory=True)
    manifest = pd.read_csv(source / "manifest.csv", dtype=str).head(n)
    phenotypes = pd.read_csv(source / "phenotypes.csv", dtype={"subject_id": str})
    manifest.to_csv(out / "manifest.csv", index=False)
    phenotypes[phenotypes.subject_id.isin(manifest.subject_id)].to_csv(out / "phenotypes.csv", index=False)
    return manifest


def test_patient_viewer_shows_a_cine_without_frame_timing(cohort, tmp_path):
    import nibabel as nib

    from ptacl_core.preprocessing.build import build_cache
    from ptacl_core.preprocessing.cache import Cache
    from ptacl_core.preprocessing.config import PreprocessConfig

    folder = tmp_path / "cohort"
    manifest = _cohort_subset(cohort, folder)
    image = nib.load(folder / manifest.cmr[0])
    untimed = nib.Nifti1Image(np.asarray(image.dataobj), image.affine)
    untimed.header.set_zooms((*image.header.get_zooms()[:3], 1.0))  # a file that stores no timing
    untimed.header.set_xyzt_units("mm", "unknown")
    (folder / "own").mkdir()
    nib.save(untimed, folder / "own" / "untimed_sa.nii.gz")
    manifest.loc[0, "cmr"] = "own/untimed_sa.nii.gz"
    manifest.to_csv(folder / "manifest.csv", index=False)
    build_cache(folder, tmp_path / "cache", PreprocessConfig.preset("tiny"), workers=1, progress=False)
    cache = Cache.open(tmp_path / "cache")
    data = explore.ExploreData(cache, folder, [], tmp_path / "store", runs_dir=tmp_path / "runs")
    untimed_id, timed_id = manifest.subject_id[0], manifest.subject_id[1]
    viewer = explore.PatientViewer(data, timed_id)
    viewer.show(untimed_id)
    cine = data.cine(untimed_id)
    index = cache.index.set_index("subject_id")
    expected = index.loc[untimed_id, "frame_interval_ms"] * cache.cmr.shape[-3] / index.loc[untimed_id, "source_frames"]
    assert cine["source"] == "cohort" and cine["interval_from_ecg"] and cine["frame_interval_ms"] == pytest.approx(expected)
    assert np.isfinite(viewer.volume_axis.get_xlim()).all() and viewer.subject_id == untimed_id
    assert "frame_interval_from_ecg" in viewer.readout.value and "interval from the ECG" in viewer.frame_label.value
    assert viewer.cursor_times()[4] == pytest.approx(4 * expected)
    # the file with timing keeps it: the cached interval scaled back to its own frames is the header's
    stated = nib.load(folder / manifest.cmr[1]).header.get_zooms()[3]
    assert data.cine(timed_id)["frame_interval_ms"] == pytest.approx(stated, rel=1e-3) and not data.cine(timed_id)[
        "interval_from_ecg"]
    # no timing anywhere (an older cache): frames on the axis, never a crash
    data.cache.index.loc[data.position(timed_id), "frame_interval_ms"] = np.nan
    viewer.show(timed_id)
    assert viewer.volume_axis.get_xlabel() == "frame (no frame timing)" and "no frame timing" in viewer.readout.value


def test_only_with_06_runs_it_after_the_notebooks_it_reads(tmp_path):
    from ptacl_core.tools.runner import TWIN_LABEL, list_notebooks, plan_steps

    steps = plan_steps(list_notebooks(only=["01", "02", "03", "06"]), tmp_path, {"cohort_dir": "/x/cohort"})
    assert [(s.notebook.name[:2], s.label) for s in steps] == [
        ("01", TWIN_LABEL), ("02", TWIN_LABEL), ("03", TWIN_LABEL), ("01", ""), ("02", ""), ("03", ""), ("06", "")]
    assert [s.notebook.name[:2] for s in plan_steps(list_notebooks(only=["00", "06"]), tmp_path, {})] == ["00", "06"]


@pytest.mark.slow
def test_notebook_06_without_runs_says_so_instead_of_failing(cohort, tiny_cache, tmp_path):
    from ptacl_core.tools.runner import run_notebooks

    (tmp_path / "no_runs").mkdir()
    parameters = {"cohort_dir": str(cohort), "cache_dir": str(tiny_cache), "runs_dir": str(tmp_path / "no_runs"),
                  "embeddings_dir": str(tmp_path / "embeddings")}
    runs = run_notebooks([NOTEBOOK], tmp_path / "out", parameters, progress_bar=False, log=lambda *a, **k: None)
    executed = json.loads(runs[0].executed.read_text())
    outputs = [o for cell in executed["cells"] if cell["cell_type"] == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    printed = "".join("".join(o.get("text", "")) for o in outputs if o.get("output_type") == "stream")
    assert printed.count(explore.NO_RUNS) == 4  # retrieval, map, scatter, phase similarity
    assert sum("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs) == 1  # the viewer


def test_the_embedding_map_is_pca_of_standardised_embeddings_as_a_loop_computes_it():
    from ptacl_core.evaluation.embedding_maps import embedding_map

    x = np.random.default_rng(8).normal(size=(60, 5)) * np.array([1.0, 10.0, 0.1, 3.0, 1.0]) + 4.0
    z = np.empty_like(x)
    for j in range(x.shape[1]):  # each dimension by hand: mean 0, SD 1 (population SD)
        column = x[:, j]
        mean = sum(column) / len(column)
        sd = (sum((v - mean) ** 2 for v in column) / len(column)) ** 0.5
        z[:, j] = (column - mean) / (sd + 1e-6)
    _, _, vt = np.linalg.svd(z - z.mean(0), full_matrices=False)
    reference = (z - z.mean(0)) @ vt[:2].T
    coordinates = embedding_map(x, "pca")
    for k in range(2):  # components are defined up to sign
        sign = np.sign(coordinates[:, k] @ reference[:, k])
        np.testing.assert_allclose(coordinates[:, k] * sign, reference[:, k], atol=1e-8)
    rows, subset = explore.map_coordinates(x, "pca")
    np.testing.assert_allclose(subset, coordinates)
