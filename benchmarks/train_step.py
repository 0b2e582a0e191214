"""Training step throughput on this machine's CPU: pairs/s, FLOPs per pair and MFU (PTACL objective).

Rows, each in its own process (so the peak resident memory and the thread setting are that row's):

- ``tiny-v1``: the tiny model before issue 11 (600 ECG tokens of 1 lead x 200 ms, 400 cine tubelets of 12 px),
  the baseline, at the thread count torch picks by default;
- ``tiny``: today's tiny preset (100 ECG tokens of 12 leads x 100 ms, 100 tubelets of 24 px) with the same threads,
  and (``tiny-1t``) with one intra-op thread (``TrainConfig.threads=1``, for a machine busy with other work);
- ``paper``: ViT-B class, a few steps at a small batch, to size it, not to train on CPU.

FLOPs per pair are counted by ``torch.utils.flop_counter.FlopCounterMode`` over one forward + backward of the
objective (matmuls, convolutions, attention; torch's own SDPA formulas, mapped onto the CPU flash-attention ops
that the counter does not list). MFU here is the achieved FLOP/s (FLOPs per step / step time) divided by a float32
2048 x 2048 matmul's FLOP/s measured in the same process with the same threads: utilisation of what this machine's
BLAS attains, not of the CPU's theoretical peak (it reads higher than a datasheet MFU would). Random inputs of the
preset's shapes; the median step of ``--steps`` after one warm-up step.

    python benchmarks/train_step.py [--steps 8] [--rows tiny-v1,tiny,tiny-1t,paper]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

# row -> (model, batch, ECG samples, cine frames, image px, fs, intra-op threads: 0 = torch's default)
ROWS = {
    "tiny-v1": ("tiny-v1", 32, 2500, 25, 48, 250.0, 0),
    "tiny": ("tiny", 32, 2500, 25, 48, 250.0, 0),
    "tiny-1t": ("tiny", 32, 2500, 25, 48, 250.0, 1),
    "paper": ("paper", 4, 5000, 50, 64, 500.0, 0),
}
MATMUL_SIZE = 2048


def matmul_flops_per_s(repeats: int = 5) -> float:
    """Best-of float32 (n x n) @ (n x n) throughput in FLOP/s with the current thread setting."""
    import torch

    a, b = torch.randn(MATMUL_SIZE, MATMUL_SIZE), torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * MATMUL_SIZE ** 3 / best


def cpu_attention_formulas() -> dict:
    """FlopCounterMode's SDPA formulas for the CPU flash-attention kernels (torch 2.13 counts only the CUDA ones)."""
    import torch
    from torch.utils import flop_counter

    def forward(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)

    def backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)

    aten = torch.ops.aten
    return {aten._scaled_dot_product_flash_attention_for_cpu: forward,
            aten._scaled_dot_product_flash_attention_for_cpu_backward: backward}


def measure(row: str, steps: int) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ptacl_core.encoders import MODEL_PRESETS, TINY_V1
    from ptacl_core.training.config import TrainConfig
    from ptacl_core.training.objective import Objective

    model_name, batch, length, frames, size, fs, threads = ROWS[row]
    if threads:
        torch.set_num_threads(threads)
    model = TINY_V1 if model_name == "tiny-v1" else MODEL_PRESETS[model_name]
    preset = "paper" if model_name == "paper" else "tiny"
    config = TrainConfig(method="ptacl").with_overrides({"preset": preset})  # the preset's model and K
    config = TrainConfig.from_dict({**config.to_dict(), "model": model.to_dict()})
    torch.manual_seed(0)
    objective = Objective(config, fs, (torch.zeros(10), torch.ones(10)))
    optimizer = torch.optim.AdamW(objective.parameters(), lr=1e-4)
    rpeaks = torch.full((batch, 48), -1, dtype=torch.long)
    beats = torch.arange(0, length, int(0.85 * fs))
    rpeaks[:, : len(beats)] = beats
    data = {"ecg": torch.randn(batch, 12, length), "cmr": torch.rand(batch, frames, size, size), "rpeaks": rpeaks}

    def step() -> None:
        loss, _ = objective(data)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    counter = FlopCounterMode(display=False, custom_mapping=cpu_attention_formulas())
    with counter:
        step()  # also the warm-up
    flops_per_step = counter.get_total_flops()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    peak = matmul_flops_per_s()
    return {"row": row, "model": model_name, "batch": batch, "threads": torch.get_num_threads(),
            "parameters_M": sum(p.numel() for p in objective.parameters()) / 1e6, "step_s": seconds,
            "pairs_per_s": batch / seconds, "gflop_per_pair": flops_per_step / batch / 1e9,
            "achieved_gflop_s": flops_per_step / seconds / 1e9, "matmul_gflop_s": peak / 1e9,
            "mfu": flops_per_step / seconds / peak,
            "peak_rss_GB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, from {list(ROWS)}")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.steps)))
        return
    results = {}
    for row in [r.strip() for r in args.rows.split(",") if r.strip()]:
        if row not in ROWS:
            parser.error(f"unknown row {row!r}; rows: {list(ROWS)}")
        steps = min(args.steps, 3) if row == "paper" else args.steps
        output = subprocess.run([sys.executable, __file__, "--one", row, "--steps", str(steps)],
                                capture_output=True, text=True, check=True).stdout
        result = results[row] = json.loads(output.strip().splitlines()[-1])
        print(f"{row:8s} {result['parameters_M']:6.2f} M params, batch {result['batch']:3d}, {result['threads']} thread(s): "
              f"{result['pairs_per_s']:7.1f} pairs/s ({result['step_s']:.3f} s/step), "
              f"{result['gflop_per_pair']:.3f} GFLOP/pair, {result['achieved_gflop_s']:6.1f} GFLOP/s vs matmul "
              f"{result['matmul_gflop_s']:6.1f} -> MFU (vs measured matmul) {100 * result['mfu']:4.1f} %, peak RSS {result['peak_rss_GB']:.2f} GB",
              flush=True)
    if "tiny-v1" in results:
        base = results["tiny-v1"]["pairs_per_s"]
        for row in ("tiny", "tiny-1t"):
            if row in results:
                print(f"speed-up of {row} over tiny-v1 (same run): {results[row]['pairs_per_s'] / base:.1f}x")


if __name__ == "__main__":
    main()
