"""The CUDA path's dtype logic without a GPU: training under bf16 autocast on CPU (``optim.amp=bf16``) keeps
float32 weights, gives finite losses close to float32 training, and saves bf16 activations; the memory estimator of
``benchmarks/gpu_check.py`` counts saved activations exactly (against a hand count on a small network)."""

import importlib.util

import pandas as pd
import pytest
import torch

from ptacl_core import paths
from ptacl_core.training import TrainConfig, run_name
from ptacl_core.training.loop import train
from ptacl_core.training.runs import read_checkpoint


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", paths.project_root() / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_bf16_autocast_trains_on_cpu_with_float32_weights(tiny_cache, tmp_path):
    losses = {}
    for amp in ("off", "bf16"):
        config = TrainConfig(method="ptacl", cache=str(tiny_cache), runs_dir=str(tmp_path / amp), device="cpu",
                             name=run_name("ptacl", "tiny", 0), threads=1)
        folder = train(config.with_overrides({"optim.epochs": 2, "optim.batch_size": 8, "optim.amp": amp}), progress=False)
        losses[amp] = pd.read_csv(folder / "metrics.csv")
        state = read_checkpoint(folder)["objective"]
        assert {str(v.dtype) for v in state.values() if v.is_floating_point()} == {"torch.float32"}, amp
    bf16, fp32 = losses["bf16"], losses["off"]
    assert bf16.loss.notna().all() and bf16.val_loss.map(float).map(abs).lt(float("inf")).all()
    # bf16 keeps 8 bits of mantissa: the same run's losses agree to a few per cent, not exactly
    assert ((bf16.loss - fp32.loss).abs() / fp32.loss.abs()).max() < 0.05
    assert not bf16.loss.equals(fp32.loss)  # autocast really ran in bf16


def test_saved_activation_bytes_match_a_hand_count():
    gpu_check = _gpu_check()

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.first, self.second = torch.nn.Linear(16, 32), torch.nn.Linear(32, 4)

        def forward(self, data):
            return self.second(torch.relu(self.first(data["x"]))).square().mean(), {}

    net = Net()
    batch = 5
    total, dtypes = gpu_check.saved_bytes(net, {"x": torch.randn(batch, 16)}, "cpu")
    # under bf16 autocast, in bytes of bf16: the first linear's input (B x 16; its weight needs no copy since the
    # input needs no gradient), the relu output (B x 32: saved by relu and by the second linear, counted once), the
    # second linear's bf16 weight copy (32 x 4, for the gradient of its input) and its output (B x 4, for square)
    hand = 2 * (batch * 16 + batch * 32 + 32 * 4 + batch * 4)
    assert total == hand
    assert "bfloat16" in dtypes
    one, _ = gpu_check.saved_bytes(net, {"x": torch.randn(1, 16)}, "cpu")
    two, _ = gpu_check.saved_bytes(net, {"x": torch.randn(2, 16)}, "cpu")
    assert two - one > 0  # activations grow with the batch; the weight copies do not
