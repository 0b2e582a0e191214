"""Encoders, the trainer (resume determinism, config errors), and the probe."""

import json

import numpy as np
import pytest
import torch

from ptacl_core.evaluation.diagnostics import quick_probe
from ptacl_core.model.encoders import (
    MODEL_PRESETS,
    CmrEncoder,
    EcgEncoder,
    EcgEncoderConfig,
    MaskedAutoencoder,
    PTACLModel,
)
from ptacl_core.preprocessing.cache import Cache
from ptacl_core.training import TrainConfig, load_config, load_model, train


def _config(cache, runs, **overrides):
    items = ["optim.epochs=2", "optim.batch_size=8", *(f"{k}={v}" for k, v in overrides.items())]
    return TrainConfig(cache=str(cache), runs_dir=str(runs)).with_overrides(items)


def test_encoder_shapes_and_token_times():
    model = PTACLModel(MODEL_PRESETS["tiny"])
    tokens, pooled = model.ecg_encoder(torch.randn(2, 12, 2500))
    assert tokens.shape == (2, 1, 100, 64) and pooled.shape == (2, 64)  # one token per 100 ms over all 12 leads
    times = model.ecg_encoder.token_times_s(2500, 250.0)
    assert times[0] == pytest.approx(0.05) and times[-1] == pytest.approx(9.95)
    cine_tokens, cine_pooled = model.cmr_encoder(torch.rand(2, 24, 48, 48))
    assert cine_tokens.shape == (2, 12, 4, 64) and cine_pooled.shape == (2, 64)  # tubelets of 2 frames x 24 px
    per_lead = EcgEncoder(EcgEncoderConfig(patch_samples=50, n_times=50, token_leads=1))  # MMCL's 1 x P patches
    assert per_lead(torch.randn(2, 12, 2500))[0].shape == (2, 12, 50, 64)
    with pytest.raises(ValueError, match="token_leads must divide"):
        EcgEncoder(EcgEncoderConfig(token_leads=5))
    with pytest.raises(ValueError, match="expects 12 leads"):
        model.ecg_encoder(torch.randn(2, 8, 2500))


def test_checkpoint_runs_on_other_lengths_and_frame_counts():
    """Positional embeddings interpolate: the same weights take 8 s ECGs and 50-frame, 64-px cines."""
    model = PTACLModel(MODEL_PRESETS["tiny"])
    tokens, _ = model.ecg_encoder(torch.randn(1, 12, 2000))
    assert tokens.shape == (1, 1, 80, 64)
    cine_tokens, _ = model.cmr_encoder(torch.rand(1, 50, 72, 72))
    assert cine_tokens.shape == (1, 25, 9, 64)


def test_patchify_roundtrip_order():
    encoder = CmrEncoder(MODEL_PRESETS["tiny"].cmr)
    cine = torch.arange(24 * 48 * 48, dtype=torch.float32).reshape(1, 24, 48, 48)
    patches = encoder.patchify(cine)  # (1, T', S', p*p)
    assert patches.shape == (1, 12, 4, 1152)  # (frames, rows, columns) of a 2 x 24 x 24 tubelet
    assert torch.equal(patches[0, 3, 3].reshape(2, 24, 24), cine[0, 6:8, 24:48, 24:48])  # row 1, column 1 of the grid
    ecg_encoder = EcgEncoder(MODEL_PRESETS["tiny"].ecg)
    ecg = torch.arange(12 * 2500, dtype=torch.float32).reshape(1, 12, 2500)
    patches = ecg_encoder.patchify(ecg)  # (1, 1, 100, 12 * 25): lead-major within a token
    assert patches.shape == (1, 1, 100, 300)
    assert torch.equal(patches[0, 0, 7].reshape(12, 25), ecg[0, :, 175:200])
    per_lead = EcgEncoder(EcgEncoderConfig(patch_samples=50, n_times=50, token_leads=1))
    assert torch.equal(per_lead.patchify(ecg)[0, 4, 7], ecg[0, 4, 350:400])
    pairs = EcgEncoder(EcgEncoderConfig(patch_samples=25, token_leads=2)).patchify(ecg)  # 6 groups of 2 leads
    assert pairs.shape == (1, 6, 100, 50) and torch.equal(pairs[0, 2, 3].reshape(2, 25), ecg[0, 4:6, 75:100])


def test_mae_learns_on_a_fixed_batch():
    torch.manual_seed(0)
    mae = MaskedAutoencoder(EcgEncoder(MODEL_PRESETS["tiny"].ecg), mask_ratio=0.5)
    t = torch.arange(2500) / 250.0
    ecg = torch.sin(2 * torch.pi * 1.2 * t).expand(4, 12, 2500).clone()
    optimizer = torch.optim.AdamW(mae.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = mae(ecg)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.3 * losses[0]


def test_killed_run_resumes_to_the_same_weights(tiny_cache, tmp_path):
    whole = train(_config(tiny_cache, tmp_path, name="whole"), progress=False)
    train(_config(tiny_cache, tmp_path, name="killed"), progress=False, stop_after_epochs=1)
    state = torch.load(tmp_path / "killed/checkpoints/last.pt", weights_only=True)
    assert state["epoch"] == 0
    resumed = train(_config(tiny_cache, tmp_path, name="killed"), progress=False)
    a = torch.load(whole / "checkpoints/last.pt", weights_only=True)["objective"]
    b = torch.load(resumed / "checkpoints/last.pt", weights_only=True)["objective"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    metrics = (resumed / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 3 and metrics[0].startswith("epoch,loss,val_loss,val_local_own,val_local_other,val_margin,global,local")
    environment = json.loads((resumed / "environment.json").read_text())
    assert environment["data_fingerprint"] == Cache.open(tiny_cache).fingerprint and environment["packages"]["torch"]
    geometry = environment["geometry"]
    assert geometry["num_bins"] == 7 and geometry["token_ms"] == pytest.approx(100.0)
    assert 0 <= geometry["underfilled_fraction"] <= 1 and geometry["soft_sigma"] == pytest.approx(50 / geometry["median_rr_ms"])


def test_phase_clock_margin_is_logged_every_epoch(tiny_cache, tmp_path):
    import pandas as pd

    run = train(_config(tiny_cache, tmp_path, method="global", **{"optim.epochs": 1}), progress=False)
    metrics = pd.read_csv(run / "metrics.csv")
    row = metrics.iloc[-1]
    assert np.isfinite([row.val_local_own, row.val_local_other]).all()
    assert row.val_margin == pytest.approx(row.val_local_other - row.val_local_own, abs=1e-6)


def test_a_local_loss_with_bins_narrower_than_tokens_is_refused(tiny_cache, tmp_path):
    from ptacl_core.model.geometry import GeometryError

    with pytest.raises(GeometryError, match="narrower than an ECG token"):
        train(_config(tiny_cache, tmp_path, **{"loss.num_bins": 12}), progress=False)
    with pytest.warns(UserWarning, match="narrower than a token"):  # more than 5 % of patients: a warning
        train(_config(tiny_cache, tmp_path, name="warned", **{"loss.num_bins": 8, "optim.epochs": 1}), progress=False)
    # global-only has no local term: its K is only the diagnostics', never refused
    train(_config(tiny_cache, tmp_path, method="global", name="g", **{"loss.num_bins": 12, "optim.epochs": 1}), progress=False)


def test_mae_initialisation_loads_each_encoder_from_the_run_that_trained_it(tiny_cache, tmp_path):
    ecg_run = train(_config(tiny_cache, tmp_path, method="mae_ecg", **{"optim.epochs": 1}), progress=False)
    cmr_run = train(_config(tiny_cache, tmp_path, method="mae_cmr", **{"optim.epochs": 1}), progress=False)
    with pytest.raises(ValueError, match="gives no CMR encoder"):
        train(_config(tiny_cache, tmp_path, method="ptacl_mae", init_from=str(ecg_run)), progress=False)
    run = train(_config(tiny_cache, tmp_path, method="ptacl_mae", init_from=f"{ecg_run},{cmr_run}",
                        **{"optim.epochs": 1, "optim.lr": 0.0, "optim.weight_decay": 0.0}), progress=False)
    started = torch.load(run / "checkpoints/last.pt", weights_only=True)["objective"]
    ecg = torch.load(ecg_run / "checkpoints/last.pt", weights_only=True)["objective"]
    cmr = torch.load(cmr_run / "checkpoints/last.pt", weights_only=True)["objective"]
    key_e, key_c = "model.ecg_encoder.blocks.0.attn.qkv.weight", "model.cmr_encoder.blocks.0.attn.qkv.weight"
    assert torch.equal(started[key_e], ecg[key_e]) and torch.equal(started[key_c], cmr[key_c])  # lr 0: as loaded
    assert not torch.equal(ecg[key_c], cmr[key_c])  # the ECG MAE's cine encoder (random) was not taken


@pytest.mark.parametrize("method", ["global", "local", "mae_ecg", "mae_cmr", "supervised", "ptacl_cross", "ptacl_sham",
                                    "ptacl_noaug"])
def test_every_method_trains_one_epoch(tiny_cache, tmp_path, method):
    run = train(_config(tiny_cache, tmp_path, method=method, **{"optim.epochs": 1}), progress=False)
    loss = float((run / "metrics.csv").read_text().splitlines()[1].split(",")[1])
    assert np.isfinite(loss)
    model, config = load_model(run)
    assert isinstance(model, PTACLModel) and config.method == method


def test_config_errors_are_clear(tiny_cache, tmp_path):
    with pytest.raises(ValueError, match="method must be one of"):
        TrainConfig(method="clip")
    with pytest.raises(ValueError, match="unknown config key"):
        TrainConfig().with_overrides(["optim.epoch=3"])
    with pytest.raises(ValueError, match="unknown config section"):
        TrainConfig().with_overrides(["optimiser.epochs=3"])
    with pytest.raises(ValueError, match="key=value"):
        TrainConfig().with_overrides(["optim.epochs"])
    with pytest.raises(ValueError, match="does not fit model preset 'paper'"):
        train(_config(tiny_cache, tmp_path, preset="paper"), progress=False)
    train(_config(tiny_cache, tmp_path, name="r", **{"optim.epochs": 1}), progress=False)
    with pytest.raises(ValueError, match="another config"):
        train(_config(tiny_cache, tmp_path, name="r", **{"optim.epochs": 1, "loss.lam": 0.5}), progress=False)


def test_config_file_and_overrides(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"method": "global", "optim": {"epochs": 4}, "model": {"ecg": {"depth": 1}}}))
    config = load_config(path, ["loss.soft_sigma=0.05", "augment=false"])
    assert config.method == "global" and config.optim.epochs == 4 and config.model.ecg.depth == 1
    assert config.loss.soft_sigma == 0.05 and config.augment is False
    assert config.model.cmr == MODEL_PRESETS["tiny"].cmr


def test_quick_probe_runs_on_models(tiny_cache, tmp_path):
    models = {("random", 0): PTACLModel(MODEL_PRESETS["tiny"]), ("random", 1): PTACLModel(MODEL_PRESETS["tiny"])}
    table = quick_probe(models, Cache.open(tiny_cache), store=tmp_path)
    assert list(table.columns) == ["method", "seed", "LVEF_pct", "LVEDV_mL"] and len(table) == 2
    assert np.isfinite(table[["LVEF_pct", "LVEDV_mL"]].to_numpy()).all()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ptacl", "global"])  # global-only leaves the token norms without gradients
def test_the_train_command_runs_ddp_under_torchrun(tiny_cache, tmp_path, method):
    """The same command under torchrun: 2 processes, gloo on CPU, one run folder written by rank 0."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "ptacl_core", "train",
               f"cache={tiny_cache}", f"runs_dir={tmp_path}", "name=ddp", f"method={method}", "optim.epochs=1",
               "optim.batch_size=8", "--no-progress"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = (tmp_path / "ddp/metrics.csv").read_text().splitlines()
    assert len(rows) == 2 and np.isfinite(float(rows[1].split(",")[1]))
    assert torch.load(tmp_path / "ddp/checkpoints/last.pt", weights_only=True)["epoch"] == 0


def test_a_finished_run_resumes_whatever_its_thread_setting(tiny_cache, tmp_path):
    """Execution settings (threads, workers, device) are not part of what a run is; the loss is."""
    train(_config(tiny_cache, tmp_path, name="r", **{"optim.epochs": 1}), progress=False)
    train(_config(tiny_cache, tmp_path, name="r", threads=1, **{"optim.epochs": 1}), progress=False)
    with pytest.raises(ValueError, match="another config"):
        train(_config(tiny_cache, tmp_path, name="r", **{"optim.epochs": 1, "loss.lam": 0.5}), progress=False)

