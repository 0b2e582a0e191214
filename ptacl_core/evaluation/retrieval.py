"""Retrieval of similar patients (METHOD.md §5).

Each query ECG searches a gallery (other subjects' ECGs, or CMRs for cross-modal retrieval) by cosine
similarity. Relevant = the query's 10 nearest gallery subjects in z-scored phenotype space (z-scores from the
training split). Per query: precision@k, the mean z-scored phenotype distance of the top k (and its random
expectation: the mean distance to every candidate), the LVEF error of the top-k mean (and its random
expectation, by seeded draws), and, cross-modal, whether the query's own CMR is in the top k (recall@k;
chance k/N).

``topk`` never holds more than a (query_chunk x gallery_chunk) block of scores, so a 500,000-subject gallery
needs tens of MB, not an N x N matrix; ``full_topk`` is the direct computation it must agree with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# The largest score block the chunked top-k holds: 1,024 queries x 16,384 gallery items (64 MB in float32).
QUERY_BLOCK = 1024
GALLERY_BLOCK = 16384
RANDOM_DISTANCE_BLOCK = 256  # queries per block of the exact random-distance expectation

KS = (1, 5, 10)
N_RELEVANT = 10


def _scores(queries: torch.Tensor, gallery: torch.Tensor, metric: str, gallery_sq: torch.Tensor | None) -> torch.Tensor:
    if metric == "cosine":
        return queries @ gallery.T
    # negative squared Euclidean distance, larger = closer: 2 q.g - |g|^2 (|q|^2 is constant per row)
    return 2 * queries @ gallery.T - gallery_sq[None, :]


def _prepare(x: np.ndarray | torch.Tensor, metric: str, dtype: torch.dtype) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x), dtype=dtype)
    if x.ndim != 2:
        raise ValueError(f"expected (N, D) embeddings, got shape {tuple(x.shape)}")
    return torch.nn.functional.normalize(x, dim=1) if metric == "cosine" else x


def topk(queries: np.ndarray, gallery: np.ndarray, k: int, exclude: np.ndarray | None = None, metric: str = "cosine",
         query_chunk: int = QUERY_BLOCK, gallery_chunk: int = GALLERY_BLOCK, dtype: torch.dtype = torch.float32) -> tuple[np.ndarray, np.ndarray]:
    """The k best gallery rows for each query, best first, computed block by block.

    queries: (Q, D); gallery: (G, D); exclude: (Q,) gallery row to skip per query (its own entry), -1 for none;
    metric: "cosine" (similarity) or "euclidean" (returned scores are negative squared distances + |q|^2).
    Returns (Q, k) int64 gallery rows and (Q, k) scores.
    """
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    q_all, g_all = _prepare(queries, metric, dtype), _prepare(gallery, metric, dtype)
    if q_all.shape[1] != g_all.shape[1]:
        raise ValueError(f"queries have {q_all.shape[1]} dimensions, the gallery {g_all.shape[1]}")
    available = len(g_all) - (1 if exclude is not None and (np.asarray(exclude) >= 0).any() else 0)
    if not 0 < k <= available:
        raise ValueError(f"k = {k} but the gallery offers {available} candidates per query")
    exclude_t = torch.as_tensor(np.full(len(q_all), -1) if exclude is None else np.asarray(exclude), dtype=torch.int64)
    g_sq = (g_all ** 2).sum(1) if metric == "euclidean" else None
    out_rows, out_scores = [], []
    for q_start in range(0, len(q_all), query_chunk):
        q = q_all[q_start:q_start + query_chunk]
        skip = exclude_t[q_start:q_start + query_chunk]
        best_scores = torch.full((len(q), k), -torch.inf, dtype=dtype)
        best_rows = torch.full((len(q), k), -1, dtype=torch.int64)
        for g_start in range(0, len(g_all), gallery_chunk):
            g_stop = min(g_start + gallery_chunk, len(g_all))
            scores = _scores(q, g_all[g_start:g_stop], metric, None if g_sq is None else g_sq[g_start:g_stop])
            own = (skip >= g_start) & (skip < g_stop)
            if own.any():
                scores[own.nonzero()[:, 0], skip[own] - g_start] = -torch.inf
            block_scores, block_rows = scores.topk(min(k, g_stop - g_start), dim=1)
            merged_scores = torch.cat([best_scores, block_scores], 1)
            merged_rows = torch.cat([best_rows, block_rows + g_start], 1)
            best_scores, position = merged_scores.topk(k, dim=1)
            best_rows = merged_rows.gather(1, position)
        out_rows.append(best_rows)
        out_scores.append(best_scores)
    return torch.cat(out_rows).numpy(), torch.cat(out_scores).numpy()


def full_topk(queries: np.ndarray, gallery: np.ndarray, k: int, exclude: np.ndarray | None = None,
              metric: str = "cosine") -> tuple[np.ndarray, np.ndarray]:
    """The direct computation (whole Q x G score matrix, one sort): the reference for ``topk``."""
    q, g = np.asarray(queries, dtype=np.float64), np.asarray(gallery, dtype=np.float64)
    if metric == "cosine":
        scores = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (g / np.linalg.norm(g, axis=1, keepdims=True)).T
    else:
        scores = 2 * q @ g.T - (g ** 2).sum(1)[None]
    if exclude is not None:
        rows = np.flatnonzero(np.asarray(exclude) >= 0)
        scores[rows, np.asarray(exclude)[rows]] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, 1)


# --- relevance and metrics -----------------------------------------------------------------------------------

def zscore_phenotypes(phenotypes: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(N, P) phenotypes z-scored with the mean and SD of ``reference`` rows (the training split).
    Unknown values are imputed at 0 (the reference mean): a subject with unknown phenotypes is drawn towards
    average subjects on those axes. A phenotype unknown for most of a cohort is better left out of ``P``."""
    mean, sd = np.nanmean(reference, axis=0), np.nanstd(reference, axis=0)
    return np.nan_to_num((phenotypes - mean) / np.where(sd > 0, sd, 1.0))


def relevant_sets(query_z: np.ndarray, gallery_z: np.ndarray, exclude: np.ndarray | None, n_relevant: int = N_RELEVANT) -> np.ndarray:
    """(Q, n_relevant) gallery rows nearest to each query in z-scored phenotype space."""
    rows, _ = topk(query_z, gallery_z, n_relevant, exclude, metric="euclidean", dtype=torch.float64)
    return rows


@dataclass
class RetrievalScores:
    """Per-query values, shape (Q,) each, keyed by metric name: "precision@5" (and "precision_chance@5"),
    "zdist@5", "zdist_random", "zdist_gain@5" (random minus retrieved), "lvef_error@5", "lvef_error_random@5",
    "lvef_error_gain@5", and cross-modal "recall@5", "recall_chance@5"."""

    per_query: dict[str, np.ndarray]

    def means(self) -> dict[str, float]:
        return {name: float(np.mean(values)) for name, values in self.per_query.items()}


def score_retrieval(retrieved: np.ndarray, query_z: np.ndarray, gallery_z: np.ndarray, query_lvef: np.ndarray,
                    gallery_lvef: np.ndarray, exclude: np.ndarray | None = None, ks: tuple[int, ...] = KS,
                    n_relevant: int = N_RELEVANT, n_random: int = 200, seed: int = 0,
                    identification: tuple[np.ndarray, np.ndarray] | None = None) -> RetrievalScores:
    """Score retrieved gallery rows (Q, >= max(ks)) against phenotype relevance.

    exclude: (Q,) the query's own gallery row (its own ECG, or cross-modal its own CMR: the same patient, not a
    similar one), left out of relevance and of the random expectation; -1 for none.
    identification: (rows retrieved from the whole gallery, own entry included (Q, >= max(ks)), the query's
    own row (Q,)), for recall@k of the same patient (chance k/N).
    n_relevant: the size of each relevant set (fewer when the gallery offers fewer candidates).
    """
    n_queries, n_gallery = retrieved.shape[0], gallery_z.shape[0]
    if retrieved.shape[1] < max(ks):
        raise ValueError(f"{retrieved.shape[1]} retrieved per query, need {max(ks)}")
    candidates = np.ones((n_queries, n_gallery), dtype=bool)
    if exclude is not None:
        rows = np.flatnonzero(np.asarray(exclude) >= 0)
        candidates[rows, np.asarray(exclude)[rows]] = False
    relevant = relevant_sets(query_z, gallery_z, exclude, min(n_relevant, int(candidates.sum(1).min())))
    distance = np.sqrt(((query_z[:, None, :] - gallery_z[retrieved]) ** 2).sum(-1))  # (Q, K)
    out: dict[str, np.ndarray] = {}
    hits = (retrieved[:, :, None] == relevant[:, None, :]).any(-1)  # (Q, K)
    random_distance = np.empty(n_queries)
    for start in range(0, n_queries, RANDOM_DISTANCE_BLOCK):  # exact expectation of a uniformly random candidate
        stop = start + RANDOM_DISTANCE_BLOCK
        block = np.sqrt(((query_z[start:stop, None, :] - gallery_z[None]) ** 2).sum(-1))
        mask = candidates[start:stop]
        random_distance[start:stop] = (block * mask).sum(1) / mask.sum(1)
    out["zdist_random"] = random_distance
    # random expectation of the top-k LVEF error: the first k of a random permutation of the candidates is a
    # uniformly random k-subset, for every k at once
    rng = np.random.default_rng(seed)
    random_means = {k: np.empty(n_queries) for k in ks}
    for q in range(n_queries):
        pool = np.flatnonzero(candidates[q])
        keys = rng.random((n_random, len(pool)))
        smallest = np.argpartition(keys, max(ks) - 1, axis=1)[:, :max(ks)]  # O(G), not a full sort per query
        order = np.argsort(np.take_along_axis(keys, smallest, 1), axis=1)
        draws = pool[np.take_along_axis(smallest, order, 1)]
        cumulative = np.cumsum(gallery_lvef[draws], axis=1)
        for k in ks:
            random_means[k][q] = np.abs(cumulative[:, k - 1] / k - query_lvef[q]).mean()
    for k in ks:
        out[f"precision@{k}"] = hits[:, :k].mean(1)
        out[f"precision_chance@{k}"] = relevant.shape[1] / candidates.sum(1)  # a random top k's expected precision
        out[f"zdist@{k}"] = distance[:, :k].mean(1)
        out[f"zdist_gain@{k}"] = random_distance - out[f"zdist@{k}"]  # > 0: the top k are closer than random
        out[f"lvef_error@{k}"] = np.abs(gallery_lvef[retrieved[:, :k]].mean(1) - query_lvef)
        out[f"lvef_error_random@{k}"] = random_means[k]
        out[f"lvef_error_gain@{k}"] = random_means[k] - out[f"lvef_error@{k}"]
        if identification is not None:
            identified, own = identification
            out[f"recall@{k}"] = (identified[:, :k] == np.asarray(own)[:, None]).any(1).astype(float)
            out[f"recall_chance@{k}"] = np.full(n_queries, k / n_gallery)
    return RetrievalScores(out)
