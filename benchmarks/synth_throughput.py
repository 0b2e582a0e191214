"""Synthetic cohort generation speed (subjects/s and per minute).

Runs in one go, on this machine: (1) one worker process, the baseline; (2) all cores; and the NIfTI
compression backend, zlib (nibabel's default writer) against ISA-L (what the generator uses), on the
same image. Target (issue 2): >= 1,000 subjects per minute on a 2-core machine.

    python benchmarks/synth_throughput.py [--n 600] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from ptacl_core.synthetic import SynthConfig, generate_cohort, make_subject


def _compression(repeats: int = 10) -> tuple[float, float]:
    from isal import igzip

    cine = make_subject(0, 0, SynthConfig()).cine
    image = nib.Nifti1Image(cine.image, np.eye(4))
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        for _ in range(repeats):
            nib.save(image, Path(folder) / "zlib.nii.gz")
        zlib_s = (time.perf_counter() - start) / repeats
        start = time.perf_counter()
        for _ in range(repeats):
            (Path(folder) / "isal.nii.gz").write_bytes(igzip.compress(image.to_bytes(), compresslevel=1, mtime=0))
        isal_s = (time.perf_counter() - start) / repeats
    return zlib_s, isal_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="subjects per run")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ptacl-bench-"))
    try:
        baseline_n = max(args.n // 3, 50)
        single = generate_cohort(root / "single", baseline_n, seed=0, workers=1, progress=False)
        parallel = generate_cohort(root / "parallel", args.n, seed=0, workers=args.workers, progress=False)
        size_mb = sum(p.stat().st_size for p in (root / "parallel").rglob("*") if p.is_file()) / 1e6
    finally:
        shutil.rmtree(root, ignore_errors=True)
    zlib_s, isal_s = _compression()
    print(f"machine: {os.cpu_count()} cores")
    print(f"1 worker  ({baseline_n} subjects): {single['subjects_per_s']:6.1f} subjects/s = {60 * single['subjects_per_s']:6.0f}/min")
    print(f"{args.workers} workers ({args.n} subjects): {parallel['subjects_per_s']:6.1f} subjects/s = "
          f"{60 * parallel['subjects_per_s']:6.0f}/min  (x{parallel['subjects_per_s'] / single['subjects_per_s']:.2f})")
    print(f"disk: {size_mb / args.n:.2f} MB per subject")
    print(f"NIfTI image write: zlib (nibabel default) {1000 * zlib_s:.1f} ms, ISA-L {1000 * isal_s:.1f} ms (x{zlib_s / isal_s:.1f})")
    print(f"target >= 1000 subjects/min: {'met' if 60 * parallel['subjects_per_s'] >= 1000 else 'NOT met'}")


if __name__ == "__main__":
    main()
