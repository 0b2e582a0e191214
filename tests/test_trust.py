"""How far to trust a prediction: split-conformal intervals and the out-of-distribution score (loop references)."""

import math

import numpy as np
import pytest

from ptacl_core.evaluation.trust import NoveltyScore, conformal_halfwidth, empirical_coverage


def _halfwidth_loop(residuals, coverage):
    """The smallest candidate q with at least ceil((n + 1) coverage) residuals at or below it."""
    values = sorted(abs(r) for r in residuals)
    needed = math.ceil((len(values) + 1) * coverage)
    for q in values:
        if sum(v <= q for v in values) >= needed:
            return q
    return math.inf


def test_conformal_halfwidth_matches_the_loop_and_refuses_bad_coverage():
    rng = np.random.default_rng(0)
    for n, coverage in ((7, 0.8), (50, 0.9), (200, 0.95), (5, 0.9)):
        residuals = rng.normal(size=n)
        assert conformal_halfwidth(residuals, coverage) == _halfwidth_loop(residuals, coverage)
    assert conformal_halfwidth(rng.normal(size=5), 0.9) == math.inf  # too few residuals for 90 %: no honest interval
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="coverage must lie in"):
            conformal_halfwidth([1.0, 2.0], bad)


@pytest.mark.parametrize("coverage", [0.8, 0.9])
def test_split_conformal_intervals_cover_at_the_nominal_rate(coverage):
    """A ridge-like predictor with heteroscedastic errors: calibrated on 1,500 subjects, the intervals hold the truth
    for the nominal share of 20,000 new ones, within 3 points."""
    rng = np.random.default_rng(1)

    def sample(n):
        x = rng.normal(size=n)
        return 2 * x, 2 * x + rng.normal(scale=1 + 0.5 * np.abs(x), size=n)  # (prediction, truth)

    predicted, truth = sample(1500)
    halfwidth = conformal_halfwidth(truth - predicted, coverage)
    new_predicted, new_truth = sample(20000)
    assert abs(empirical_coverage(new_truth, new_predicted, halfwidth) - coverage) < 0.03
    assert np.isnan(empirical_coverage(np.array([np.nan]), np.array([1.0]), halfwidth))


def test_novelty_distance_matches_the_formula_and_flags_only_far_embeddings():
    rng = np.random.default_rng(2)
    train, validation = rng.normal(size=(400, 6)), rng.normal(size=(100, 6))
    score = NoveltyScore.fit(train, validation)
    point = rng.normal(size=(3, 6))
    loop = [math.sqrt(float((p - score.mean) @ score.precision @ (p - score.mean))) for p in point]
    np.testing.assert_allclose(score.distance(point), loop, rtol=1e-10)
    _, percentiles = score.score(validation)
    assert percentiles.max() == 100.0 and {score.verdict(d) for d in score.distance(validation)} <= {"in distribution", "unusual"}
    far = np.zeros((1, 6))
    far[0, 3] = 12.0  # far along one axis
    distance, percentile = score.score(far)
    assert score.verdict(float(distance[0])) == "out of distribution" and percentile[0] == 100.0
    assert score.verdict(float(score.distance(np.zeros((1, 6)))[0])) == "in distribution"
    with pytest.raises(ValueError, match="at least 2"):
        NoveltyScore.fit(train[:1], validation)
