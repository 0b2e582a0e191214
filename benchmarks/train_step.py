"""Training step time, pairs/s and peak memory per model preset on this machine's CPU (PTACL objective).

One process per preset (so the peak resident memory is that preset's); random inputs of the preset's
shapes. The paper preset is ViT-B class: a few steps at a small batch, to size it, not to train on CPU.

    python benchmarks/train_step.py [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

PRESET_INPUTS = {"tiny": (32, 2500, 25, 48, 250.0), "paper": (4, 5000, 50, 64, 500.0)}


def measure(preset: str, steps: int) -> dict:
    import torch

    from ptacl_core.encoders import MODEL_PRESETS
    from ptacl_core.training.config import TrainConfig
    from ptacl_core.training.objective import Objective

    batch, length, frames, size, fs = PRESET_INPUTS[preset]
    config = TrainConfig(method="ptacl", preset=preset, model=MODEL_PRESETS[preset])
    stats = (torch.zeros(10), torch.ones(10))
    objective = Objective(config, fs, stats)
    optimizer = torch.optim.AdamW(objective.parameters(), lr=1e-4)
    rpeaks = torch.full((batch, 48), -1, dtype=torch.long)
    beats = torch.arange(0, length, int(0.85 * fs))
    rpeaks[:, : len(beats)] = beats
    data = {"ecg": torch.randn(batch, 12, length), "cmr": torch.rand(batch, frames, size, size), "rpeaks": rpeaks}
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        loss, _ = objective(data)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:  # the first step warms up
            times.append(time.perf_counter() - start)
    seconds = sum(times) / len(times)
    return {"preset": preset, "batch": batch, "parameters_M": sum(p.numel() for p in objective.parameters()) / 1e6,
            "step_s": seconds, "pairs_per_s": batch / seconds,
            "peak_rss_GB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.steps)))
        return
    for preset in PRESET_INPUTS:
        output = subprocess.run([sys.executable, __file__, "--one", preset, "--steps", str(args.steps)],
                                capture_output=True, text=True, check=True).stdout
        result = json.loads(output.strip().splitlines()[-1])
        print(f"{result['preset']:6s} {result['parameters_M']:6.1f} M parameters, batch {result['batch']:3d}: "
              f"{result['step_s']:6.2f} s/step, {result['pairs_per_s']:7.1f} pairs/s, peak memory {result['peak_rss_GB']:.2f} GB "
              f"({result['threads']} threads)")


if __name__ == "__main__":
    main()
