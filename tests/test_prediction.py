"""Embedding cache, run discovery, and ECG-only prediction (on the real ECGs in ../shared/realdata)."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from ptacl_core import paths
from ptacl_core.evaluation.embeddings import cache_embeddings, embed_arrays, weights_hash
from ptacl_core.prediction import PredictionError, Predictor
from ptacl_core.preprocessing.cache import Cache
from ptacl_core.training.runs import find_runs, random_init_model

# physiological ranges wide enough for any adult heart (mL, %, L/min, g)
PLAUSIBLE = {"LVEDV_mL": (40, 400), "LVESV_mL": (5, 300), "LVSV_mL": (10, 200), "LVEF_pct": (10, 85),
             "LVCO_L_min": (1, 15), "LVM_g": (30, 300), "RVEDV_mL": (40, 400), "RVESV_mL": (5, 300),
             "RVSV_mL": (10, 200), "RVEF_pct": (10, 85)}


def test_embeddings_are_batch_size_independent_and_cached_by_weights(tiny_cache, tmp_path):
    cache = Cache.open(tiny_cache)
    model = random_init_model("tiny", 0)
    rows = cache.index.row.to_numpy()[:10]
    np.testing.assert_allclose(embed_arrays(model, cache.ecg, rows, "ecg", batch_size=3),
                               embed_arrays(model, cache.ecg, rows, "ecg", batch_size=10), atol=1e-5)
    first = cache_embeddings(model, cache, "ecg", tmp_path)
    assert first.shape == (len(cache.index), model.config.ecg.dim) and len(list(tmp_path.glob("*.npz"))) == 1
    np.testing.assert_array_equal(cache_embeddings(random_init_model("tiny", 0), cache, "ecg", tmp_path), first)
    other = random_init_model("tiny", 1)
    assert weights_hash(other) != weights_hash(model)
    cache_embeddings(other, cache, "ecg", tmp_path)
    cache_embeddings(model, cache, "cmr", tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 3  # a new key per weights and per modality
    with torch.no_grad():
        model.ecg_encoder.patch_embed.weight.mul_(2.0)  # changed weights must not be served the stored embeddings
    assert not np.allclose(cache_embeddings(model, cache, "ecg", tmp_path), first)
    with pytest.raises(ValueError, match="modality"):
        embed_arrays(model, cache.ecg, rows, "eeg")


def test_find_runs_keeps_finished_runs_of_the_preset(trained_runs, tmp_path):
    runs, notes = find_runs(trained_runs, "tiny")
    assert [(r.method, r.seed) for r in runs] == [("global", 0), ("ptacl", 0)] and not notes
    assert find_runs(trained_runs, "paper")[0] == [] and find_runs(trained_runs, "tiny", fast=True)[0] == []
    unfinished = tmp_path / "ptacl_tiny_seed1"
    shutil.copytree(trained_runs / "ptacl_tiny_seed0", unfinished)
    state = torch.load(unfinished / "checkpoints/last.pt", weights_only=True)
    state["epoch"] = 0  # killed after the first of two epochs (metrics.csv may already hold the second row)
    torch.save(state, unfinished / "checkpoints/last.pt")
    runs, notes = find_runs(tmp_path, "tiny")
    assert runs == [] and "unfinished (1/2 epochs)" in notes[0]
    (unfinished / "checkpoints/last.pt").write_bytes(b"truncated")
    runs, notes = find_runs(tmp_path, "tiny")
    assert runs == [] and "unreadable checkpoint" in notes[0]


@pytest.fixture(scope="module")
def real_ecgs(realdata):
    ecg = realdata / "ecg"
    return [ecg / "ukb_xml/ukbb_scrubbed.xml", ecg / "wfdb/ptbxl/00001_lr.hea", ecg / "wfdb/cinc2021/E07500.mat",
            ecg / "wfdb/cinc2021/HR06000", ecg / "wfdb/ptb/s0010_re.hea"]


def test_predict_on_real_ecgs_gives_physiological_values(trained_runs, real_ecgs, tmp_path):
    predictor = Predictor.from_run(trained_runs / "ptacl_tiny_seed0", store=tmp_path)
    bad = tmp_path / "broken.xml"
    bad.write_text("<not-an-ecg>")
    predictions, neighbours = predictor.predict([*real_ecgs, bad, tmp_path / "missing.hea"], top=3)
    ok = predictions[predictions.status == "ok"]
    assert len(ok) == len(real_ecgs)
    for name, (low, high) in PLAUSIBLE.items():
        values = ok[name].to_numpy(dtype=float)
        # Units and scaling: every value finite, the typical real ECG in the physiological range. ECGs from other
        # sources lie outside the 2-epoch test model's synthetic training data and a linear probe extrapolates (two
        # of five give a negative LVESV with today's tiny model): flagging them is the job of an out-of-distribution
        # score (issue 12), not of this range.
        assert np.isfinite(values).all() and low < np.median(values) < high, (name, values)
        assert np.ptp(values) > 0, (name, values)  # the files are told apart
        assert (ok[f"{name}_test_mae"] > 0).all()
    failed = predictions[predictions.status == "error"].set_index("file")
    assert str(bad) in failed.index and "broken.xml" in failed.loc[str(bad), "error"]
    assert "missing.hea" in failed.loc[str(tmp_path / "missing.hea"), "error"]
    assert len(neighbours) == 3 * len(real_ecgs)
    assert (neighbours.groupby("file").cosine_similarity.apply(lambda s: s.is_monotonic_decreasing)).all()


def test_predict_command_writes_csv_and_reports_bad_files(trained_runs, real_ecgs, tmp_path):
    command = [sys.executable, "-m", "ptacl_core", "predict", "--run", str(trained_runs / "ptacl_tiny_seed0"),
               str(real_ecgs[0]), str(real_ecgs[1]), str(tmp_path / "nope.xml"), "--out", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=paths.project_root())
    assert result.returncode == 1, result.stderr[-2000:]  # one file failed, the others were predicted
    assert "LVEF_pct" in result.stdout and "probe test MAE" in result.stdout and "nearest #1" in result.stdout
    assert "nope.xml" in result.stdout and "2 of 3 file(s) predicted" in result.stdout
    table = pd.read_csv(tmp_path / "out/predictions.csv")
    assert list(table.status) == ["ok", "ok", "error"]
    assert len(pd.read_csv(tmp_path / "out/nearest_patients.csv")) == 6


def test_predict_refuses_a_run_without_checkpoint_or_cache(trained_runs, tmp_path):
    with pytest.raises(PredictionError, match="no checkpoint"):
        Predictor.from_run(tmp_path)
    moved = tmp_path / "ptacl_tiny_seed0"
    shutil.copytree(trained_runs / "ptacl_tiny_seed0", moved)
    state = torch.load(moved / "checkpoints/last.pt", weights_only=True)
    state["config"]["cache"] = str(tmp_path / "gone")
    torch.save(state, moved / "checkpoints/last.pt")
    with pytest.raises(PredictionError, match="pass --cache"):
        Predictor.from_run(moved)
    assert json.loads((moved / "config.json").read_text())["method"] == "ptacl"


def test_unforeseen_preprocessing_failure_is_one_files_error(trained_runs, real_ecgs, tmp_path, monkeypatch):
    import ptacl_core.prediction.predictor as prediction

    predictor = Predictor.from_run(trained_runs / "ptacl_tiny_seed0", store=tmp_path)
    original = prediction.preprocess_ecg

    def flaky(signal, fs, config):
        if signal.shape[1] == 5000 and fs == 500:  # the UK Biobank strip only
            raise ZeroDivisionError("division by zero")
        return original(signal, fs, config)

    monkeypatch.setattr(prediction, "preprocess_ecg", flaky)
    predictions, _ = predictor.predict([real_ecgs[0], real_ecgs[1]])
    assert list(predictions.status) == ["error", "ok"]
    assert str(real_ecgs[0]) in predictions.error[0] and "ZeroDivisionError" in predictions.error[0]
    with pytest.raises(ValueError, match="top must be at least 1"):
        predictor.predict([real_ecgs[1]], top=0)


def test_predict_command_refuses_top_zero(trained_runs, tmp_path):
    command = [sys.executable, "-m", "ptacl_core", "predict", "--run", str(trained_runs / "ptacl_tiny_seed0"), "x.xml", "--top", "0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=paths.project_root())
    assert result.returncode == 2 and "must be at least 1" in result.stderr


def test_a_run_from_another_cache_is_flagged(trained_runs, tmp_path):
    moved = tmp_path / "ptacl_tiny_seed0"
    shutil.copytree(trained_runs / "ptacl_tiny_seed0", moved)
    state = torch.load(moved / "checkpoints/last.pt", weights_only=True)
    state["data_fingerprint"] = "0" * 64
    torch.save(state, moved / "checkpoints/last.pt")
    predictor = Predictor.from_run(moved, store=tmp_path / "store")
    assert predictor.notes and "trained on another cache" in predictor.notes[0]
    assert not Predictor.from_run(trained_runs / "ptacl_tiny_seed0", store=tmp_path / "store").notes
    # and the comparison leaves such a run out, saying why
    from ptacl_core.evaluation.comparison import Comparison

    with pytest.raises(FileNotFoundError, match="ptacl_tiny_seed0: trained on another cache"):
        Comparison.load(cache_dir=state["config"]["cache"], runs_dir=tmp_path, embeddings_dir=tmp_path / "store", progress=False)
    comparison = Comparison.load(cache_dir=state["config"]["cache"], runs_dir=trained_runs, embeddings_dir=tmp_path / "store",
                                 progress=False)
    assert sorted(comparison.embeddings) == [("cmr_ptacl", 0), ("condition_label", 0), ("ecg_measures", 0),
                                             ("generator_latents", 0), ("global", 0), ("median_beat", 0), ("ptacl", 0),
                                             ("random", 0)]
    assert comparison.headline() == ("ptacl", 0) and not comparison.notes


def test_comparison_figure_inputs(trained_runs, tiny_cache, tmp_path):
    """What notebook 05 asks the comparison for: the panel's queries (one per condition), 2-D maps, first runs."""
    from ptacl_core.evaluation.comparison import Comparison

    comparison = Comparison.load(cache_dir=tiny_cache, runs_dir=trained_runs, embeddings_dir=tmp_path, progress=False)
    queries = comparison.retrieval_panel_queries("ptacl", 0, n_queries=10)
    test = comparison.view.splits == "test"
    assert len(queries) == min(10, len(set(comparison.view.conditions[test])))
    conditions = [q["title"].rsplit(", ", 1)[-1] for q in queries]
    assert len(set(conditions)) == len(conditions)  # different hearts
    for query in queries:
        assert query["ecg"].shape[0] == 12 and query["own_frame"].ndim == 2 and len(query["retrieved"]) == 3
        assert all(r["frame"].shape == query["own_frame"].shape for r in query["retrieved"])
    maps = comparison.embedding_maps(("random", "ptacl", "mae_ecg"), "pca")
    assert set(maps) == {"random", "ptacl"} and all(m.shape == (len(comparison.view.subject_ids), 2) for m in maps.values())
    with pytest.raises(ValueError, match="map method must be one of"):
        comparison.embedding_maps(how="umap")
    assert comparison.first_run("global").seed == 0 and comparison.first_run("local") is None


def test_training_plan():
    from ptacl_core.training.plan import training_plan

    plan = training_plan(["global", "ptacl"], 2, ["ptacl", "mae_ecg"], 1)
    assert plan == [("global", 0), ("global", 1), ("ptacl", 0), ("ptacl", 1), ("mae_ecg", 0)]
    with pytest.raises(ValueError, match="method must be one of"):
        training_plan(["clip"], 1)
    plan = training_plan(["global", "ptacl"], 1, ["supervised", "mae_ecg"], 1, variants=["ptacl_sham", "ptacl_mae"], variant_seeds=2)
    assert plan == [("global", 0), ("ptacl", 0), ("ptacl_sham", 0), ("ptacl_sham", 1), ("mae_ecg", 0), ("mae_cmr", 0),
                    ("ptacl_mae", 0), ("mae_ecg", 1), ("mae_cmr", 1), ("ptacl_mae", 1), ("supervised", 0)]


def test_reference_rows(trained_runs, tiny_cache, cohort, tmp_path):
    """Condition one-hot, hand-crafted measurements of the cached ECGs and the generator's latents, in cache order."""
    from ptacl_core.evaluation.references import condition_features, ecg_measure_features, generator_latent_features

    cache = Cache.open(tiny_cache)
    condition = condition_features(cache)
    assert condition.shape[0] == len(cache.index) and (condition.sum(1) == 1).all()
    measures = ecg_measure_features(cache, tmp_path)
    assert measures.shape == (len(cache.index), 15) and np.isfinite(measures).all()
    latents = pd.read_csv(cohort / "latents.csv", dtype={"subject_id": str}).set_index("subject_id")
    heart_rate = latents.loc[cache.index.subject_id, "heart_rate_bpm"].to_numpy()
    assert np.median(np.abs(measures[:, 0] - heart_rate)) < 3.0  # measured HR follows the truth
    assert list(tmp_path.glob("ecg_measures_*.npz"))  # cached
    assert np.array_equal(ecg_measure_features(cache, tmp_path), measures)
    ceiling = generator_latent_features(cache)
    assert ceiling.shape[0] == len(cache.index) and np.isfinite(ceiling).all()


class _Payload:
    """A pickle that would create a file when loaded."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_crafted_checkpoint_runs_no_code(tmp_path):
    from ptacl_core.prediction import PredictionError
    from ptacl_core.training.runs import read_checkpoint

    run = tmp_path / "ptacl_tiny_seed0"
    (run / "checkpoints").mkdir(parents=True)
    marker = tmp_path / "pwned"
    torch.save({"config": {"optim": {"epochs": 1}}, "epoch": 0, "payload": _Payload(marker)}, run / "checkpoints/last.pt")
    with pytest.raises(Exception, match="(?i)weights"):
        read_checkpoint(run)
    runs, notes = find_runs(tmp_path, "tiny")
    assert not runs and "unreadable checkpoint" in notes[0]
    with pytest.raises(PredictionError, match="not a loadable checkpoint"):
        Predictor.from_run(run)
    assert not marker.exists()


def test_predict_reads_ge_muse_exports(trained_runs, realdata, tmp_path):
    """Hospital archives export GE MUSE XML: predict reads it (8 stored leads, 4 derived) like any other ECG."""
    predictor = Predictor.from_run(trained_runs / "ptacl_tiny_seed0", store=tmp_path)
    files = [realdata / "ecg/muse_xml/muse_ecg1.xml", realdata / "ecg/muse_xml/muse_ecg2.xml"]
    predictions, _ = predictor.predict(files, top=1)
    assert list(predictions.status) == ["ok", "ok"] and np.isfinite(predictions.LVEF_pct.to_numpy(dtype=float)).all()


def test_predictions_carry_conformal_intervals_and_an_ood_verdict(trained_runs, cohort, realdata, tmp_path):
    predictor = Predictor.from_run(trained_runs / "ptacl_tiny_seed0", store=tmp_path)
    assert predictor.synthetic  # the kit's generator wrote this cohort
    errors = predictor.test_errors
    assert {"interval_halfwidth", "test_coverage"} <= set(errors.columns) and (errors.interval_halfwidth > 0).all()
    manifest = pd.read_csv(cohort / "manifest.csv", dtype=str)
    validation = [cohort / path for path in manifest[manifest.split == "val"].ecg]
    hospital = [realdata / "ecg/muse_xml/muse_ecg1.xml", realdata / "ecg/muse_xml/muse_ecg2.xml",
                realdata / "ecg/ukb_xml/ukbb_scrubbed.xml"]
    predictions, _ = predictor.predict([*validation, *hospital], top=1)
    ok = predictions[predictions.status == "ok"]
    assert len(ok) == len(validation) + len(hospital)
    assert (ok.LVEF_pct_low <= ok.LVEF_pct).all() and (ok.LVEF_pct <= ok.LVEF_pct_high).all()
    # the verdict separates them: a validation ECG of the training cohort is never out of distribution (the
    # threshold is the validation maximum); the real hospital-format ECGs are
    assert "out of distribution" not in set(ok.ood_verdict.iloc[:len(validation)])
    assert list(ok.ood_verdict.iloc[len(validation):]) == ["out of distribution"] * len(hospital)
    assert ok.ood_percentile.between(0, 100).all() and set(ok.ood_verdict) <= {"in distribution", "unusual", "out of distribution"}


def test_inputs_expand_from_folders_and_manifests(cohort, tmp_path):
    from ptacl_core.prediction import PredictionError, expand_inputs

    manifest = pd.read_csv(cohort / "manifest.csv", dtype=str)
    from_folder = expand_inputs([cohort / "ecg"])
    assert len(from_folder) == len(manifest) and all(path.suffix == ".hea" for path in from_folder)
    from_manifest = expand_inputs([cohort / "manifest.csv", tmp_path / "extra.xml"])
    assert from_manifest[:-1] == [cohort / path for path in manifest.ecg] and from_manifest[-1] == tmp_path / "extra.xml"
    bad = tmp_path / "bad.csv"
    bad.write_text("subject_id,cmr\n1,x\n")
    with pytest.raises(PredictionError, match="needs an 'ecg' column"):
        expand_inputs([bad])


def test_predict_command_says_when_the_model_is_a_demonstration(trained_runs, cohort, tmp_path):
    command = [sys.executable, "-m", "ptacl_core", "predict", "--run", str(trained_runs / "ptacl_tiny_seed0"),
               str(cohort / "ecg"), "--top", "1", "--out", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=paths.project_root())
    assert result.returncode == 0, result.stderr[-2000:]
    assert "trained on the kit's synthetic cohort" in result.stdout and "DEMONSTRATION ONLY" in result.stdout
    assert "conformal interval, test coverage" in result.stdout
    table = pd.read_csv(tmp_path / "out/predictions.csv")
    assert {"LVEF_pct_low", "LVEF_pct_high", "ood_percentile", "ood_verdict"} <= set(table.columns)
    bad = subprocess.run(command[:-2] + ["--coverage", "1.5"], capture_output=True, text=True, timeout=300,
                         cwd=paths.project_root())
    assert bad.returncode == 2 and "coverage must lie in" in bad.stderr


def test_predict_reads_philips_scp_and_edf_and_names_a_missing_lead(trained_runs, realdata, tmp_path):
    """The hospital formats of issue 23 flow through predict like any other ECG; the SCP file with V3R and V7 in
    place of V3 and V5 gets an error row naming them, the others still get predictions."""
    import edfio

    from ptacl_core.io.ecg import read_wfdb
    from ptacl_core.leads import LEAD_NAMES

    record = read_wfdb(realdata / "ecg/wfdb/cinc2021/HR06000.hea")
    edf = tmp_path / "holter.edf"
    edfio.Edf([edfio.EdfSignal(record.signal[i] * 1000, record.fs, label=f"ECG {lead}", physical_dimension="uV")
               for i, lead in enumerate(LEAD_NAMES)]).write(edf)
    files = [realdata / "ecg/philips_xml/philips_1-03.xml", realdata / "ecg/philips_xml/philips_1-04.xml",
             realdata / "ecg/scp_ecg/scp_standard_leads.scp", edf, realdata / "ecg/scp_ecg/scp_v3r_v7_leads.scp"]
    predictor = Predictor.from_run(trained_runs / "ptacl_tiny_seed0", store=tmp_path)
    predictions, _ = predictor.predict(files, top=1)
    assert list(predictions.status) == ["ok"] * 4 + ["error"]
    assert np.isfinite(predictions.LVEF_pct[:4].to_numpy(dtype=float)).all()
    assert "missing lead(s) V3, V5" in predictions.error[4] and "V3R, V7" in predictions.error[4]
