"""The 1-D ResNet ECG encoder (``model.ecg.architecture = "resnet"``): the ViT's token layout and time centres
(checked on the receptive fields by brute-force gradients), its parameter count, the local loss and training
through it, and the configs it refuses."""

import numpy as np
import pytest
import torch

import ptacl_core.model.encoders as encoders
from ptacl_core.model.encoders import (
    MODEL_PRESETS,
    EcgEncoderConfig,
    EcgResNet,
    ModelConfig,
    PTACLModel,
    resnet_strides,
)
from ptacl_core.training import TrainConfig, run_name
from ptacl_core.training.loop import train


def test_strides_multiply_to_one_token():
    for total in (1, 20, 25, 50, 7, 12):
        strides = resnet_strides(total)
        assert int(np.prod(strides)) == total and strides == sorted(strides, reverse=True)


def test_outputs_are_the_vit_token_grid_with_receptive_fields_centred_on_their_times(monkeypatch):
    """With the norms taken out (they share statistics over time), the gradient support of output position t is
    the receptive field of the strided convolutions: its centre must be the sample token_times_s names."""
    monkeypatch.setattr(encoders, "_group_norm", lambda channels: torch.nn.Identity())
    torch.manual_seed(0)
    config = EcgEncoderConfig(architecture="resnet", depth=1)
    model = EcgResNet(config).double()
    fs, length = 250.0, 2510  # a tail shorter than a token is dropped, as the ViT drops it
    x = torch.randn(1, 12, length, dtype=torch.float64, requires_grad=True)
    captured = {}
    model.blocks.register_forward_hook(lambda module, inputs, output: captured.update(hidden=output))
    model(x)
    hidden = captured["hidden"]
    times = model.token_times_s(length, fs)
    vit_times = encoders.EcgEncoder(EcgEncoderConfig()).token_times_s(length, fs)
    assert hidden.shape[-1] == length // config.patch_samples == len(times)
    assert torch.allclose(times, vit_times, atol=0.5 / fs)  # the ViT's token centres, to half a sample
    for t in (20, 50, 80):  # away from the borders, where padding clips the field
        gradient, = torch.autograd.grad(hidden[0, :, t].sum(), x, retain_graph=True)
        support = torch.nonzero(gradient.abs().sum(dim=1)[0] > 0).ravel()
        assert (support.min() + support.max()).item() / 2 == pytest.approx(float(times[t]) * fs)


def test_parameter_count_matches_the_module():
    for config in (EcgEncoderConfig(architecture="resnet"), EcgEncoderConfig(architecture="resnet", dim=32, depth=3,
                                                                            patch_samples=20)):
        assert config.parameter_count() == sum(p.numel() for p in EcgResNet(config).parameters())


def test_the_local_loss_runs_through_the_resnet_and_training_finishes(tiny_cache, tmp_path):
    model = PTACLModel(MODEL_PRESETS["tiny_resnet"])
    batch = {"ecg": torch.randn(3, 12, 2500), "cmr": torch.rand(3, 24, 48, 48),
             "rpeaks": torch.tensor([[100, 330, 560, 790, 1020, 1250, 1480, 1710, 1940, 2170]] * 3)}
    features = model.phase_embeddings(batch, 250.0, num_bins=7)
    assert features.u_ecg.shape == (3, 7, 64) and features.mask.any()
    config = TrainConfig(method="ptacl", preset="tiny_resnet", cache=str(tiny_cache), runs_dir=str(tmp_path),
                         name=run_name("ptacl", "tiny_resnet", 0), device="cpu", threads=1)
    config = config.with_overrides({"preset": "tiny_resnet", "optim.epochs": 1, "optim.batch_size": 8})
    assert config.model.ecg.architecture == "resnet"
    folder = train(config, progress=False)
    assert (folder / "checkpoints" / "last.pt").exists()


def test_bad_resnet_configs_are_refused(tiny_cache, tmp_path):
    with pytest.raises(ValueError, match="architecture must be one of"):
        EcgEncoderConfig(architecture="lstm")
    with pytest.raises(ValueError, match="token_leads must be 12"):
        EcgEncoderConfig(architecture="resnet", token_leads=1)
    with pytest.raises(ValueError, match="unknown key|architecture"):
        ModelConfig.from_dict({"ecg": {"architecture": "transformer"}})
    config = TrainConfig(method="mae_ecg", cache=str(tiny_cache), runs_dir=str(tmp_path), name="mae_resnet", device="cpu")
    with pytest.raises(ValueError, match="masked autoencoding masks ViT tokens"):
        train(config.with_overrides({"preset": "tiny_resnet", "optim.epochs": 1, "optim.batch_size": 8}), progress=False)


def test_every_run_name_reads_back_whatever_underscores_method_and_preset_hold():
    """``ptacl_tiny_resnet_seed0`` is PTACL on the ResNet preset, not a method "ptacl_tiny" on a preset "resnet"
    (which left every ResNet run unfound by notebooks 03-05)."""
    from ptacl_core.methods import METHODS
    from ptacl_core.model.encoders import MODEL_PRESETS
    from ptacl_core.training.runs import parse_run_name, run_name

    for method in METHODS:
        for preset in MODEL_PRESETS:
            for fast in (False, True):
                assert parse_run_name(run_name(method, preset, 4, fast)) == {"method": method, "preset": preset,
                                                                             "seed": 4, "fast": fast}
    assert parse_run_name("ptacl_huge_seed0") is None  # an unknown preset is no comparison run
