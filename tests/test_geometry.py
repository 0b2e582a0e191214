"""Phase geometry: token width against bin width, soft-target sigma, bin occupancy (loop references)."""

import numpy as np
import pytest

from ptacl_core.model.geometry import (
    GeometryError,
    check_geometry,
    cohort_geometry,
    filled_bins,
    median_rr_s,
    phase_geometry,
    underfilled_fraction,
)


def _filled_loop(rpeaks, fs, n_samples, patch, bins):
    out = np.zeros((len(rpeaks), bins), dtype=bool)
    for i, peaks in enumerate(rpeaks):
        peaks = sorted(p / fs for p in peaks)
        for n in range(n_samples // patch):
            t = (n + 0.5) * patch / fs
            for start, end in zip(peaks[:-1], peaks[1:], strict=True):
                if start <= t < end:
                    out[i, min(int((t - start) / (end - start) * bins), bins - 1)] = True
    return out


def test_filled_bins_match_a_loop_over_tokens():
    rng = np.random.default_rng(0)
    rpeaks = []
    for _ in range(12):
        rr = rng.uniform(0.45, 1.3)
        start = rng.uniform(0.0, 1.0)
        rpeaks.append(np.round((start + rr * np.arange(int((10 - start) / rr))) * 250).astype(int))
    rpeaks.append(np.array([100]))  # one beat: nothing complete
    for patch, bins in ((25, 7), (50, 10), (20, 16)):
        assert np.array_equal(filled_bins(rpeaks, 250.0, 2500, patch, bins), _filled_loop(rpeaks, 250.0, 2500, patch, bins))


def test_wide_tokens_leave_bins_empty_and_are_counted_as_underfilled():
    fast = [np.array([0, 125, 250])]  # two beats at 120 bpm: five 200 ms tokens for K = 10 bins of 50 ms
    filled = filled_bins(fast, 250.0, 2500, 50, 10)
    assert filled.sum() <= 5 and underfilled_fraction(filled) == 1.0
    assert underfilled_fraction(np.ones((3, 7), dtype=bool)) == 0.0


def test_median_rr_and_narrow_fraction():
    rpeaks = [np.array([0, 250, 500]), np.array([10, 160, 310, 460]), np.array([5]), np.array([-1, 0, 300])]
    rr = median_rr_s(rpeaks, 250.0)
    assert rr[0] == pytest.approx(1.0) and rr[1] == pytest.approx(0.6) and np.isnan(rr[2]) and rr[3] == pytest.approx(1.2)
    geometry = phase_geometry(0.1, 8, rr)  # bins: 125 ms, 75 ms, 150 ms
    assert geometry.median_rr_s == pytest.approx(1.0) and geometry.narrow_fraction == pytest.approx(1 / 3)
    assert geometry.soft_sigma == pytest.approx(0.05)


def test_bins_narrower_than_a_token_are_refused_and_a_minority_warned_about():
    rr = np.array([0.9] * 95 + [0.6] * 5 + [0.5] * 3)
    with pytest.raises(GeometryError, match=r"use K <= 9"):
        check_geometry(phase_geometry(0.1, 10, rr), "cache x")
    with pytest.warns(UserWarning, match="narrower than a token"):
        check_geometry(phase_geometry(0.1, 8, rr))  # 125 ms at the median, but 8 % of patients below 100 ms
    check_geometry(phase_geometry(0.1, 5, rr))  # no warning: every bin >= 100 ms
    with pytest.raises(GeometryError, match="no patient has two R peaks"):
        phase_geometry(0.1, 7, np.array([np.nan]))
    with pytest.raises(GeometryError, match="at least 2 phase bins"):
        phase_geometry(0.1, 1, rr)


def test_cohort_geometry_numbers():
    rpeaks = [np.round(np.arange(0.3, 10, 0.9) * 250).astype(int) for _ in range(4)]
    values = cohort_geometry(rpeaks, 250.0, 2500, 25, 7)
    assert values["token_ms"] == pytest.approx(100) and values["median_rr_ms"] == pytest.approx(900)
    assert values["median_bin_ms"] == pytest.approx(900 / 7) and values["narrow_bin_fraction"] == 0.0
    assert values["underfilled_fraction"] == 0.0 and values["mean_bin_occupancy"] == 1.0
