"""Seed statistics and the verdict rule: the one home for how the kit summarises methods over test subjects and
training seeds, and how it decides that one method is better than another.

- Test-set sampling: every method, seed and setting is scored on the *same* bootstrap resamples of the test
  subjects (``bootstrap_indices``), so the interval of a seed mean is the percentile interval of the
  per-resample seed means, and a difference between methods has a paired interval.
- Training randomness: the standard error of a difference of seed means over seeds (``seed_standard_error``),
  with conservative degrees of freedom, gives the seed margin t(0.975, df) x SE; ``t_interval`` is the t-interval
  of a mean over seeds (e.g. the phase-clock margin).
- The verdict (``judge``): "better" / "worse" only when the paired 95% interval excludes 0 *and*, where both
  sides have several seeds, the difference exceeds the seed margin; otherwise "indistinguishable". For the
  pre-registered endpoints (``verdict``) also the Holm-adjusted p-value across the endpoint list, and the
  criterion that decided is said in words.
- Endpoints: ``hierarchical_difference`` resamples subjects and seeds together; ``holm``;
  ``minimal_detectable_difference`` at 80% power.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import norm
from scipy.stats import t as student_t

LEVEL = 0.95
# Seed salts of the kit's resampling: fixed, so every method sees the same resamples and the same subsets.
RETRIEVAL_BOOTSTRAP_SALT = 4242
LABEL_SUBSET_SALT = 7919  # the label-fraction subsets: one permutation of the training rows per seed
SEED_RESAMPLING_SALT = 5557  # the training seeds drawn in each replicate of ``hierarchical_difference``


def bootstrap_indices(n: int, n_bootstrap: int, seed) -> np.ndarray:
    """(n_bootstrap, n) resample indices (with replacement)."""
    return np.random.default_rng(seed).integers(0, n, size=(n_bootstrap, n))


def resample_counts(indices: np.ndarray, n: int) -> np.ndarray:
    """(B, n) how often each of n rows is drawn in each resample of ``indices`` (B, m)."""
    indices = np.asarray(indices)
    counts = np.zeros((len(indices), n))
    np.add.at(counts, (np.repeat(np.arange(len(indices)), indices.shape[1]), indices.ravel()), 1.0)
    return counts


def query_resamples(n_queries: int, n_bootstrap: int, seed: int = 0) -> np.ndarray:
    """(B, n_queries) the retrieval's query resamples, shared by every method, seed and endpoint."""
    return bootstrap_indices(n_queries, n_bootstrap, [seed, RETRIEVAL_BOOTSTRAP_SALT])


def interval(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of bootstrap samples (NaN resamples, e.g. constant targets, ignored)."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def seed_standard_error(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Standard error over training seeds of mean(a) - mean(b); NaN unless both have at least 2 seeds."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    return float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))


def seed_degrees_of_freedom(a, b) -> float:
    """Conservative degrees of freedom for ``seed_standard_error``: min(n_a, n_b) - 1 (NaN below 2 seeds)."""
    smallest = min(len(a), len(b))
    return float(smallest - 1) if smallest >= 2 else float("nan")


def seed_margin(seed_se: float, seed_df: float) -> float:
    """The difference training randomness alone could produce: t(0.975, df) x SE over seeds (NaN if unknown)."""
    if not np.isfinite(seed_se) or not np.isfinite(seed_df) or seed_df < 1:
        return float("nan")
    return float(student_t.ppf(0.975, seed_df) * seed_se)  # two-sided 95%


def t_interval(values: Sequence[float] | np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """(low, high) two-sided t-interval of the mean of ``values`` (e.g. one value per training seed):
    mean ± t(0.5 + level/2, n - 1) x SD / sqrt(n); NaN below 2 values."""
    values = np.asarray(values, dtype=float)
    mean, n = float(values.mean()), len(values)
    if n < 2:
        return float("nan"), float("nan")
    half = float(student_t.ppf(0.5 + level / 2, n - 1) * float(values.std(ddof=1)) / np.sqrt(n))
    return mean - half, mean + half


def seed_sd(values: Sequence[float] | np.ndarray) -> float:
    """SD over seeds (ddof 1); NaN with one seed."""
    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1)) if len(values) > 1 else float("nan")


def paired_difference(resampled_a: np.ndarray, resampled_b: np.ndarray, seeds_a, seeds_b) -> dict:
    """Seed mean of a minus seed mean of b.

    resampled_a, resampled_b: (n_bootstrap,) seed means on the shared resamples; seeds_a, seeds_b: the
    per-seed point values. Returns difference, its paired bootstrap 95% interval (low, high) and the seed
    standard error and degrees of freedom (``seed_se``, ``seed_df``) that ``judge`` reads.
    """
    low, high = interval(np.asarray(resampled_a) - np.asarray(resampled_b))
    return {"difference": float(np.mean(seeds_a) - np.mean(seeds_b)), "low": low, "high": high,
            "seed_se": seed_standard_error(seeds_a, seeds_b), "seed_df": seed_degrees_of_freedom(seeds_a, seeds_b)}


def judge(difference: float, low: float, high: float, higher_is_better: bool = True, seed_se: float = float("nan"),
          seed_df: float = float("nan")) -> str:
    """"better", "worse" or "indistinguishable". A direction counts only when the paired bootstrap 95% interval
    (test-set sampling) excludes 0 and, where both sides have several seeds, the difference also exceeds
    ``seed_margin`` (training randomness; with one seed on either side that spread is unknown)."""
    if not np.isfinite(low) or not np.isfinite(high) or low <= 0 <= high:
        return "indistinguishable"
    margin = seed_margin(seed_se, seed_df)
    if np.isfinite(margin) and abs(difference) <= margin:
        return "indistinguishable"
    improved = (low > 0) == higher_is_better
    return "better" if improved else "worse"


def judge_row(row, higher_is_better: bool = True) -> str:
    """``judge`` of a difference row (a pandas row or namedtuple with difference, low, high[, seed_se, seed_df])."""
    get = row.get if hasattr(row, "get") else (lambda key, default: getattr(row, key, default))
    return judge(float(get("difference", np.nan)), float(get("low", np.nan)), float(get("high", np.nan)), higher_is_better,
                 float(get("seed_se", np.nan)), float(get("seed_df", np.nan)))


# --- pre-registered endpoints: two-level bootstrap, Holm, minimal detectable difference -----------------------

def hierarchical_difference(a: np.ndarray, b: np.ndarray, seed: int = 0) -> dict:
    """Seed-mean of method a minus method b, resampling test subjects *and* training seeds.

    a, b: (n_seeds, B) per-seed values on B shared resamples of the test subjects (row s = seed s). Replicate r
    draws each method's seeds with replacement and averages their values on subject resample r. Returns the
    point difference (mean over seeds of the resample means), its 95% interval, a two-sided bootstrap p-value,
    the difference's SE (both sources), the test-sampling SD (seeds fixed: subjects only) and the seed counts.
    """
    return hierarchical_contrast([(a, 1.0), (b, -1.0)], seed)


def hierarchical_contrast(groups: list[tuple[np.ndarray, float]], seed: int = 0) -> dict:
    """``hierarchical_difference`` for any signed sum of seed means, e.g. a difference of differences between
    two cohorts scored on the same test subjects: (a1 - b1) - (a2 - b2) = groups [(a1, 1), (b1, -1), (a2, -1),
    (b2, 1)]. Each group: (n_seeds, B) on the shared subject resamples; its seeds are redrawn in every replicate."""
    arrays = [np.atleast_2d(np.asarray(samples, dtype=float)) for samples, _ in groups]
    signs = [float(sign) for _, sign in groups]
    n_resamples = arrays[0].shape[1]
    if any(a.shape[1] != n_resamples for a in arrays):
        raise ValueError(f"every group needs the same subject resamples, got {[a.shape[1] for a in arrays]}")
    rng = np.random.default_rng([seed, SEED_RESAMPLING_SALT])
    columns = np.arange(n_resamples)
    draws = [rng.integers(0, a.shape[0], size=(n_resamples, a.shape[0])) for a in arrays]
    replicates = sum(sign * a[draw, columns[:, None]].mean(1) for a, draw, sign in zip(arrays, draws, signs, strict=True))
    subjects_only = sum(sign * a.mean(0) for a, sign in zip(arrays, signs, strict=True))
    finite = replicates[np.isfinite(replicates)]
    low, high = interval(replicates)
    at_or_below, at_or_above = np.mean(finite <= 0), np.mean(finite >= 0)
    p = min(1.0, (2.0 * min(at_or_below, at_or_above) * len(finite) + 1.0) / (len(finite) + 1.0)) if len(finite) else float("nan")
    return {"difference": float(sum(sign * np.nanmean(a) for a, sign in zip(arrays, signs, strict=True))), "low": low,
            "high": high, "p": float(p), "se": float(np.nanstd(replicates, ddof=1)),
            "test_sd": float(np.nanstd(subjects_only, ddof=1)), "n_seeds": int(min(a.shape[0] for a in arrays))}


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (same order as given; NaN stays NaN)."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(len(p), np.nan)
    known = np.flatnonzero(np.isfinite(p))
    order = known[np.argsort(p[known], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def minimal_detectable_difference(se: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true difference a two-sided test at ``alpha`` detects with ``power``, given the SE of the
    estimate: (z(1 - alpha/2) + z(power)) x SE."""
    return float((norm.ppf(1.0 - alpha / 2.0) + norm.ppf(power)) * se) if np.isfinite(se) else float("nan")


def verdict(difference: float, low: float, high: float, higher_is_better: bool = True, seed_se: float = float("nan"),
            seed_df: float = float("nan"), p_adjusted: float | None = None, alpha: float = 0.05) -> tuple[str, str]:
    """``judge``'s verdict and the criterion that decided it, in words. With ``p_adjusted`` (an endpoint of the
    pre-registered list), a direction also needs the Holm-adjusted p below ``alpha``."""
    margin = seed_margin(seed_se, seed_df)
    if not np.isfinite(low) or not np.isfinite(high):
        return "indistinguishable", "no interval (too few resamples or subjects)"
    if low <= 0 <= high:
        return "indistinguishable", f"the 95% interval [{low:+.3f}, {high:+.3f}] includes 0"
    if np.isfinite(margin) and abs(difference) <= margin:
        return "indistinguishable", f"|difference| {abs(difference):.3f} is within the seed margin ±{margin:.3f}"
    if p_adjusted is not None and not p_adjusted < alpha:
        return "indistinguishable", f"Holm-adjusted p = {p_adjusted:.3g} ≥ {alpha}"
    direction = judge(difference, low, high, higher_is_better, seed_se, seed_df)
    reasons = [f"the 95% interval [{low:+.3f}, {high:+.3f}] excludes 0"]
    reasons.append(f"beyond the seed margin ±{margin:.3f}" if np.isfinite(margin) else "seed spread unknown (one seed)")
    if p_adjusted is not None:
        reasons.append(f"Holm-adjusted p = {p_adjusted:.3g} < {alpha}")
    return direction, "; ".join(reasons)
