"""Seed statistics, the two-level bootstrap, Holm and the verdict rule, against loops and constructed cases."""

import numpy as np
import pytest

from ptacl_core.evaluation.statistics import (
    SEED_RESAMPLING_SALT,
    hierarchical_difference,
    holm,
    judge,
    minimal_detectable_difference,
    verdict,
)


def test_holm_matches_a_loop():
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.uniform(0, 0.2, size=rng.integers(1, 7))
        m = len(p)
        order = sorted(range(m), key=lambda i: p[i])
        expected = np.empty(m)
        for rank, i in enumerate(order):
            expected[i] = min(1.0, max(min(1.0, (m - r) * p[order[r]]) for r in range(rank + 1)))
        assert np.allclose(holm(p), expected)
    assert np.isnan(holm([0.01, np.nan])[1]) and holm([0.01, np.nan])[0] == pytest.approx(0.01)


def test_hierarchical_difference_matches_a_loop():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.6, 0.05, size=(3, 200)), rng.normal(0.5, 0.05, size=(2, 200))
    result = hierarchical_difference(a, b, seed=7)
    draws = np.random.default_rng([7, SEED_RESAMPLING_SALT])
    draw_a, draw_b = draws.integers(0, 3, size=(200, 3)), draws.integers(0, 2, size=(200, 2))
    replicates = [np.mean([a[draw_a[r, j], r] for j in range(3)]) - np.mean([b[draw_b[r, j], r] for j in range(2)])
                  for r in range(200)]
    assert result["se"] == pytest.approx(np.std(replicates, ddof=1))
    assert result["low"] == pytest.approx(np.percentile(replicates, 2.5))
    assert result["difference"] == pytest.approx(a.mean() - b.mean())
    assert result["test_sd"] == pytest.approx(np.std(a.mean(0) - b.mean(0), ddof=1))
    replicates = np.array(replicates)
    tail = min(np.sum(replicates <= 0), np.sum(replicates >= 0))
    assert result["p"] == pytest.approx(min(1.0, (2 * tail + 1) / 201.0))
    assert result["n_seeds"] == 2


def test_hierarchical_difference_without_an_effect_is_not_significant():
    rng = np.random.default_rng(2)
    shared = rng.normal(0.5, 0.05, size=(1, 1000))
    a, b = shared + rng.normal(0, 0.01, size=(5, 1000)), shared + rng.normal(0, 0.01, size=(5, 1000))
    result = hierarchical_difference(a, b)
    assert result["p"] > 0.05 and result["low"] < 0 < result["high"]
    with pytest.raises(ValueError, match="same subject resamples"):
        hierarchical_difference(a, b[:, :10])


def test_seed_spread_widens_the_interval():
    rng = np.random.default_rng(3)
    subjects = rng.normal(0, 0.01, size=1000)
    tight = hierarchical_difference(np.tile(0.6 + subjects, (5, 1)), np.tile(0.5 + 0 * subjects, (5, 1)))
    spread = np.array([0.45, 0.55, 0.6, 0.7, 0.75])[:, None] + subjects[None]
    loose = hierarchical_difference(spread, np.tile(0.5 + 0 * subjects, (5, 1)))
    assert loose["se"] > 3 * tight["se"] and loose["test_sd"] == pytest.approx(tight["test_sd"])


def test_minimal_detectable_difference():
    assert minimal_detectable_difference(0.01) == pytest.approx((1.959964 + 0.841621) * 0.01, rel=1e-5)
    assert np.isnan(minimal_detectable_difference(float("nan")))


@pytest.mark.parametrize("args, expected, words", [
    ((0.05, 0.02, 0.08, True, 0.01, 4, 0.01), "better", "Holm-adjusted p = 0.01 < 0.05"),
    ((0.05, 0.02, 0.08, True, 0.01, 4, 0.2), "indistinguishable", "Holm-adjusted p = 0.2 ≥ 0.05"),
    ((0.05, -0.01, 0.08, True, 0.01, 4, 0.01), "indistinguishable", "includes 0"),
    ((0.05, 0.02, 0.08, True, 0.05, 4, 0.01), "indistinguishable", "within the seed margin"),
    ((-0.05, -0.08, -0.02, True, float("nan"), float("nan"), 0.001), "worse", "seed spread unknown"),
    ((-0.05, -0.08, -0.02, False, 0.01, 4, None), "better", "excludes 0"),
])
def test_verdict_names_the_criterion_and_agrees_with_judge(args, expected, words):
    direction, criterion = verdict(*args[:6], p_adjusted=args[6])
    assert direction == expected and words in criterion
    if args[6] is None or args[6] < 0.05:
        assert direction == judge(*args[:6])
