"""Heart rate as a confound of the temporal phenotypes (METHOD.md §5).

Heart rate shortens systole, so an embedding that encodes the ECG's rate predicts time-to-ES on any cohort, the
null twin included. ``beyond_heart_rate`` removes that channel: each temporal phenotype minus a ridge regression on
the ECG's heart rate (HR, RR and HR², ``rate_basis``) fitted on the training split (the rate of the cached R peaks,
``ecg_heart_rate``). Probing those residuals asks what an embedding knows of the heart's timing beyond its rate
(the endpoint "temporal family R² beyond heart rate"). What a smooth function of the rate outside that basis could
still explain is not removed; ``tests/test_heart_rate_and_median_beat.py`` checks that features of the rate alone
predict the residuals of the kit's own timing model no better than chance.
"""

from __future__ import annotations

import numpy as np

from ptacl_core.model.geometry import median_rr_s
from ptacl_core.preprocessing.cache import Cache

RIDGE_ALPHA = 1.0  # on the standardised rate, over a few hundred training subjects: all but ordinary least squares


def ecg_heart_rate(cache: Cache) -> np.ndarray:
    """(N,) bpm in the cache's index order: 60 / the median RR of each subject's cached R peaks (NaN when fewer
    than two)."""
    return 60.0 / median_rr_s([cache.rpeaks(i) for i in range(len(cache.index))], float(cache.config.ecg.fs))


def rate_basis(rate: np.ndarray) -> np.ndarray:
    """(N, 3) the heart-rate features the residuals remove: HR, RR = 60 / HR and HR² (time to end-systole is linear
    in HR, its share of the cycle a ratio of HR terms: a straight line in HR alone would leave rate in the residual)."""
    rate = np.asarray(rate, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.column_stack([rate, 60.0 / rate, rate ** 2])


def beyond_heart_rate(values: np.ndarray, rate: np.ndarray, train: np.ndarray, alpha: float = RIDGE_ALPHA) -> np.ndarray:
    """Residuals (N, P) of ``values`` (N, P) after a ridge regression on the heart-rate basis of ``rate`` (N,)
    (``rate_basis``, standardised on the training rows), per column, fitted on the ``train`` rows (N,) bool where
    both are finite and applied to every row; NaN where a value or the rate is missing, and for a column with fewer
    than 5 usable training rows."""
    values = np.asarray(values, dtype=np.float64)
    basis = rate_basis(rate)
    usable_rate = np.isfinite(basis).all(axis=1) & (np.asarray(rate, dtype=np.float64) > 0)
    residuals = np.full(values.shape, np.nan)
    for column in range(values.shape[1]):
        y = values[:, column]
        fit = train & np.isfinite(y) & usable_rate
        if fit.sum() < 5:
            continue
        mean_x, sd_x = basis[fit].mean(axis=0), basis[fit].std(axis=0)
        sd_x[sd_x == 0] = 1.0
        x = (basis - mean_x) / sd_x
        mean_y = y[fit].mean()
        gram = x[fit].T @ x[fit] + alpha * np.eye(x.shape[1])
        coefficients = np.linalg.solve(gram, x[fit].T @ (y[fit] - mean_y))
        predicted = np.where(usable_rate, mean_y + np.where(usable_rate[:, None], x, 0.0) @ coefficients, np.nan)
        residuals[:, column] = y - predicted
    return residuals
