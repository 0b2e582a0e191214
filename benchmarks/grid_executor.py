"""Grid wall time: the same training grid sequential (one run at a time, torch's default intra-op threads, as
notebook 02 ran before the executor) against the local process pool (one run per usable core, one thread each),
on a quiet machine and with one core kept busy by another process (a spinning Python loop).

Each row trains the grid from scratch into its own runs folder, on one cohort and cache built first. Printed per
row: wall time, training pairs/s summed over the grid (from each run's metrics.csv: pairs trained / wall time),
and the ratios the issue asks for: sequential / pool wall time on a quiet machine, and the pool's speed with a
busy core as a share of its quiet speed (target >= 0.5).

    python benchmarks/grid_executor.py [--subjects 240] [--runs 4] [--epochs 3] [--out /tmp/grid_bench]
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import time
from pathlib import Path

import pandas as pd

from ptacl_core.preprocessing.build import build_cache
from ptacl_core.preprocessing.config import PreprocessConfig
from ptacl_core.synthetic import generate_cohort
from ptacl_core.training.executor import execute, usable_cores
from ptacl_core.training.plan import PlanSettings, grid_jobs


def _spin(stop) -> None:
    while not stop.is_set():
        pass


def _row(name: str, cache: Path, out: Path, plan: list, epochs: int, backend: str, busy: bool) -> dict:
    runs = out / name
    shutil.rmtree(runs, ignore_errors=True)
    settings = PlanSettings("tiny", cache, runs, epochs=epochs, batch_size=32, lr=1e-3, lam=1.0, device="cpu")
    stop = multiprocessing.Event()
    spinner = multiprocessing.Process(target=_spin, args=(stop,), daemon=True) if busy else None
    if spinner is not None:
        spinner.start()
    try:
        start = time.perf_counter()
        report = execute(grid_jobs(plan, settings), backend, progress=False)
        wall = time.perf_counter() - start
    finally:
        if spinner is not None:
            stop.set()
            spinner.join()
    if report.failed:
        raise RuntimeError(report.summary())
    pairs = 0.0
    for result in report.results.values():
        metrics = pd.read_csv(result.folder / "metrics.csv")
        pairs += float((metrics.samples_per_s * metrics.seconds).sum())
    return {"row": name, "backend": backend, "busy core": busy, "workers": report.workers, "wall s": wall,
            "pairs/s (grid)": pairs / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=240)
    parser.add_argument("--runs", type=int, default=4, help="runs in the grid (global and ptacl, alternating seeds)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("/tmp/grid_bench"))
    args = parser.parse_args()
    cohort, cache = args.out / "cohort", args.out / "cache"
    generate_cohort(cohort, args.subjects, seed=0, progress=False)
    build_cache(cohort, cache, PreprocessConfig.preset("tiny"), progress=False)
    plan = [(("global", "ptacl")[i % 2], i // 2) for i in range(args.runs)]
    print(f"{usable_cores()} usable cores; grid: {args.runs} tiny runs x {args.epochs} epochs on {args.subjects} subjects")
    rows = [_row("sequential", cache, args.out, plan, args.epochs, "sequential", False),
            _row("local pool", cache, args.out, plan, args.epochs, "local", False),
            _row("sequential, busy core", cache, args.out, plan, args.epochs, "sequential", True),
            _row("local pool, busy core", cache, args.out, plan, args.epochs, "local", True)]
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    wall = table.set_index("row")["wall s"]
    print(f"quiet machine: sequential / pool wall time = {wall['sequential'] / wall['local pool']:.2f}")
    print(f"busy core: pool keeps {wall['local pool'] / wall['local pool, busy core']:.2f} of its quiet speed "
          f"(target >= 0.5); sequential keeps {wall['sequential'] / wall['sequential, busy core']:.2f}")


if __name__ == "__main__":
    main()
