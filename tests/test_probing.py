"""Linear probing: metrics against scikit-learn/scipy, bootstrap against a loop, label subsets, intervals."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import LeaveOneOut, cross_val_predict
from sklearn.preprocessing import StandardScaler

from ptacl_core.evaluation.probing import (
    ProbeConfig,
    bootstrap_metrics,
    fit_ridge,
    label_subset,
    probe_differences,
    probe_methods,
    regression_metrics,
)
from ptacl_core.evaluation.statistics import bootstrap_indices, interval, seed_standard_error
from ptacl_core.phenotypes import PHENOTYPES


def test_metrics_match_sklearn_and_scipy():
    rng = np.random.default_rng(0)
    y = rng.normal(60, 8, 200)
    p = y + rng.normal(0, 5, 200)
    metrics = regression_metrics(y, p)
    assert metrics["r2"] == pytest.approx(r2_score(y, p), abs=1e-12)
    assert metrics["mae"] == pytest.approx(mean_absolute_error(y, p), abs=1e-12)
    assert metrics["pearson"] == pytest.approx(pearsonr(y, p)[0], abs=1e-12)


def test_vectorised_bootstrap_equals_a_loop():
    rng = np.random.default_rng(1)
    y, p = rng.normal(size=50), rng.normal(size=50)
    indices = bootstrap_indices(50, 40, seed=3)
    values = bootstrap_metrics(y, p, indices)
    for b, rows in enumerate(indices):
        assert values["r2"][b] == pytest.approx(r2_score(y[rows], p[rows]), abs=1e-10)
        assert values["mae"][b] == pytest.approx(mean_absolute_error(y[rows], p[rows]), abs=1e-10)
        assert values["pearson"][b] == pytest.approx(pearsonr(y[rows], p[rows])[0], abs=1e-10)


def test_interval_is_the_percentile_interval_and_ignores_nan():
    samples = np.concatenate([np.arange(1000, dtype=float), [np.nan]])
    low, high = interval(samples)
    assert low == pytest.approx(np.percentile(np.arange(1000), 2.5)) and high == pytest.approx(np.percentile(np.arange(1000), 97.5))
    assert np.isnan(interval(np.array([np.nan]))[0])


def test_ridge_penalty_is_chosen_by_leave_one_out_cv():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 8))
    y = x @ rng.normal(size=8) + rng.normal(0, 2.0, 60)
    alphas = (0.01, 1.0, 30.0, 1000.0)
    probe = fit_ridge(x, y, alphas)
    # brute force: explicit leave-one-out error of each penalty (scaler refitted inside each fold differs
    # slightly from RidgeCV's, so compare the choice on standardised data as RidgeCV sees it)
    xs = StandardScaler().fit_transform(x)
    errors = {a: np.mean((cross_val_predict(Ridge(alpha=a), xs, y, cv=LeaveOneOut()) - y) ** 2) for a in alphas}
    assert probe[-1].alpha_ == min(errors, key=errors.get)
    with pytest.raises(ValueError, match="at least 3 training labels"):
        fit_ridge(x[:2], y[:2])


def test_several_targets_fitted_together_equal_one_fit_each():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(80, 6))
    targets = np.stack([x @ rng.normal(size=6) + rng.normal(0, s, 80) for s in (0.1, 3.0, 30.0)], 1)
    together = fit_ridge(x, targets)
    for j in range(3):
        alone = fit_ridge(x, targets[:, j])
        assert together[-1].alpha_[j] == alone[-1].alpha_
        np.testing.assert_allclose(together.predict(x)[:, j], alone.predict(x), rtol=1e-8, atol=1e-8)


def test_label_subsets_are_nested_sized_and_seeded():
    small, large = label_subset(700, 0.01, seed=1), label_subset(700, 0.1, seed=1)
    assert len(small) == 7 and len(large) == 70 and set(small) <= set(large)
    assert len(label_subset(100, 0.01, seed=1, min_labels=5)) == 5
    assert len(label_subset(700, 1.0, seed=1)) == 700
    assert not np.array_equal(label_subset(700, 0.1, seed=1), label_subset(700, 0.1, seed=2))


def test_probe_config_rejects_bad_values():
    with pytest.raises(ValueError, match="label fractions"):
        ProbeConfig(fractions=(0.0, 1.0))
    with pytest.raises(ValueError, match="n_bootstrap"):
        ProbeConfig(n_bootstrap=2)
    with pytest.raises(ValueError, match="unknown phenotype"):
        ProbeConfig(phenotypes=("LVEF",))


def _toy_cohort(n=300, seed=0):
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 3))
    phenotypes = np.full((n, len(PHENOTYPES)), np.nan)
    phenotypes[:, PHENOTYPES.index("LVEF_pct")] = 58 + 5 * latent[:, 0]
    phenotypes[:, PHENOTYPES.index("LVEDV_mL")] = 150 + 30 * latent[:, 1]
    splits = np.array(["train"] * 200 + ["val"] * 40 + ["test"] * 60)
    informative = np.hstack([latent + rng.normal(0, 0.2, latent.shape), rng.normal(size=(n, 5))])
    noise = rng.normal(size=(n, 8))
    return phenotypes, splits, np.array([f"s{i}" for i in range(n)]), informative, noise


def test_probe_methods_ranks_an_informative_embedding_above_noise():
    phenotypes, splits, ids, informative, noise = _toy_cohort()
    config = ProbeConfig(fractions=(0.1, 1.0), n_bootstrap=200, phenotypes=("LVEF_pct", "LVEDV_mL"))
    results = probe_methods({("good", 0): informative, ("good", 1): informative + 0.01, ("noise", 0): noise},
                            phenotypes, splits, ids, config)
    summary = results.summary().set_index(["method", "fraction", "phenotype"])
    good, bad = summary.loc[("good", 1.0, "LVEF_pct")], summary.loc[("noise", 1.0, "LVEF_pct")]
    assert good.r2 > 0.9 and bad.r2 < 0.2 and good.n_seeds == 2 and good.n_test == 60
    assert good.r2_low <= good.r2 <= good.r2_high and good.mae < bad.mae
    difference = results.paired_difference("good", "noise", 1.0, "LVEF_pct")
    assert difference["difference"] > 0.7 and difference["low"] > 0
    assert np.isnan(difference["seed_se"])  # "noise" has one seed: no seed spread to speak of
    # the per-seed row equals a direct fit on the same rows
    train = np.flatnonzero(splits == "train")
    test = np.flatnonzero(splits == "test")
    column = PHENOTYPES.index("LVEDV_mL")
    direct = fit_ridge(noise[train], phenotypes[train, column]).predict(noise[test])
    row = results.per_seed.query("method == 'noise' and fraction == 1.0 and phenotype == 'LVEDV_mL'").iloc[0]
    assert row.r2 == pytest.approx(r2_score(phenotypes[test, column], direct), abs=1e-9)
    assert row.n_train == 200 and results.per_seed.query("fraction == 0.1").n_train.eq(20).all()
    predictions = results.predictions
    assert set(predictions.phenotype) == {"LVEF_pct", "LVEDV_mL"} and len(predictions) == 3 * 2 * 60


def test_seed_standard_error_by_hand():
    a, b = [0.5, 0.7, 0.6], [0.4, 0.2]
    expected = np.sqrt(np.var(a, ddof=1) / 3 + np.var(b, ddof=1) / 2)
    assert seed_standard_error(a, b) == pytest.approx(expected)
    assert np.isnan(seed_standard_error([0.5], b))


def test_unknown_phenotypes_are_left_out_not_imputed():
    phenotypes, splits, ids, informative, _ = _toy_cohort()
    column = PHENOTYPES.index("LVEF_pct")
    phenotypes[:50, column] = np.nan  # 50 train labels unknown
    phenotypes[-10:, column] = np.nan  # 10 test labels unknown
    results = probe_methods({("good", 0): informative}, phenotypes, splits, ids,
                            ProbeConfig(fractions=(1.0,), n_bootstrap=50, phenotypes=("LVEF_pct",)))
    row = results.per_seed.iloc[0]
    assert row.n_train == 150 and row.n_test == 50 and np.isfinite(row.r2)
    assert isinstance(results.summary(), pd.DataFrame)


def test_probing_needs_train_and_test():
    phenotypes, splits, ids, informative, _ = _toy_cohort()
    with pytest.raises(ValueError, match="train and test"):
        probe_methods({("good", 0): informative}, phenotypes, np.full(len(splits), "train"), ids)


def test_test_labels_never_reach_the_fit():
    phenotypes, splits, ids, informative, _ = _toy_cohort()
    config = ProbeConfig(fractions=(0.1, 1.0), n_bootstrap=50, phenotypes=("LVEF_pct", "LVEDV_mL"))
    first = probe_methods({("good", 0): informative}, phenotypes, splits, ids, config)
    shuffled = phenotypes.copy()
    test = np.flatnonzero(splits == "test")
    shuffled[test] = np.random.default_rng(5).permutation(shuffled[test]) * 3.0  # scramble and rescale test labels
    second = probe_methods({("good", 0): informative}, shuffled, splits, ids, config)
    np.testing.assert_array_equal(first.per_seed.alpha, second.per_seed.alpha)
    np.testing.assert_allclose(first.predictions.predicted, second.predictions.predicted)
    assert not np.allclose(first.per_seed.r2, second.per_seed.r2)  # the scores did see the change


def test_a_phenotype_missing_from_the_cohort_is_skipped_everywhere():
    phenotypes, splits, ids, informative, noise = _toy_cohort()
    phenotypes[:, PHENOTYPES.index("LVCO_L_min")] = np.nan  # METHOD.md's phenotypes.csv may lack LVCO
    results = probe_methods({("ptacl", 0): informative, ("global", 0): noise}, phenotypes, splits, ids,
                            ProbeConfig(fractions=(1.0,), n_bootstrap=50))
    assert set(results.per_seed.phenotype) == {"LVEF_pct", "LVEDV_mL"}
    differences = probe_differences(results, "ptacl")
    assert set(differences.phenotype) == {"LVEF_pct", "LVEDV_mL"} and set(differences.baseline) == {"global"}
    assert probe_differences(results, "local").empty  # no such method: an empty table, not a KeyError


def test_r2_within_condition_matches_a_loop():
    from ptacl_core.evaluation.probing import condition_baseline

    rng = np.random.default_rng(3)
    conditions = np.array(["a", "b", "c"] * 20)
    values = rng.normal(size=60) + (conditions == "b") * 5.0
    train = np.arange(40)
    baseline = condition_baseline(values, conditions, train)
    for i in range(60):
        assert baseline[i] == pytest.approx(np.mean([values[j] for j in train if conditions[j] == conditions[i]]))
    test = np.arange(40, 60)
    predicted = values[test] + rng.normal(0, 0.5, 20)
    indices = rng.integers(0, 20, size=(7, 20))
    resampled = bootstrap_metrics(values[test], predicted, indices, baseline[test])["r2_within"]
    for b in range(7):
        rows = indices[b]
        sse = sum((values[test][i] - predicted[i]) ** 2 for i in rows)
        sst = sum((values[test][i] - baseline[test][i]) ** 2 for i in rows)
        assert resampled[b] == pytest.approx(1 - sse / sst)
    assert np.isnan(bootstrap_metrics(values[test], predicted, indices)["r2_within"]).all()


def test_probe_reports_within_condition_r2_and_shares_resamples_across_phenotypes():
    rng = np.random.default_rng(4)
    n = 240
    conditions = np.array(["x", "y"] * (n // 2))
    latent = rng.normal(size=(n, 2))
    phenotypes = np.full((n, len(PHENOTYPES)), np.nan)
    phenotypes[:, PHENOTYPES.index("LVEF_pct")] = 50 + 10 * (conditions == "y") + 3 * latent[:, 0] + rng.normal(0, 1, n)
    phenotypes[:, PHENOTYPES.index("LVEDV_mL")] = 150 + 20 * latent[:, 1]
    splits = np.array(["train"] * 160 + ["test"] * 80)
    label_only = {("label", 0): np.c_[(conditions == "y").astype(float), rng.normal(size=(n, 1)) * 1e-3]}
    informative = {("informative", 0): np.c_[(conditions == "y").astype(float), latent]}
    results = probe_methods({**label_only, **informative}, phenotypes, splits, np.arange(n).astype(str),
                            ProbeConfig(fractions=(1.0,), n_bootstrap=50, phenotypes=("LVEF_pct", "LVEDV_mL")),
                            conditions=conditions)
    rows = results.per_seed.set_index(["method", "phenotype"])
    assert rows.loc[("label", "LVEF_pct"), "r2"] > 0.5 and abs(rows.loc[("label", "LVEF_pct"), "r2_within"]) < 0.1
    assert rows.loc[("informative", "LVEF_pct"), "r2_within"] > 0.7
    # phenotypes known on the same test subjects share their resamples: identical R² resamples for a probe
    # whose two targets are the same
    twin = phenotypes.copy()
    twin[:, PHENOTYPES.index("LVEDV_mL")] = twin[:, PHENOTYPES.index("LVEF_pct")]
    shared = probe_methods(informative, twin, splits, np.arange(n).astype(str),
                           ProbeConfig(fractions=(1.0,), n_bootstrap=50, phenotypes=("LVEF_pct", "LVEDV_mL")))
    a, b = shared.bootstrap[("informative", 0, 1.0, "LVEF_pct")]["r2"], shared.bootstrap[("informative", 0, 1.0, "LVEDV_mL")]["r2"]
    assert np.allclose(a, b)
    with pytest.raises(ValueError, match="columns but"):
        probe_methods(informative, phenotypes[:, :5], splits, np.arange(n).astype(str))


def test_a_phenotype_with_missing_labels_is_scored_on_the_shared_resamples_restricted_to_its_known_rows():
    from ptacl_core.evaluation.probing import weighted_metrics

    rng = np.random.default_rng(5)
    y, p = rng.normal(size=30), rng.normal(size=30)
    known = rng.random(30) > 0.3
    drawn = rng.integers(0, 30, size=(6, 30))
    counts = np.zeros((6, 30))
    np.add.at(counts, (np.repeat(np.arange(6), 30), drawn.ravel()), 1.0)
    restricted = weighted_metrics(y[known], p[known], counts[:, known])
    for b in range(6):
        rows = [i for i in drawn[b] if known[i]]
        yb, pb = y[rows], p[rows]
        assert restricted["r2"][b] == pytest.approx(1 - np.sum((yb - pb) ** 2) / np.sum((yb - yb.mean()) ** 2))
        assert restricted["mae"][b] == pytest.approx(np.mean(np.abs(yb - pb)))
        assert restricted["pearson"][b] == pytest.approx(np.corrcoef(yb, pb)[0, 1])


def test_heart_rate_probe_reads_the_rate_an_embedding_carries(tiny_cache):
    """An embedding that is the heart rate (plus noise) probes to R² near 1; a random one near or below 0."""
    from ptacl_core.evaluation.diagnostics import heart_rate_probe
    from ptacl_core.model.geometry import median_rr_s
    from ptacl_core.preprocessing.cache import Cache

    cache = Cache.open(tiny_cache)
    rate = 60.0 / median_rr_s([cache.rpeaks(i) for i in range(len(cache.index))], float(cache.config.ecg.fs))
    rng = np.random.default_rng(0)
    informative = np.stack([np.nan_to_num(rate, nan=60.0), rng.normal(size=len(rate))], 1)
    table = heart_rate_probe({("rate", 0): informative, ("noise", 0): rng.normal(size=(len(rate), 2)),
                              ("wrong_length", 0): np.zeros((3, 2))}, cache).set_index("method")
    assert table.loc["rate", "r2"] > 0.95 and table.loc["noise", "r2"] < 0.3 and "wrong_length" not in table.index
