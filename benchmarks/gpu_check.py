"""GPU readiness of the paper preset in one run (under 10 minutes on one GPU node):

- bf16 training throughput (pairs/s, ms/step) and MFU (FLOPs counted by ``torch.utils.flop_counter``, forward +
  backward, against the GPU's dense bf16 peak: H100/H200 SXM 989 TFLOP/s, else pass ``--peak-tflops``);
- peak GPU memory at ``--batch`` (the paper profile's 128), beside the estimate the CPU path makes (below), so a
  lent GPU checks the estimator;
- the loader's feed rate: pairs/s the DataLoader delivers from a paper-preset cache (``--cache``, else a
  64-subject synthetic cohort built here) with 0 workers and with ``--workers`` (the paper config's 8), against
  the step's consumption;
- DDP with NCCL when two or more GPUs are visible (torchrun on all of them): throughput and whether every rank
  sees the same global loss.

Without a GPU (``--cpu``, what a session without a device can check): the same objective trains a few steps of the
paper preset on CPU under bf16 autocast (the CUDA path's dtype logic: bf16 activations, float32 master weights and
gradients, finite loss), and its memory at ``--batch`` is estimated from batches of 1 and 2: float32 parameters,
gradients and the two AdamW moments, plus the bytes autograd saves for backward (every tensor packed by
``torch.autograd.graph.saved_tensors_hooks``, parameters excluded) extrapolated linearly in the batch.

    python benchmarks/gpu_check.py [--batch 128] [--steps 10] [--workers 8] [--cache DIR] [--peak-tflops 989]
    python benchmarks/gpu_check.py --cpu [--steps 1]   # ~5 min on 2 cores without AVX512-BF16
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ptacl_core.model.encoders import MODEL_PRESETS
from ptacl_core.training.config import TrainConfig
from ptacl_core.training.objective import build_objective

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}
GIB = 2**30


def paper_objective(device: torch.device):
    config = TrainConfig(method="ptacl", preset="paper", model=MODEL_PRESETS["paper"])
    return build_objective(config, 500.0, (torch.zeros(10), torch.ones(10))).to(device)


def make_batch(batch: int, device) -> dict:
    """Random inputs of the paper preset's shapes: 500 Hz x 10 s ECG, 50 frames of 64 px, R peaks every 860 ms."""
    rpeaks = torch.full((batch, 48), -1, dtype=torch.long)
    beats = torch.arange(200, 5000, 430)
    rpeaks[:, : len(beats)] = beats
    return {"ecg": torch.randn(batch, 12, 5000, device=device), "cmr": torch.rand(batch, 50, 64, 64, device=device),
            "rpeaks": rpeaks.to(device)}


def step(module, optimizer, data, device_type: str) -> torch.Tensor:
    with torch.autocast(device_type, dtype=torch.bfloat16):
        loss, _ = module(data)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def saved_bytes(objective, data, device_type: str) -> tuple[int, set]:
    """Bytes autograd saves for backward in one bf16 forward (parameters excluded), and the saved dtypes."""
    parameters = {p.data_ptr() for p in objective.parameters()}
    total, dtypes, seen = 0, set(), set()

    def pack(tensor):
        nonlocal total
        key = (tensor.data_ptr(), tensor.dtype, tuple(tensor.shape))
        if tensor.data_ptr() not in parameters and key not in seen:
            seen.add(key)
            total += tensor.numel() * tensor.element_size()
            dtypes.add(str(tensor.dtype).replace("torch.", ""))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        with torch.autocast(device_type, dtype=torch.bfloat16):
            loss, _ = objective(data)  # the graph is built (and its tensors saved) by the forward alone
    del loss
    return total, dtypes


def memory_estimate(objective, device: torch.device, target: int) -> dict:
    """Training memory at batch ``target``: static (fp32 weights, grads, AdamW moments) + saved activations
    extrapolated from batches 1 and 2."""
    n_parameters = sum(p.numel() for p in objective.parameters() if p.requires_grad)
    static = n_parameters * 4 * 4  # weights, gradients, exp_avg, exp_avg_sq: float32 each
    one, dtypes = saved_bytes(objective, make_batch(1, device), device.type)
    two, _ = saved_bytes(objective, make_batch(2, device), device.type)
    per_pair, fixed = two - one, 2 * one - two
    return {"parameters": n_parameters, "static_gib": static / GIB, "activation_gib_per_pair": per_pair / GIB,
            "estimate_gib": (static + fixed + per_pair * target) / GIB, "saved_dtypes": sorted(dtypes)}


def cpu_check(args) -> None:
    device = torch.device("cpu")
    torch.manual_seed(0)
    objective = paper_objective(device)
    optimizer = torch.optim.AdamW(objective.parameters(), lr=1e-4)
    data = make_batch(1, device)  # batch 1: this CPU may emulate bf16 (~5x slower than float32 without AVX512-BF16)
    losses, start = [], time.perf_counter()
    for _ in range(args.steps):
        losses.append(float(step(objective, optimizer, data, "cpu")))
    seconds = (time.perf_counter() - start) / args.steps
    dtypes = {str(p.dtype) for p in objective.parameters()} | {str(p.grad.dtype) for p in objective.parameters() if p.grad is not None}
    finite = all(torch.isfinite(torch.tensor(losses)))
    print(f"paper preset on CPU, bf16 autocast, batch 1: {args.steps} step(s), {seconds:.1f} s/step, losses "
          f"{', '.join(f'{v:.4f}' for v in losses)} (finite: {finite}); weights and gradients {sorted(dtypes)}")
    estimate = memory_estimate(objective, device, args.batch)
    print(f"memory at batch {args.batch} (estimate): {estimate['estimate_gib']:.1f} GiB = {estimate['static_gib']:.1f} GiB "
          f"static ({estimate['parameters'] / 1e6:.0f} M parameters: fp32 weights, grads, AdamW moments) + "
          f"{estimate['activation_gib_per_pair'] * 1024:.0f} MiB of saved activations per pair "
          f"(saved dtypes: {', '.join(estimate['saved_dtypes'])})")
    if not finite:
        raise SystemExit("a bf16 loss was not finite")


def loader_rate(cache: Path, batch: int, workers: int, batches: int) -> float:
    from ptacl_core.preprocessing.dataset import Augmentation, CacheDataset, batch_loader

    dataset = CacheDataset(cache, "train", Augmentation(ecg_amplitude=0.1))
    loader = batch_loader(dataset, min(batch, len(dataset)), shuffle=True, generator=torch.Generator().manual_seed(0),
                          num_workers=workers)
    pairs, start, iterator = 0, None, iter(loader)
    for index in range(batches + 1):
        try:
            item = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            item = next(iterator)
        if index == 0:
            start = time.perf_counter()  # the first batch pays the workers' start-up
            continue
        pairs += len(item["ecg"])
    return pairs / (time.perf_counter() - start)


def small_paper_cache(folder: Path) -> Path:
    from ptacl_core.preprocessing.build import build_cache
    from ptacl_core.preprocessing.config import PreprocessConfig
    from ptacl_core.synthetic import generate_cohort

    generate_cohort(folder / "cohort", 64, seed=0, progress=False)
    build_cache(folder / "cohort", folder / "cache", PreprocessConfig.preset("default"), progress=False)
    return folder / "cache"


def gpu_check(args) -> None:
    device = torch.device("cuda", 0)
    torch.cuda.set_device(device)
    torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name(device)
    objective = paper_objective(device)
    estimate = memory_estimate(objective, device, args.batch)
    optimizer = torch.optim.AdamW(objective.parameters(), lr=1e-4, fused=True)
    batch = args.batch
    while True:
        try:
            data = make_batch(batch, device)
            for _ in range(2):
                step(objective, optimizer, data, "cuda")
            break
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            print(f"batch {batch}: out of memory; trying {batch // 2}")
            batch //= 2
            if batch < 1:
                raise
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step(objective, optimizer, data, "cuda")
    flops = counter.get_total_flops()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        step(objective, optimizer, data, "cuda")
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / args.steps
    peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    achieved = flops / seconds / 1e12
    mfu = f"{100 * achieved / peak:.1f} % of {peak:.0f} TFLOP/s" if peak else "peak unknown (pass --peak-tflops)"
    step_rate = batch / seconds
    print(f"{name}: paper preset, batch {batch}, bf16: {seconds * 1000:.0f} ms/step, {step_rate:.0f} pairs/s, "
          f"{flops / 1e12:.2f} TFLOP/step, {achieved:.0f} TFLOP/s, MFU {mfu}")
    print(f"peak memory {torch.cuda.max_memory_allocated(device) / GIB:.1f} GiB at batch {batch} "
          f"(estimate for batch {args.batch}: {estimate['estimate_gib']:.1f} GiB)")
    with tempfile.TemporaryDirectory() as scratch:
        cache = args.cache or small_paper_cache(Path(scratch))
        for workers in dict.fromkeys((0, args.workers)):
            rate = loader_rate(cache, batch, workers, batches=10)
            print(f"loader, {workers} workers: {rate:.0f} pairs/s ({rate / step_rate:.2f} x what the step consumes)")
    if torch.cuda.device_count() >= 2:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={torch.cuda.device_count()}", __file__, "--ddp-worker", "--steps", "5",
                   "--batch", str(min(batch, 64))]
        subprocess.run(command, check=True)
    else:
        print("DDP: one GPU visible; skipped")


def ddp_worker(args) -> None:
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    torch.cuda.set_device(device)
    torch.distributed.init_process_group("nccl")
    objective = paper_objective(device)
    module = torch.nn.parallel.DistributedDataParallel(objective, device_ids=[device.index])
    optimizer = torch.optim.AdamW(objective.parameters(), lr=1e-4, fused=True)
    torch.manual_seed(rank)
    data = make_batch(args.batch, device)
    for _ in range(2):
        step(module, optimizer, data, "cuda")
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step(module, optimizer, data, "cuda")
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / args.steps
    losses = [torch.zeros_like(loss) for _ in range(world)]
    torch.distributed.all_gather(losses, loss)
    if rank == 0:
        same = all(torch.allclose(losses[0], other) for other in losses)
        print(f"DDP nccl x{world}: {args.batch * world / seconds:.0f} pairs/s total ({args.batch} per GPU), "
              f"{seconds * 1000:.0f} ms/step; global loss identical on all ranks: {same}")
    torch.distributed.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128, help="pairs per GPU (the paper profile's 128)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 10 on GPU, 1 on CPU)")
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers to measure (configs/paper_ptacl.json: 8)")
    parser.add_argument("--cache", type=Path, help="a paper-preset cache for the loader rate (default: built here)")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--cpu", action="store_true", help="no GPU: bf16 on CPU and the memory estimate")
    parser.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ddp_worker:
        args.steps = args.steps or 5
        return ddp_worker(args)
    if args.cpu:
        args.steps = args.steps or 1
        return cpu_check(args)
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --cpu for the CPU checks")
    args.steps = args.steps or 10
    gpu_check(args)


if __name__ == "__main__":
    main()
