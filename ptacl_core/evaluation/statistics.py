"""Seed statistics and the verdict rule: the one home for how the kit summarises methods over test subjects and
training seeds, and how it decides that one method is better than another.

- Test-set sampling: every method, seed and setting is scored on the *same* bootstrap resamples of the test
  subjects (``bootstrap_indices``), so the interval of a seed mean is the percentile interval of the
  per-resample seed means, and a difference between methods has a paired interval.
- Training randomness: the standard error of a difference of seed means over seeds (``seed_standard_error``),
  with conservative degrees of freedom, gives the seed margin t(0.975, df) x SE.
- The verdict (``judge``): "better" / "worse" only when the paired 95% interval excludes 0 *and*, where both
  sides have several seeds, the difference exceeds the seed margin; otherwise "indistinguishable".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import t as student_t

LEVEL = 0.95
# Seed salts of the kit's resampling: fixed, so every method sees the same resamples and the same subsets.
RETRIEVAL_BOOTSTRAP_SALT = 4242
LABEL_SUBSET_SALT = 7919  # the label-fraction subsets: one permutation of the training rows per seed


def bootstrap_indices(n: int, n_bootstrap: int, seed) -> np.ndarray:
    """(n_bootstrap, n) resample indices (with replacement)."""
    return np.random.default_rng(seed).integers(0, n, size=(n_bootstrap, n))


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
