"""GPU throughput of the paper preset: pairs/s and model FLOP utilisation with bf16 AMP, and a DDP smoke run.

One GPU:        python benchmarks/gpu_throughput.py [--batch 64] [--steps 20] [--peak-tflops 989]
DDP with NCCL:  torchrun --nproc_per_node=2 benchmarks/gpu_throughput.py --ddp --steps 5

Random inputs of the paper preset's shapes (500 Hz x 10 s ECG, 50 frames of 64 px); the PTACL objective
(global + local), AdamW. FLOPs per step are counted once with torch.utils.flop_counter (forward + backward);
MFU = achieved FLOP/s / the GPU's dense bf16 peak (H100/H200 SXM: 989 TFLOP/s; pass --peak-tflops otherwise).
The DDP run checks that every rank sees the same global loss (features are gathered across ranks).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from ptacl_core.model.encoders import MODEL_PRESETS
from ptacl_core.training.config import TrainConfig
from ptacl_core.training.objective import build_objective

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


def make_batch(batch: int, device) -> dict:
    rpeaks = torch.full((batch, 48), -1, dtype=torch.long)
    beats = torch.arange(200, 5000, 430)
    rpeaks[:, : len(beats)] = beats
    return {"ecg": torch.randn(batch, 12, 5000, device=device), "cmr": torch.rand(batch, 50, 64, 64, device=device),
            "rpeaks": rpeaks.to(device)}


def step(module, optimizer, data) -> torch.Tensor:
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss, _ = module(data)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="pairs per GPU")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--ddp", action="store_true", help="run under torchrun: NCCL DDP smoke test")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark is for a GPU machine")
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    torch.cuda.set_device(device)
    if args.ddp:
        torch.distributed.init_process_group("nccl")
    torch.backends.cuda.matmul.allow_tf32 = True
    config = TrainConfig(method="ptacl", preset="paper", model=MODEL_PRESETS["paper"])
    objective = build_objective(config, 500.0, (torch.zeros(10), torch.ones(10))).to(device)
    module = torch.nn.parallel.DistributedDataParallel(objective, device_ids=[device.index]) if args.ddp else objective
    optimizer = torch.optim.AdamW(objective.parameters(), lr=1e-4, fused=True)
    torch.manual_seed(rank)
    data = make_batch(args.batch, device)

    for _ in range(3):
        step(module, optimizer, data)
    flops = None
    if not args.ddp:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            step(module, optimizer, data)
        flops = counter.get_total_flops()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step(module, optimizer, data)
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / args.steps
    pairs_per_s = args.batch * world / seconds
    name = torch.cuda.get_device_name(device)
    if args.ddp:
        losses = [torch.zeros_like(loss) for _ in range(world)]
        torch.distributed.all_gather(losses, loss)
        if rank == 0:
            same = all(torch.allclose(losses[0], other) for other in losses)
            print(f"DDP nccl x{world} ({name}): {pairs_per_s:.0f} pairs/s total, {seconds * 1000:.0f} ms/step; "
                  f"global loss identical on all ranks: {same}")
        torch.distributed.destroy_process_group()
        return
    peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    achieved = flops / seconds / 1e12
    mfu = f"{100 * achieved / peak:.1f}% of {peak:.0f} TFLOP/s" if peak else "peak unknown (pass --peak-tflops)"
    print(f"{name}: paper preset, batch {args.batch}, bf16: {seconds * 1000:.0f} ms/step, {pairs_per_s:.0f} pairs/s, "
          f"{flops / 1e12:.2f} TFLOP/step, {achieved:.0f} TFLOP/s, MFU {mfu}, "
          f"peak memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
