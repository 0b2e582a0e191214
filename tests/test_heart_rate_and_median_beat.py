"""The temporal phenotypes beyond heart rate and the median-beat reference row (METHOD.md §5), each against a
brute-force reference (scikit-learn's Ridge and PCA), and the endpoint that uses them."""

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge

from ptacl_core.evaluation.comparison import CohortView
from ptacl_core.evaluation.endpoints import EndpointPlan
from ptacl_core.evaluation.heart_rate import RIDGE_ALPHA, beyond_heart_rate, ecg_heart_rate
from ptacl_core.evaluation.references import median_beat_features, median_beats, reference_features
from ptacl_core.phenotypes import BEYOND_HEART_RATE, PROBED, TEMPORAL_PHENOTYPES, axis_label, display_name
from ptacl_core.preprocessing.cache import Cache


def test_beyond_heart_rate_matches_sklearn_ridge_on_the_standardised_rate():
    rng = np.random.default_rng(0)
    rate = rng.uniform(50, 100, 80)
    values = np.column_stack([400 - 2.0 * rate + rng.normal(0, 5, 80), rng.normal(10, 1, 80)])
    values[3, 0] = np.nan
    rate[5] = np.nan
    train = np.arange(80) < 50
    residuals = beyond_heart_rate(values, rate, train)
    for column in range(2):
        fit = train & np.isfinite(values[:, column]) & np.isfinite(rate)
        mean, sd = rate[fit].mean(), rate[fit].std()
        model = Ridge(alpha=RIDGE_ALPHA).fit(((rate[fit] - mean) / sd)[:, None], values[fit, column])
        usable = np.isfinite(values[:, column]) & np.isfinite(rate)
        expected = values[usable, column] - model.predict(((rate[usable] - mean) / sd)[:, None])
        np.testing.assert_allclose(residuals[usable, column], expected, rtol=1e-9, atol=1e-9)
        assert np.isnan(residuals[~usable, column]).all()
    kept = train & np.isfinite(residuals[:, 0])  # the rate is (all but: ridge shrinks the slope by n/(n+alpha)) gone
    assert abs(np.corrcoef(values[kept, 0], rate[kept])[0, 1]) > 0.9
    assert abs(np.corrcoef(residuals[kept, 0], rate[kept])[0, 1]) < 0.2
    assert np.isnan(beyond_heart_rate(values, rate, np.zeros(80, bool))).all()  # nothing to fit on


def test_the_view_carries_the_residual_columns_named_and_with_units(tiny_cache):
    cache = Cache.open(tiny_cache)
    view = CohortView.of(cache)
    assert view.phenotype_names == PROBED and view.phenotypes.shape[1] == len(PROBED)
    rate = ecg_heart_rate(cache)
    for name, base in zip(BEYOND_HEART_RATE, TEMPORAL_PHENOTYPES, strict=True):
        expected = beyond_heart_rate(view.column(base)[:, None], rate, view.splits == "train")[:, 0]
        np.testing.assert_allclose(view.column(name), expected, equal_nan=True)
    assert display_name("LV_time_to_ES_ms_beyond_HR") == "time to end-systole beyond heart rate"
    assert axis_label("LV_time_to_ES_ms_beyond_HR") == "time to end-systole beyond heart rate (ms)"
    plan = EndpointPlan.load()
    endpoint = next(e for e in plan.endpoints if e.name == "temporal family R² beyond heart rate")
    assert set(endpoint.phenotypes) == set(BEYOND_HEART_RATE) and endpoint.role == "secondary"


def test_median_beat_row_is_a_pca_of_the_training_beats(tiny_cache, tmp_path):
    cache = Cache.open(tiny_cache)
    features = median_beat_features(cache, tmp_path, components=8)
    beats = median_beats(cache, tmp_path).astype(np.float64)
    train = (cache.index.split.to_numpy() == "train") & np.isfinite(beats).all(axis=1)
    pca = PCA(n_components=8, svd_solver="full").fit(beats[train])
    expected = pca.transform(np.where(np.isfinite(beats), beats, pca.mean_))
    for k in range(8):  # a principal axis has no sign: compare up to it
        sign = np.sign(features[:, k] @ expected[:, k])
        np.testing.assert_allclose(sign * features[:, k], expected[:, k], rtol=1e-3, atol=1e-3 * np.abs(expected[:, k]).max())
    # brute force: one subject's median beat, beat by beat
    fs, row = float(cache.config.ecg.fs), int(cache.index.row.iloc[0])
    signal, rpeaks = np.asarray(cache.ecg[row], dtype=np.float64), cache.rpeaks(0)
    before, after = int(round(0.25 * fs)), int(round(0.45 * fs))
    stack = [signal[:, r - before:r + after] for r in rpeaks if r >= before and r + after <= signal.shape[1]]
    np.testing.assert_allclose(beats[0], np.median(np.stack(stack), axis=0).ravel(), rtol=1e-3, atol=1e-3)
    assert ("median_beat", 0) in reference_features(cache, tmp_path)


def test_median_beat_row_refuses_a_cache_without_training_beats(tiny_cache, tmp_path, monkeypatch):
    cache = Cache.open(tiny_cache)
    monkeypatch.setattr(cache, "index", cache.index.assign(split="test"))
    with pytest.raises(ValueError, match="fewer than 3 training subjects"):
        median_beat_features(cache, tmp_path)
