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
from ptacl_core.phenotypes import EVALUATED, PHENOTYPES

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
    from ptacl_core.phases import ecg_token_phases

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


def test_patient_viewer_follows_the_dropdown_and_the_frame_slider(data):
    viewer = explore.PatientViewer(data)
    first, second = viewer.subject.options[:2]
    assert viewer.subject_id == first
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
    # frame slider: cine image, volume cursor and the ECG cursors (same phase in every beat) move together
    image_before = np.array(viewer.cine_image.get_array()).copy()
    viewer.frame.value = 9
    cine = data.cine(second)
    assert np.array_equal(np.array(viewer.cine_image.get_array()), cine["image"][9]) and not np.array_equal(image_before, cine["image"][9])
    assert viewer.volume_cursor.get_xdata()[0] == pytest.approx(9 * cine["frame_interval_ms"])
    cursors = [segment[0, 0] for segment in viewer.ecg_cursors.get_segments()]
    assert cursors == pytest.approx(explore.phase_samples(rpeaks, 9 / len(cine["image"])) / data.fs)
    assert cine["source"] == "cohort" and cine["masks"] is not None and np.ptp(cine["lv_ml"]) > 0
    assert np.array(viewer.mask_image.get_array())[..., 3].max() > 0  # the mask overlay is drawn
    viewer.search.value = "NOBODY"  # typed and submitted
    assert "unknown subject id 'NOBODY'" in viewer.status.value and viewer.subject_id == second


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
            assert result.cosine.is_monotonic_decreasing  # ranked as notebook 04 ranks
            assert np.ptp(result.centred) > 0.05 and np.ptp(result.centred) > 5 * np.ptp(result.cosine)
            assert f"{result.centred.iloc[0]:+.2f}" in " ".join(t.get_text() for a in retrieval.figure.axes for t in [a.title])
    retrieval.rank_by.value = "centred"
    assert retrieval.result.centred.is_monotonic_decreasing
    # relevance: the query's nearest in z-scored phenotype space, the neighbours marked against it
    retrieval.relevance_k.value = retrieval.relevance_k.max
    assert retrieval.result.relevant.all()
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
    assert {t.get_text() for t in embedding_map.axis.get_legend().get_texts()} <= {"normal", "dilated cardiomyopathy",
                                                                                "lv hypertrophy", "myocardial infarction",
                                                                                "conduction delay"}


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
    from ptacl_core.dataset import CacheDataset
    from ptacl_core.evaluation.diagnostics import phase_similarity

    browser = explore.PhaseSimilarityBrowser(data)
    assert set(browser.matrices) == {"global", "ptacl"}
    subject = browser.subject.value
    batch = CacheDataset(data.cache, None).batch([data.position(subject)])
    similarity, mask = phase_similarity(data.model("ptacl", 0), batch, data.fs, data.num_bins("ptacl", 0))
    valid = mask[0][:, None] & mask[0][None, :]
    assert browser.matrices["ptacl"][valid] == pytest.approx(similarity[0][valid], abs=1e-5)
    assert np.isnan(browser.matrices["ptacl"][~valid]).all()
    browser.seed.value = 7
    assert "no finished run of 'global' seed 7" in browser.summary.value


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
    assert any(type(w).__name__ == "Canvas" for w in widgets) and all(isinstance(w, ipywidgets.Widget) for w in widgets)
    size = len(json.dumps([w.get_state() for w in widgets], default=str))
    assert size < 100_000, f"{size} bytes of widget state"
    assert "no trained run" in viewer.readout.value
    with pytest.raises(FileNotFoundError, match="needs trained encoders"):
        explore.RetrievalExplorer(data)


# --- notebook 06 --------------------------------------------------------------------------------------------------

NOTEBOOK = paths.notebooks_dir() / "06_explore.ipynb"


def test_committed_notebook_06_is_clean_and_not_part_of_the_default_run():
    from ptacl_core.runner import list_notebooks

    nb = json.loads(NOTEBOOK.read_text())
    code = [cell for cell in nb["cells"] if cell["cell_type"] == "code"]
    assert all(not cell.get("outputs") and cell.get("execution_count") is None for cell in code)
    parameters = [cell for cell in code if "parameters" in cell.get("metadata", {}).get("tags", [])]
    assert parameters and "fast" in "".join(parameters[0]["source"])
    assert NOTEBOOK not in list_notebooks()
    assert list_notebooks(only=["06"]) == [NOTEBOOK]


@pytest.mark.slow
def test_notebook_06_runs_headless(cohort, tiny_cache, trained_runs, tmp_path):
    from ptacl_core.runner import run_notebooks

    parameters = {"cohort_dir": str(cohort), "cache_dir": str(tiny_cache), "runs_dir": str(trained_runs),
                  "embeddings_dir": str(tmp_path / "embeddings")}
    runs = run_notebooks([NOTEBOOK], tmp_path / "out", parameters, progress_bar=False, log=lambda *a, **k: None)
    executed = json.loads(runs[0].executed.read_text())
    outputs = [o for cell in executed["cells"] if cell["cell_type"] == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    views = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) == 5  # viewer, retrieval, map, scatter, phase similarity
