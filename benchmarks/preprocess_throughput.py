"""Preprocessing throughput, and cache read throughput against reading the raw files.

In one run, on this machine: generate (or reuse) a synthetic cohort of ``--n`` subjects, build the cache
with all cores (subjects/s), then time training batches read from the cache (memory-mapped, through the
torch Dataset and DataLoader) against the same batches made from the raw files (read + preprocess each
subject), and print the ratio. Issue 3 asks for 2,000 subjects.

    python benchmarks/preprocess_throughput.py [--n 2000] [--cohort DIR] [--preset default] [--batches 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from torch.utils.data import DataLoader

from ptacl_core.preprocessing.build import build_cache
from ptacl_core.preprocessing.config import PreprocessConfig
from ptacl_core.preprocessing.dataset import CacheDataset
from ptacl_core.preprocessing.subject import process_subject
from ptacl_core.synthetic import generate_cohort


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--cohort", type=Path, help="an existing cohort (else a synthetic one is generated)")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ptacl-bench-"))
    config = PreprocessConfig.preset(args.preset)
    try:
        cohort = args.cohort
        if cohort is None:
            cohort = root / "cohort"
            generate_cohort(cohort, args.n, seed=0, workers=args.workers, progress=False)
        summary = build_cache(cohort, root / "cache", config, workers=args.workers, progress=False)

        dataset = CacheDataset(root / "cache", split=None)
        loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=0,
                            generator=__import__("torch").Generator().manual_seed(0))
        start = time.perf_counter()
        for count, _batch in enumerate(loader, 1):
            if count == args.batches:
                break
        cache_batches_per_s = args.batches / (time.perf_counter() - start)

        manifest = pd.read_csv(cohort / "manifest.csv", dtype={"subject_id": str}).to_dict("records")
        rng = np.random.default_rng(0)
        raw_batches = max(args.batches // 10, 2)
        start = time.perf_counter()
        for _ in range(raw_batches):
            for position in rng.choice(len(manifest), size=args.batch_size, replace=False):
                process_subject(cohort, manifest[position], config)
        raw_batches_per_s = raw_batches / (time.perf_counter() - start)
        size_mb = sum(p.stat().st_size for p in (root / "cache").glob("*.npy")) / 1e6
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"machine: {os.cpu_count()} cores; preset {args.preset}; {summary['n_subjects']} subjects")
    print(f"preprocessing ({args.workers} workers): {summary['subjects_per_s']:.1f} subjects/s "
          f"({summary['n_cached']} cached, {summary['n_failed']} failed); cache {size_mb / summary['n_subjects']:.2f} MB a subject")
    print(f"batches of {args.batch_size}, one process: cache {cache_batches_per_s:.1f} batches/s, "
          f"raw files {raw_batches_per_s:.2f} batches/s -> cache x{cache_batches_per_s / raw_batches_per_s:.0f} faster")


if __name__ == "__main__":
    main()
