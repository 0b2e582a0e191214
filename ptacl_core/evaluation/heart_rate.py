"""Heart rate as a confound of the temporal phenotypes (METHOD.md §5).

Heart rate shortens systole, so an embedding that encodes the ECG's rate predicts time-to-ES on any cohort, the
null twin included. ``beyond_heart_rate`` removes that channel: each temporal phenotype minus a ridge regression on
the ECG's heart rate fitted on the training split (the rate of the cached R peaks, ``ecg_heart_rate``). Probing
those residuals asks what an embedding knows of the heart's timing beyond its rate (the endpoint "temporal family
R² beyond heart rate").
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


def beyond_heart_rate(values: np.ndarray, rate: np.ndarray, train: np.ndarray, alpha: float = RIDGE_ALPHA) -> np.ndarray:
    """Residuals (N, P) of ``values`` (N, P) after a ridge regression on ``rate`` (N,) per column, fitted on the
    ``train`` rows (N,) bool where both are finite, applied to every row; NaN where a value or the rate is missing,
    and for a column with fewer than 3 usable training rows."""
    values = np.asarray(values, dtype=np.float64)
    rate = np.asarray(rate, dtype=np.float64)
    residuals = np.full(values.shape, np.nan)
    for column in range(values.shape[1]):
        y = values[:, column]
        fit = train & np.isfinite(y) & np.isfinite(rate)
        if fit.sum() < 3:
            continue
        mean_x, sd_x = rate[fit].mean(), rate[fit].std() or 1.0
        x = (rate - mean_x) / sd_x
        mean_y = y[fit].mean()
        slope = float(x[fit] @ (y[fit] - mean_y)) / (float(x[fit] @ x[fit]) + alpha)
        residuals[:, column] = y - (mean_y + slope * x)
    return residuals
