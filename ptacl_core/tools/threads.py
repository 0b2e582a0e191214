"""Thread settings for process pools: the worker processes are the parallelism."""

from __future__ import annotations

import os

from threadpoolctl import threadpool_limits


def resolve_workers(workers: int | None) -> int:
    """Worker processes for a pool: ``None`` (every command's default) means all cores."""
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    return workers or os.cpu_count() or 1


def single_threaded() -> None:
    """Pool initializer: keep BLAS/OpenMP pools to one thread per worker process (else they spin against
    each other and two workers run no faster than one)."""
    threadpool_limits(1)
