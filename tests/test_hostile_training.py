"""Issue 20, training and predict: every optimiser, loss and model field validated in one line; a run whose loss is
not finite stops with a named error and keeps its last good checkpoint; NaN in a cache is refused; a tampered
checkpoint is refused before its model is built; predict's output folder is checked first; its report cannot be
forged by a file name."""

import json
import os
import re
import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

import ptacl_core.__main__ as cli
from ptacl_core.model.encoders import (
    MAX_MODEL_PARAMETERS,
    MODEL_PRESETS,
    TINY_V1,
    MaskedAutoencoder,
    ModelConfig,
    PTACLModel,
)
from ptacl_core.model.losses import PTACLLoss
from ptacl_core.prediction import PredictionError, Predictor, check_output, format_report
from ptacl_core.preprocessing.cache import Cache
from ptacl_core.preprocessing.dataset import CacheDataset
from ptacl_core.training import TrainConfig, load_config, train
from ptacl_core.training import loop as training_loop
from ptacl_core.training.epoch import NonFiniteLossError
from ptacl_core.training.loop import check_finite_weights
from ptacl_core.training.objective import build_objective, phenotype_stats
from ptacl_core.training.validation import validate


def _config(cache, runs, **overrides):
    items = ["optim.epochs=2", "optim.batch_size=8", *(f"{k}={v}" for k, v in overrides.items())]
    return TrainConfig(cache=str(cache), runs_dir=str(runs)).with_overrides(items)


def _one_line_error(capsys, argv) -> str:
    """Run the command line in-process; assert status 2 and a one-line error; return that line."""
    status = cli.main(argv)
    error = capsys.readouterr().err.strip()
    assert status == 2 and len(error.splitlines()) == 1 and "Traceback" not in error, error
    return error


# --- every field of the training config ------------------------------------------------------------------------

ABSENT_GPU = f"cuda:{max(torch.cuda.device_count(), 7)}"


@pytest.mark.parametrize("override, message", [
    ("optim.lr=inf", "optim.lr must be a finite number"),
    ("optim.lr=-1", "optim.lr must be at least 0"),
    ("optim.lr=nan", "optim.lr must be a finite number"),
    ("optim.grad_clip=-1", "optim.grad_clip must be at least 0"),
    ("optim.grad_clip=inf", "optim.grad_clip must be a finite number"),
    ("optim.batch_size=0", "optim.batch_size must be at least 1"),
    ("optim.epochs=-1", "optim.epochs must be at least 1"),
    ("optim.epochs=0", "optim.epochs must be at least 1"),
    ("optim.amp=fp16", "optim.amp must be one of"),
    ("optim.weight_decay=-0.1", "optim.weight_decay must be at least 0"),
    ("optim.warmup_epochs=nan", "optim.warmup_epochs must be a finite number"),
    ("optim.warmup_epochs=-1", "optim.warmup_epochs must be at least 0"),
    ("loss.temperature=0", "loss.temperature must be more than 0"),
    ("loss.temperature=-1", "loss.temperature must be more than 0"),
    ("loss.temperature=inf", "loss.temperature must be a finite number"),
    ("loss.local_temperature=0", "loss.local_temperature must be more than 0"),
    ("loss.alpha=nan", "loss.alpha must be a finite number"),
    ("loss.alpha=1.5", "loss.alpha must be at least 0 and at most 1"),
    ("loss.lam=-1", "loss.lam must be at least 0"),
    ("loss.lam=inf", "loss.lam must be a finite number"),
    ("loss.mask_ratio=0", "loss.mask_ratio must be more than 0 and less than 1"),
    ("loss.mask_ratio=1", "loss.mask_ratio"),
    ("loss.soft_sigma=inf", "loss.soft_sigma must be a finite number"),
    ("loss.soft_sigma=0", "loss.soft_sigma must be more than 0"),
    ("loss.soft_sigma=wide", "loss.soft_sigma must be a number"),
    ("loss.num_bins=1", "loss.num_bins must be at least 2"),
    ("threads=-5", "threads must be at least 0"),
    ("num_workers=-1", "num_workers must be at least 0"),
    ("seed=-1", "seed must be at least 0"),
    ("seed=99999999999", "seed must be at least 0 and at most"),
    ("device=gpu", "device must be auto, cpu, mps, cuda or cuda:<index>"),
    (f"device={ABSENT_GPU}", f"device={ABSENT_GPU}: "),
    ("model.ecg.heads=0", "model.ecg.heads must be at least 1"),
    ("model.ecg.heads=3", r"model.ecg.dim \(64\) must be divisible by model.ecg.heads \(3\)"),
    ("model.cmr.depth=-1", "model.cmr.depth must be at least 1"),
    ("model.cmr.dim=100000", "more than the 400,000,000"),
    ("model.embed_dim=0", "model.embed_dim must be at least 1"),
])
def test_a_bad_override_is_a_one_line_error(capsys, override, message):
    error = _one_line_error(capsys, ["train", override, "--no-progress"])
    assert error.startswith("error (train): ")
    assert re.search(message, error), error


@pytest.mark.parametrize("content, message", [
    ({"optim": {"epochs": True}}, "optim.epochs must be an integer"),
    ({"optim": {"lr": "fast"}}, "optim.lr must be a number"),
    ({"optim": {"lr": 1}}, None),  # an integer stands for a float
    ({"loss": {"temprature": 0.1}}, r"unknown config key\(s\) \['temprature'\] in loss"),
    ({"model": {"embed_dimm": 3}}, r"unknown config key\(s\) \['embed_dimm'\] in model"),
    ({"model": {"ecg": {"dim": 64.5}}}, "model.ecg.dim must be an integer"),
    ({"optim": [1, 2]}, "config section optim must be a mapping"),
    ({"method": "ptacl", "epochs": 3}, r"unknown config key\(s\) \['epochs'\]"),
    ([1, 2], "must be a mapping"),
    ({"seed": 0.5}, "seed must be an integer"),
    ({"cache": 3}, "cache must be str"),
])
def test_a_bad_config_file_names_the_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    if message is None:
        assert load_config(path).optim.lr == 1
        return
    with pytest.raises(ValueError, match=message) as raised:
        load_config(path)
    assert str(raised.value).startswith(f"{path}: ")


def test_a_config_file_that_is_not_json_names_the_file(tmp_path, capsys):
    path = tmp_path / "broken.json"
    path.write_text("{'optim': ")
    assert str(path) in _one_line_error(capsys, ["train", "--config", str(path)])


def test_good_configs_are_unchanged():
    for config in (TrainConfig(), TrainConfig(preset="paper", model=MODEL_PRESETS["paper"]),
                   TrainConfig().with_overrides(["loss.soft_sigma=0.05", "optim.grad_clip=0", "optim.amp=off", "optim.lr=0",
                                                 "device=cpu", "threads=1", "loss.lam=0"])):
        assert TrainConfig.from_dict(config.to_dict()) == config
    assert ModelConfig.from_dict(TINY_V1.to_dict()) == TINY_V1


# --- model sizes -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", [MODEL_PRESETS["tiny"], MODEL_PRESETS["paper"], TINY_V1], ids=["tiny", "paper", "v1"])
def test_the_size_check_counts_the_parameters_the_model_has(model):
    built = PTACLModel(model)
    decoder = max(sum(p.numel() for n, p in MaskedAutoencoder(getattr(built, f"{e}_encoder")).named_parameters()
                      if not n.startswith("encoder.")) for e in ("ecg", "cmr"))
    assert model.parameter_count() == sum(p.numel() for p in built.parameters()) + decoder < MAX_MODEL_PARAMETERS


@pytest.mark.parametrize("model, message", [
    ({"ecg": {"heads": 0}}, "model.ecg.heads must be at least 1"),
    ({"cmr": {"heads": 0}}, "model.cmr.heads must be at least 1"),
    ({"ecg": {"dim": 16384}}, "more than the 400,000,000"),
    ({"ecg": {"depth": 10**6}}, "more than the 400,000,000"),
    ({"cmr": {"n_frames": 10**12}}, "more than the 400,000,000"),
    ({"ecg": {"n_times": 0}}, "model.ecg.n_times must be at least 1"),
    ({"ecg": {"token_leads": 5}}, "model.ecg.token_leads must divide n_leads"),
    ({"ecg": {"mlp_ratio": float("nan")}}, "model.ecg.mlp_ratio must be a finite number"),
    ({"ecg": {"mlp_ratio": 0.001}}, "leaves an MLP of no unit"),
    ({"cmr": {"tubelet_frames": 30}}, "must hold one tubelet"),
    ({"cmr": {"patch_px": 96}}, "must hold one patch"),
    ({"ecg": {"dim": -64}}, "model.ecg.dim must be at least 1"),
    ({"ecg": {"bogus": 1}}, r"unknown config key\(s\) \['bogus'\] in model.ecg"),
])
def test_a_tampered_checkpoint_is_refused_before_its_model_is_built(tmp_path, monkeypatch, model, message):
    import ptacl_core.training.runs as runs_module

    config = TrainConfig().to_dict()
    for section, values in model.items():
        config["model"][section].update(values)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"config": config, "objective": {}, "epoch": 0}, run / "checkpoints/last.pt")

    def never(*args, **kwargs):
        raise AssertionError("a model was built")

    monkeypatch.setattr(runs_module, "PTACLModel", never)
    with pytest.raises(PredictionError, match=message) as raised:
        Predictor.from_run(run)
    assert str(raised.value).startswith(f"{run / 'checkpoints/last.pt'}: ") and "a model was built" not in str(raised.value)


def test_predict_refuses_a_coverage_out_of_range_before_any_work(tmp_path):
    for coverage in (0.0, 1.0, float("nan"), 2.0):
        with pytest.raises(PredictionError, match="coverage must lie in"):
            Predictor.from_run(tmp_path, coverage=coverage)


# --- the loss of every step, the weights of every epoch, the cache --------------------------------------------------

def _nan_global_term(monkeypatch, after_calls: int = 0):
    """From the (after_calls + 1)-th forward on, PTACLLoss's global term is NaN."""
    original, calls = PTACLLoss.forward, {"n": 0}

    def poisoned(self, *args, **kwargs):
        total, parts = original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] > after_calls and self.training:
            parts = {**parts, "global": parts["global"] * float("nan")}
            total = total * float("nan")
        return total, parts

    monkeypatch.setattr(PTACLLoss, "forward", poisoned)


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tiny_cache, tmp_path, monkeypatch, capsys):
    config = _config(tiny_cache, tmp_path, name="r")
    folder = train(config, progress=False, stop_after_epochs=1)
    checkpoint = (folder / "checkpoints/last.pt").read_bytes()
    metrics = (folder / "metrics.csv").read_text()
    _nan_global_term(monkeypatch, after_calls=2)
    overrides = [f"cache={tiny_cache}", f"runs_dir={tmp_path}", "name=r", "optim.epochs=2", "optim.batch_size=8"]
    error = _one_line_error(capsys, ["train", *overrides, "--no-progress"])
    assert "r: the training loss is nan at epoch 2, step 3 (global term nan, local term" in error
    assert f"stopped, {folder / 'checkpoints/last.pt'} keeps epoch 1" in error
    assert (folder / "checkpoints/last.pt").read_bytes() == checkpoint  # nothing written after the NaN step
    assert (folder / "metrics.csv").read_text() == metrics
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["last.pt"]
    monkeypatch.undo()  # the run folder is free again and resumes from its last good epoch
    train(config, progress=False)
    assert len((folder / "metrics.csv").read_text().splitlines()) == 3


def test_a_nan_loss_in_the_first_epoch_writes_no_checkpoint(tiny_cache, tmp_path, monkeypatch):
    _nan_global_term(monkeypatch)
    with pytest.raises(NonFiniteLossError, match="epoch 1, step 1 .*no checkpoint was written"):
        train(_config(tiny_cache, tmp_path, name="first"), progress=False)
    assert not (tmp_path / "first/checkpoints/last.pt").exists() and not (tmp_path / "first/metrics.csv").exists()


def test_a_nan_loss_of_an_objective_without_parts_is_named(tiny_cache, tmp_path, monkeypatch):
    from ptacl_core.training.objective import Supervised

    original = Supervised.forward
    monkeypatch.setattr(Supervised, "forward", lambda self, batch: (original(self, batch)[0] * float("inf"), {}))
    with pytest.raises(NonFiniteLossError, match=r"the training loss is inf at epoch 1, step 1 \(Supervised objective\)"):
        train(_config(tiny_cache, tmp_path, method="supervised", **{"optim.epochs": 1}), progress=False)


def _poisoned_cache(tiny_cache, tmp_path, array: str, split: str) -> tuple:
    """A copy of the test cache with one ``split`` subject's ``array`` ("ecg" or "cmr") holding NaN and Inf."""
    copy = tmp_path / "cache"
    shutil.copytree(tiny_cache, copy)
    cache = Cache.open(copy)
    position = int(np.flatnonzero(cache.index.split.to_numpy() == split)[0])
    values = np.load(copy / f"{array}.npy", mmap_mode="r+")
    values[int(cache.index.row.iloc[position])].reshape(-1)[:3] = [np.nan, np.inf, -np.inf]
    values.flush()
    del values
    return copy, str(cache.index.subject_id.iloc[position])


@pytest.mark.parametrize("array, split", [("ecg", "train"), ("cmr", "test")])
def test_nan_in_a_cache_is_refused_when_training_opens_it(tiny_cache, tmp_path, array, split):
    cache, subject = _poisoned_cache(tiny_cache, tmp_path, array, split)
    with pytest.raises(ValueError, match=f"{cache / (array + '.npy')}: the cached {array.upper()} of 1 subject") as raised:
        train(_config(cache, tmp_path, name="poisoned"), progress=False)
    assert repr(subject) in str(raised.value)
    assert not (tmp_path / "poisoned/config.json").exists()  # refused before the run is described or trained


def test_nan_inputs_are_named_by_the_step_and_the_validation(tiny_cache, tmp_path, monkeypatch):
    """Without the scan at open (e.g. a cache changed while training), the loss checks name the subjects."""
    monkeypatch.setattr(training_loop, "check_finite_cache", lambda cache: None)
    cache, subject = _poisoned_cache(tiny_cache, tmp_path, "ecg", "train")
    with pytest.raises(NonFiniteLossError, match=f"the training loss is nan .*ecg of subject.*{re.escape(repr(subject))}"):
        train(_config(cache, tmp_path, name="a", augment="false"), progress=False)
    shutil.rmtree(tmp_path / "cache")
    cache, subject = _poisoned_cache(tiny_cache, tmp_path, "cmr", "val")
    with pytest.raises(NonFiniteLossError, match=f"epoch 1: the validation loss is nan .*cmr of subject.*{re.escape(repr(subject))}"):
        train(_config(cache, tmp_path, name="b"), progress=False)
    assert not (tmp_path / "b/checkpoints/last.pt").exists()


def test_a_weight_that_is_not_finite_stops_before_the_checkpoint(tmp_path):
    run = SimpleNamespace(name="r", folder=tmp_path, parameters=[torch.zeros(3), torch.tensor([1.0, float("inf")])])
    with pytest.raises(NonFiniteLossError, match="a weight is NaN or infinite after epoch 1"):
        check_finite_weights(run, 0)
    check_finite_weights(SimpleNamespace(name="r", folder=tmp_path, parameters=[torch.zeros(3)]), 0)


def test_a_batch_larger_than_the_training_split_is_refused(tiny_cache, tmp_path):
    with pytest.raises(ValueError, match="optim.batch_size=1000 is more than the .* training subjects.*no step"):
        train(_config(tiny_cache, tmp_path, **{"optim.batch_size": 1000}), progress=False)


def test_a_validation_split_without_a_pair_has_no_loss_rather_than_zero(tiny_cache):
    cache = Cache.open(tiny_cache)
    config = TrainConfig(cache=str(tiny_cache))
    objective = build_objective(config, float(cache.config.ecg.fs), phenotype_stats(cache), soft_sigma=0.05)
    single = CacheDataset(cache, "val")
    single.positions = single.positions[:1]
    loss, _ = validate(objective, single, 8, torch.device("cpu"), False, 0)
    assert np.isnan(loss)
    loss, _ = validate(objective, CacheDataset(cache, "val"), 8, torch.device("cpu"), False, 0)
    assert np.isfinite(loss) and loss > 0


# --- predict: its output folder, its report -----------------------------------------------------------------------

def test_check_output_refuses_what_predict_cannot_or_must_not_write(tmp_path):
    (tmp_path / "file").write_text("keep")
    with pytest.raises(PredictionError, match="exists and is not a folder"):
        check_output(tmp_path / "file")
    with pytest.raises(PredictionError, match="cannot be created, .*file is not a folder"):
        check_output(tmp_path / "file" / "out")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(PredictionError, match="a symbolic link to nothing"):
        check_output(tmp_path / "dangling")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "predictions.csv").symlink_to(tmp_path / "file")
    with pytest.raises(PredictionError, match="predictions.csv is a symbolic link"):
        check_output(linked)
    odd = tmp_path / "odd"
    (odd / "nearest_patients.csv").mkdir(parents=True)
    with pytest.raises(PredictionError, match="nearest_patients.csv exists and is not a plain file"):
        check_output(odd)
    assert (tmp_path / "file").read_text() == "keep"
    # by design: a new folder (parents too), or a folder holding predict's own tables (overwritten), is accepted
    assert check_output(tmp_path / "new/deeper") == tmp_path / "new/deeper" and not (tmp_path / "new").exists()
    again = tmp_path / "again"
    again.mkdir()
    (again / "predictions.csv").write_text("old")
    assert check_output(again) == again


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_check_output_refuses_a_folder_it_may_not_write(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(PredictionError, match="is not writable"):
            check_output(locked / "out")
    finally:
        locked.chmod(0o700)


def test_predict_refuses_an_existing_file_as_out_before_predicting(tmp_path, capsys):
    (tmp_path / "taken").write_text("keep")
    error = _one_line_error(capsys, ["predict", "--run", str(tmp_path / "no_run"), "x.xml", "--out", str(tmp_path / "taken")])
    assert "taken: exists and is not a folder" in error and (tmp_path / "taken").read_text() == "keep"


def test_names_with_control_characters_cannot_forge_report_lines():
    errors = pd.DataFrame({"test_mae": [5.0], "test_r2": [0.5], "test_coverage": [0.9]}, index=["LVEF_pct"])
    forged = "evil\n== forged.xml\n   LVEF_pct 99.0"
    predictions = pd.DataFrame([
        {"file": forged, "status": "error", "error": f"{forged}: unreadable\n   nearest #1: x"},
        {"file": "ok\r.xml", "status": "ok", "error": "", "flags": "flat\x1b[2J", "LVEF_pct": 60.0,
         "LVEF_pct_low": 50.0, "LVEF_pct_high": 70.0},
        {"file": "plain name é.xml", "status": "ok", "error": "", "flags": "", "LVEF_pct": 60.0,
         "LVEF_pct_low": 50.0, "LVEF_pct_high": 70.0},
    ])
    neighbours = pd.DataFrame([
        {"file": "ok\r.xml", "rank": 1, "subject_id": "S1\n== forged", "cosine_similarity": 0.9, "LVEF_pct": 60.0,
         "condition": "normal\u2028== forged"},
        {"file": "plain name é.xml", "rank": 1, "subject_id": "S 2", "cosine_similarity": 0.9, "LVEF_pct": 60.0,
         "condition": "normal"}])
    report = format_report(predictions, neighbours, errors)
    lines = report.splitlines()
    assert len(lines) == 9, report  # 2 + 4 + 3: one line per item, none forged
    assert not any(line.startswith(("== forged", "   LVEF_pct 99", "   nearest #1: x")) for line in lines)
    assert lines[0] == f"== {forged!r}" and "\\x1b" in report and "\\u2028" in report and "'S1\\n== forged'" in report
    assert "== plain name é.xml" in lines and "   nearest #1: S 2 (cosine 0.900; LVEF 60, normal)" in lines


def test_a_run_whose_stored_model_is_tampered_is_a_note_of_find_runs_not_a_crash(tmp_path):
    from ptacl_core.training.runs import find_runs, run_name

    config = TrainConfig().to_dict()
    config["model"]["ecg"]["heads"] = 0
    config["optim"]["epochs"] = 1
    run = tmp_path / run_name("ptacl", "tiny", 0)
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"config": config, "objective": {}, "epoch": 0}, run / "checkpoints/last.pt")
    runs, notes = find_runs(tmp_path, "tiny")
    assert runs == [] and len(notes) == 1 and "stored model config is refused" in notes[0] and "heads" in notes[0]
