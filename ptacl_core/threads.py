"""Thread settings for process pools: the worker processes are the parallelism."""

from __future__ import annotations


def single_threaded() -> None:
    """Pool initializer: keep BLAS/OpenMP pools to one thread per worker process (else they spin against
    each other and two workers run no faster than one)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
