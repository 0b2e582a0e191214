"""The temporal phenotypes beyond heart rate and the median-beat reference row (METHOD.md §5), each against a
brute-force reference (scikit-learn's Ridge and PCA), and the endpoint that uses them."""

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge

from ptacl_core.evaluation.comparison import CohortView
from ptacl_core.evaluation.endpoints import EndpointPlan
from ptacl_core.evaluation.heart_rate import RIDGE_ALPHA, beyond_heart_rate, ecg_heart_rate, rate_basis
from ptacl_core.evaluation.references import median_beat_features, median_beats, reference_features
from ptacl_core.phenotypes import BEYOND_HEART_RATE, PROBED, TEMPORAL_PHENOTYPES, axis_label, display_name
from ptacl_core.preprocessing.cache import Cache


def test_beyond_heart_rate_matches_sklearn_ridge_on_the_standardised_basis():
    rng = np.random.default_rng(0)
    rate = rng.uniform(50, 100, 80)
    values = np.column_stack([400 - 2.0 * rate + rng.normal(0, 5, 80), rng.normal(10, 1, 80)])
    values[3, 0] = np.nan
    rate[5] = np.nan
    train = np.arange(80) < 50
    residuals = beyond_heart_rate(values, rate, train)
    basis = rate_basis(rate)
    for column in range(2):
        fit = train & np.isfinite(values[:, column]) & np.isfinite(rate)
        mean, sd = basis[fit].mean(axis=0), basis[fit].std(axis=0)
        model = Ridge(alpha=RIDGE_ALPHA).fit((basis[fit] - mean) / sd, values[fit, column])
        usable = np.isfinite(values[:, column]) & np.isfinite(rate)
        expected = values[usable, column] - model.predict((basis[usable] - mean) / sd)
        np.testing.assert_allclose(residuals[usable, column], expected, rtol=1e-9, atol=1e-9)
        assert np.isnan(residuals[~usable, column]).all()
    assert np.isnan(beyond_heart_rate(values, rate, np.zeros(80, bool))).all()  # nothing to fit on


def test_features_of_the_rate_alone_do_not_predict_the_residuals():
    """The kit's timing model (QS2 = 546 - 2 HR ms, Weissler): time to end-systole in ms and as a share of RR. A
    straight line in HR leaves rate in the share; the basis must not. Probed with HR, HR², 1/HR and log HR."""
    rng = np.random.default_rng(1)
    n = 2000
    rate = rng.uniform(45, 110, n)
    rr_ms = 60000.0 / rate
    time_to_es = 546 - 2.0 * rate + rng.normal(0, 12, n)
    values = np.column_stack([time_to_es, 100 * time_to_es / rr_ms])
    train, test = np.arange(n) < 1400, np.arange(n) >= 1400
    residuals = beyond_heart_rate(values, rate, train)
    features = np.column_stack([rate, rate ** 2, 1 / rate, np.log(rate)])
    for column in range(2):
        model = Ridge(alpha=1e-3).fit((features[train] - features[train].mean(0)) / features[train].std(0),
                                      residuals[train, column])
        predicted = model.predict((features[test] - features[train].mean(0)) / features[train].std(0))
        r2 = 1 - np.mean((residuals[test, column] - predicted) ** 2) / np.var(residuals[test, column])
        assert r2 < 0.02, (column, r2)
        # and the raw values are mostly rate: the test has something to remove
        assert np.corrcoef(values[:, column], rate)[0, 1] ** 2 > 0.5


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


def test_median_beat_row_is_left_out_without_training_beats(tiny_cache, tmp_path, monkeypatch):
    cache = Cache.open(tiny_cache)
    monkeypatch.setattr(cache, "index", cache.index.assign(split="test"))
    assert median_beat_features(cache, tmp_path) is None
    assert ("median_beat", 0) not in reference_features(cache, tmp_path)
