"""Cosine top-k retrieval: queries/s of the chunked search (``ptacl_core.evaluation.retrieval.topk``) at gallery sizes
10k, 100k and 500k, against the direct computation (the whole Q x G score matrix, then a partial sort) in
the same run; the memory each holds for scores; and whether they return the same neighbours.

    python benchmarks/retrieval_throughput.py [--queries 1000] [--dim 64] [--k 10] [--sizes 10000,100000,500000]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from ptacl_core.evaluation.retrieval import topk


def direct_topk(queries: np.ndarray, gallery: np.ndarray, k: int) -> np.ndarray:
    """The baseline: normalise, one (Q, G) float32 score matrix, argpartition, sort the k."""
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    scores = q @ g.T
    part = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1)
    return np.take_along_axis(part, order, 1)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=64, help="embedding size (tiny preset: 64; paper projection: 256)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--sizes", default="10000,100000,500000")
    parser.add_argument("--query-chunk", type=int, default=1024)
    parser.add_argument("--gallery-chunk", type=int, default=16384)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(args.queries, args.dim)).astype(np.float32)
    print(f"{args.queries} queries, D = {args.dim}, k = {args.k}, torch threads {torch.get_num_threads()}")
    print(f"chunked score block: {min(args.query_chunk, args.queries)} x {args.gallery_chunk} float32 = "
          f"{min(args.query_chunk, args.queries) * args.gallery_chunk * 4 / 2**20:.0f} MB")
    sizes = [int(s) for s in args.sizes.split(",")]
    galleries = {size: rng.normal(size=(size, args.dim)).astype(np.float32) for size in sizes}
    topk(queries[:10], galleries[sizes[0]][:1000], args.k)  # warm-up: first-call set-up is not search time
    chunked = {}
    for size in sizes:  # every chunked search first, so its peak memory is not the baseline's
        start = time.perf_counter()
        rows, _ = topk(queries, galleries[size], args.k, query_chunk=args.query_chunk, gallery_chunk=args.gallery_chunk)
        chunked[size] = (rows, time.perf_counter() - start)
    rss_chunked = peak_rss_mb()
    print(f"peak RSS after every chunked search (galleries included): {rss_chunked:.0f} MB")
    print(f"{'gallery':>8} | {'chunked q/s':>11} {'direct q/s':>10} {'speed-up':>8} | {'direct score matrix MB':>22} | "
          f"{'same top-k':>10} | peak RSS MB")
    for size in sizes:
        rows, chunked_s = chunked[size]
        start = time.perf_counter()
        reference = direct_topk(queries, galleries[size], args.k)
        direct_s = time.perf_counter() - start
        same = float((rows == reference).mean())
        print(f"{size:>8} | {args.queries / chunked_s:>11.0f} {args.queries / direct_s:>10.0f} {direct_s / chunked_s:>7.2f}x | "
              f"{args.queries * size * 4 / 2**20:>22.0f} | {same:>10.4f} | {peak_rss_mb():.0f}")

if __name__ == "__main__":
    main()
