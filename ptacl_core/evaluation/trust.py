"""How far to trust an ECG-only prediction: split-conformal intervals and an out-of-distribution score.

- **Intervals** (split conformal, Vovk / Lei et al.): the probe is fitted on the training split; the absolute
  residuals on the validation split give the half-width ``q`` = the ceil((n + 1) * coverage)-th smallest residual,
  so that [prediction - q, prediction + q] holds the true value with probability >= ``coverage`` for a new subject
  exchangeable with the validation ones. The test split measures the empirical coverage.
- **Out-of-distribution score**: the Mahalanobis distance of an embedding from the training embeddings (mean and
  Ledoit-Wolf shrunk covariance, scikit-learn's ``LedoitWolf``), reported as its percentile among the validation
  subjects' own distances. The verdict's thresholds are fixed on the validation split: above its 95th percentile
  "unusual", above its maximum "out of distribution"; a validation ECG is therefore never "out of distribution".
  The covariance matters: on the default cohort a cosine k-NN distance left real hospital ECGs at the 80th-85th
  percentile, while the Mahalanobis distance puts them at the 95th-100th (directions the training ECGs never vary
  in weigh in).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.covariance import LedoitWolf

UNUSUAL_PERCENTILE = 95.0
DEFAULT_COVERAGE = 0.9


def conformal_halfwidth(residuals: np.ndarray, coverage: float = DEFAULT_COVERAGE) -> float:
    """Split-conformal half-width from calibration residuals (absolute values taken): the ceil((n + 1) * coverage)-th
    smallest; infinite when n is too small for that coverage (an honest interval cannot be given)."""
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must lie in (0, 1), got {coverage}")
    residuals = np.sort(np.abs(np.asarray(residuals, dtype=float)[np.isfinite(residuals)]))
    rank = math.ceil((len(residuals) + 1) * coverage)
    return float(residuals[rank - 1]) if rank <= len(residuals) else float("inf")


def empirical_coverage(truth: np.ndarray, predicted: np.ndarray, halfwidth: float) -> float:
    """Share of finite ``truth`` values inside [predicted - halfwidth, predicted + halfwidth]."""
    truth, predicted = np.asarray(truth, dtype=float), np.asarray(predicted, dtype=float)
    known = np.isfinite(truth)
    return float(np.mean(np.abs(truth[known] - predicted[known]) <= halfwidth)) if known.any() else float("nan")


@dataclass
class NoveltyScore:
    """Mahalanobis distance from the training embeddings, calibrated on the validation embeddings."""

    mean: np.ndarray  # (D,)
    precision: np.ndarray  # (D, D) inverse of the shrunk training covariance
    validation_scores: np.ndarray  # (V,) sorted distances of the validation subjects

    @classmethod
    def fit(cls, train: np.ndarray, validation: np.ndarray) -> NoveltyScore:
        train, validation = np.asarray(train, dtype=np.float64), np.asarray(validation, dtype=np.float64)
        if len(train) < 2 or len(validation) < 2:
            raise ValueError("need at least 2 training and 2 validation embeddings to calibrate a novelty score")
        covariance = LedoitWolf().fit(train)
        score = cls(covariance.location_, covariance.precision_, np.array([]))
        score.validation_scores = np.sort(score.distance(validation))
        return score

    def distance(self, embeddings: np.ndarray) -> np.ndarray:
        """(Q,) Mahalanobis distances of (Q, D) embeddings."""
        centred = np.atleast_2d(np.asarray(embeddings, dtype=np.float64)) - self.mean
        return np.sqrt(np.maximum(np.einsum("qi,ij,qj->q", centred, self.precision, centred), 0.0))

    @property
    def unusual_above(self) -> float:
        return float(np.percentile(self.validation_scores, UNUSUAL_PERCENTILE))

    @property
    def out_above(self) -> float:
        return float(self.validation_scores[-1])

    def score(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distances, percentiles among the validation distances in [0, 100]) of (Q, D) embeddings."""
        distances = self.distance(embeddings)
        percentiles = 100.0 * np.searchsorted(self.validation_scores, distances, side="right") / len(self.validation_scores)
        return distances, percentiles

    def verdict(self, distance: float) -> str:
        if distance > self.out_above:
            return "out of distribution"
        if distance > self.unusual_above:
            return "unusual"
        return "in distribution"
