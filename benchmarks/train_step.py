"""Training step throughput on this machine's CPU: pairs/s, FLOPs per pair and MFU (PTACL objective).

Rows (the CPU rows are timed in one process, interleaved step by step, so a shared machine's load hits them alike;
peak resident memory is measured per row in its own process):

- ``tiny-v1``: the tiny model and step before issue 11 (600 ECG tokens of 1 lead x 200 ms, 400 cine tubelets of
  12 px, 4 heads, the per-parameter AdamW loop; its tubelet embedding is today's linear one, the same map as the
  former Conv3d), the baseline, at the thread count torch picks by default;
- ``tiny``: today's tiny preset (100 ECG tokens of 12 leads x 100 ms, 100 tubelets of 24 px, 2 heads, fused AdamW
  as the trainer uses it) with the same threads,
  and (``tiny-1t``) with one intra-op thread (``TrainConfig.threads=1``, for a machine busy with other work);
- ``paper``: ViT-B class, a few steps at a small batch, to size it, not to train on CPU.

FLOPs per pair are counted by ``torch.utils.flop_counter.FlopCounterMode`` over one forward + backward of the
objective (matmuls, convolutions, attention; torch's own SDPA formulas, mapped onto the CPU flash-attention ops
that the counter does not list). MFU here is the achieved FLOP/s (FLOPs per step / step time) divided by a float32
2048 x 2048 matmul's FLOP/s measured in the same process with the same threads: utilisation of what this machine's
BLAS attains, not of the CPU's theoretical peak (it reads higher than a datasheet MFU would). Random inputs of the
preset's shapes; the median step of ``--steps`` after one warm-up step.

    python benchmarks/train_step.py [--steps 12] [--rows tiny-v1,tiny,tiny-1t,paper]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

# row -> (model, batch, ECG samples, cine frames, image px, fs, intra-op threads: 0 = torch's default)
ROWS = {
    "tiny-v1": ("tiny-v1", 32, 2500, 25, 48, 250.0, 0),
    "tiny": ("tiny", 32, 2500, 24, 48, 250.0, 0),
    "tiny-1t": ("tiny", 32, 2500, 24, 48, 250.0, 1),
    "paper": ("paper", 4, 5000, 50, 64, 500.0, 0),
}
MATMUL_SIZE = 2048
DEFAULT_THREADS = torch.get_num_threads()  # torch's default on this machine, restored between rows


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


def build(row: str):
    """(objective step function, FLOPs per step, batch, parameters in M) of one row, on random inputs."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ptacl_core.model.encoders import MODEL_PRESETS, TINY_V1
    from ptacl_core.training.config import TrainConfig
    from ptacl_core.training.objective import build_objective

    model_name, batch, length, frames, size, fs, _threads = ROWS[row]
    model = TINY_V1 if model_name == "tiny-v1" else MODEL_PRESETS[model_name]
    preset = "paper" if model_name == "paper" else "tiny"
    config = TrainConfig(method="ptacl").with_overrides({"preset": preset})  # the preset's model and K
    config = TrainConfig.from_dict({**config.to_dict(), "model": model.to_dict()})
    torch.manual_seed(0)
    objective = build_objective(config, fs, (torch.zeros(10), torch.ones(10)))
    optimizer = torch.optim.AdamW(objective.parameters(), lr=1e-4, fused=model_name != "tiny-v1")  # as the trainer
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
    return step, counter.get_total_flops(), batch, sum(p.numel() for p in objective.parameters()) / 1e6


def set_threads(row: str) -> None:
    import torch

    threads = ROWS[row][-1]
    torch.set_num_threads(threads or DEFAULT_THREADS)


def measure(rows: list[str], steps: int) -> dict:
    """Time ``rows`` in one process, interleaved step by step (row A, row B, ..., then again): on a shared, noisy
    machine every row sees the same load, so their ratio is meaningful. The matmul reference likewise per thread
    setting. Peak memory is measured per row in its own process (``memory``)."""
    built = {}
    for row in rows:
        set_threads(row)
        built[row] = build(row)
    times = {row: [] for row in rows}
    peaks = {row: [] for row in rows}
    for _ in range(steps):
        for row in rows:
            set_threads(row)
            step = built[row][0]
            start = time.perf_counter()
            step()
            times[row].append(time.perf_counter() - start)
    for _ in range(3):
        for row in rows:
            set_threads(row)
            peaks[row].append(matmul_flops_per_s(repeats=2))
    out = {}
    for row in rows:
        import torch

        set_threads(row)
        _, flops, batch, parameters = built[row]
        seconds, peak = statistics.median(times[row]), max(peaks[row])
        out[row] = {"row": row, "batch": batch, "threads": torch.get_num_threads(), "parameters_M": parameters,
                    "step_s": seconds, "pairs_per_s": batch / seconds, "gflop_per_pair": flops / batch / 1e9,
                    "achieved_gflop_s": flops / seconds / 1e9, "matmul_gflop_s": peak / 1e9, "mfu": flops / seconds / peak}
    return out


def memory(row: str) -> float:
    """Peak resident memory (GB) of a few training steps of ``row`` alone."""
    set_threads(row)
    step = build(row)[0]
    step()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, from {list(ROWS)}")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--memory", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory:
        print(json.dumps({"peak_rss_GB": memory(args.memory)}))
        return
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown row(s) {unknown}; rows: {list(ROWS)}")
    if args.one:
        print(json.dumps(measure(args.one.split(","), args.steps)))
        return
    cpu_rows = [r for r in rows if r != "paper"]
    groups = ([cpu_rows] if cpu_rows else []) + ([["paper"]] if "paper" in rows else [])
    results = {}
    for group in groups:
        steps = min(args.steps, 3) if group == ["paper"] else args.steps
        output = subprocess.run([sys.executable, __file__, "--one", ",".join(group), "--steps", str(steps)],
                                capture_output=True, text=True, check=True).stdout
        results.update(json.loads(output.strip().splitlines()[-1]))
    for row in rows:
        result = results[row]
        output = subprocess.run([sys.executable, __file__, "--memory", row], capture_output=True, text=True, check=True).stdout
        result["peak_rss_GB"] = json.loads(output.strip().splitlines()[-1])["peak_rss_GB"]
        print(f"{row:8s} {result['parameters_M']:6.2f} M params, batch {result['batch']:3d}, {result['threads']} thread(s): "
              f"{result['pairs_per_s']:7.1f} pairs/s ({result['step_s']:.3f} s/step), "
              f"{result['gflop_per_pair']:.3f} GFLOP/pair, {result['achieved_gflop_s']:6.1f} GFLOP/s vs matmul "
              f"{result['matmul_gflop_s']:6.1f} -> MFU (vs measured matmul) {100 * result['mfu']:4.1f} %, "
              f"peak RSS {result['peak_rss_GB']:.2f} GB", flush=True)
    if "tiny-v1" in results:
        base = results["tiny-v1"]["pairs_per_s"]
        for row in ("tiny", "tiny-1t"):
            if row in results:
                print(f"speed-up of {row} over tiny-v1 (timed interleaved, same process): "
                      f"{results[row]['pairs_per_s'] / base:.1f}x")


if __name__ == "__main__":
    main()
