"""Linear probing of frozen embeddings (METHOD.md §5): per phenotype, a ridge regression whose penalty is
chosen by cross-validation on train (efficient leave-one-out), scored on test by R², MAE (the phenotype's
units), Pearson r and R² within condition (against the training split's condition means: what the probe adds
beyond recognising the condition), each with a bootstrap 95% interval, at several fractions of the training labels.

Intervals: every method, seed and fraction of one phenotype is scored on the *same* bootstrap resamples of
the test subjects, so seed means have intervals and differences between methods are paired; the rules are
``ptacl_core.evaluation.statistics``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from ptacl_core.evaluation.statistics import (
    LABEL_SUBSET_SALT,
    bootstrap_indices,
    interval,
    paired_difference,
    resample_counts,
    seed_sd,
)
from ptacl_core.phenotypes import PHENOTYPES, PROBED

METRICS = ("r2", "mae", "pearson", "r2_within")
RIDGE_ALPHAS = tuple(np.logspace(-3, 6, 19))  # up to "predict the mean" for a handful of labels


@dataclass(frozen=True)
class ProbeConfig:
    """fractions: of the training labels (nested subsets, drawn per seed); n_bootstrap: test resamples;
    min_labels: the fewest training labels a probe is fitted on (1% of a small cohort rounds up to this)."""

    fractions: tuple[float, ...] = (0.01, 0.1, 1.0)
    n_bootstrap: int = 1000
    alphas: tuple[float, ...] = RIDGE_ALPHAS
    min_labels: int = 5
    bootstrap_seed: int = 0
    phenotypes: tuple[str, ...] = field(default_factory=lambda: tuple(PROBED))

    def __post_init__(self) -> None:
        if not self.fractions or any(not 0 < f <= 1 for f in self.fractions):
            raise ValueError(f"label fractions must lie in (0, 1], got {self.fractions}")
        if self.n_bootstrap < 10:
            raise ValueError(f"n_bootstrap must be at least 10, got {self.n_bootstrap}")
        unknown = set(self.phenotypes) - set(PROBED)
        if unknown:
            raise ValueError(f"unknown phenotype(s) {sorted(unknown)}; known: {PROBED}")


def fit_ridge(train_x: np.ndarray, train_y: np.ndarray, alphas=RIDGE_ALPHAS) -> Pipeline:
    """Standardised inputs -> ridge, penalty by leave-one-out CV on the training rows. x: (N, D), y: (N,)
    or (N, P): several targets share one decomposition of x, each with its own penalty."""
    if len(train_y) < 3:
        raise ValueError(f"a probe needs at least 3 training labels, got {len(train_y)}")
    ridge = RidgeCV(alphas=np.asarray(alphas), alpha_per_target=np.ndim(train_y) == 2)
    return make_pipeline(StandardScaler(), ridge).fit(train_x, train_y)


def label_subset(n_train: int, fraction: float, seed: int, min_labels: int = 5) -> np.ndarray:
    """Indices of ``fraction`` of ``n_train`` training rows (at least ``min_labels``), sorted.

    One permutation per seed, so the subsets are nested: the 1% rows are inside the 10% rows.
    """
    order = np.random.default_rng([seed, LABEL_SUBSET_SALT]).permutation(n_train)
    count = min(n_train, max(min_labels, int(np.ceil(fraction * n_train))))
    return np.sort(order[:count])


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray, baseline: np.ndarray | None = None) -> dict[str, float]:
    """R², mean absolute error, Pearson r and (given ``baseline``, the training condition mean of each row) R²
    within condition of one set of predictions (1-D arrays)."""
    values = bootstrap_metrics(y_true, y_pred, np.arange(len(y_true))[None], baseline)
    return {name: float(values[name][0]) for name in METRICS}


def bootstrap_metrics(y_true: np.ndarray, y_pred: np.ndarray, indices: np.ndarray,
                      baseline: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """R², MAE, Pearson r and R² within condition on every resample at once. indices: (B, n) -> each metric (B,).

    baseline: (n,) the training split's mean of each row's condition; r2_within = 1 - SSE / sum((y - baseline)^2)
    (NaN without it)."""
    return weighted_metrics(y_true, y_pred, resample_counts(indices, len(y_true)), baseline)


def weighted_metrics(y_true: np.ndarray, y_pred: np.ndarray, weights: np.ndarray,
                     baseline: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The metrics of ``bootstrap_metrics`` with row weights (B, n): a resample as the number of times it draws
    each row. A phenotype unknown for some subjects is scored on each resample restricted to its known rows,
    so phenotypes share one set of subject resamples whatever their missing values."""
    y = np.asarray(y_true, dtype=float)[None, :]
    p = np.asarray(y_pred, dtype=float)[None, :]
    w = np.asarray(weights, dtype=float)
    total = w.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        y_centred = y - (w * y).sum(axis=1, keepdims=True) / total
        p_centred = p - (w * p).sum(axis=1, keepdims=True) / total
        residual = y - p
        sse = (w * residual ** 2).sum(axis=1)
        r2 = 1.0 - sse / (w * y_centred ** 2).sum(axis=1)
        pearson = (w * y_centred * p_centred).sum(axis=1) / np.sqrt((w * y_centred ** 2).sum(axis=1) * (w * p_centred ** 2).sum(axis=1))
        mae = (w * np.abs(residual)).sum(axis=1) / total[:, 0]
        if baseline is None:
            r2_within = np.full(len(w), np.nan)
        else:
            r2_within = 1.0 - sse / (w * (y - np.asarray(baseline, dtype=float)[None, :]) ** 2).sum(axis=1)
    return {"r2": r2, "mae": mae, "pearson": pearson, "r2_within": r2_within}


@dataclass
class ProbeResults:
    """per_seed: one row per (method, seed, fraction, phenotype) with each metric and its interval;
    predictions: test predictions at the largest fraction; bootstrap: (method, seed, fraction, phenotype)
    -> {metric: (B,) resampled values}, on resamples shared by every method."""

    per_seed: pd.DataFrame
    predictions: pd.DataFrame
    bootstrap: dict

    def summary(self) -> pd.DataFrame:
        """Mean over seeds, SD over seeds and the 95% interval of the seed mean, per (method, fraction, phenotype)."""
        rows = []
        for (method, fraction, phenotype), group in self.per_seed.groupby(["method", "fraction", "phenotype"], sort=False):
            row = {"method": method, "fraction": fraction, "phenotype": phenotype, "n_seeds": len(group),
                   "n_train": int(group.n_train.iloc[0]), "n_test": int(group.n_test.iloc[0])}
            for metric in METRICS:
                resampled = np.mean([self.bootstrap[(method, seed, fraction, phenotype)][metric] for seed in group.seed], axis=0)
                row[metric] = float(group[metric].mean())
                row[f"{metric}_seed_sd"] = seed_sd(group[metric])
                row[f"{metric}_low"], row[f"{metric}_high"] = interval(resampled)
            rows.append(row)
        return pd.DataFrame(rows)

    def paired_difference(self, method: str, baseline: str, fraction: float, phenotype: str, metric: str = "r2") -> dict:
        """Seed-mean metric of ``method`` minus ``baseline``, with the paired bootstrap 95% interval."""
        def resampled(name: str) -> np.ndarray:
            seeds = self.per_seed[(self.per_seed.method == name) & (self.per_seed.fraction == fraction)
                                  & (self.per_seed.phenotype == phenotype)].seed
            if seeds.empty:
                raise KeyError(f"no probe results for {name!r} at fraction {fraction} on {phenotype}")
            return np.mean([self.bootstrap[(name, seed, fraction, phenotype)][metric] for seed in seeds], axis=0)

        rows = self.per_seed[(self.per_seed.fraction == fraction) & (self.per_seed.phenotype == phenotype)]
        return {"method": method, "baseline": baseline, "fraction": fraction, "phenotype": phenotype, "metric": metric,
                **paired_difference(resampled(method), resampled(baseline), rows[rows.method == method][metric].to_numpy(),
                                    rows[rows.method == baseline][metric].to_numpy())}


DIFFERENCE_COLUMNS = ["method", "baseline", "fraction", "phenotype", "metric", "difference", "low", "high", "seed_se", "seed_df"]


def probe_differences(results: ProbeResults, method: str = "ptacl", metrics=("r2", "mae")) -> pd.DataFrame:
    """``method`` against every other method, for each (fraction, phenotype) both were probed on."""
    per_seed = results.per_seed
    if per_seed.empty or method not in set(per_seed.method):
        return pd.DataFrame(columns=DIFFERENCE_COLUMNS)
    probed = per_seed.groupby("method")[["fraction", "phenotype"]].apply(lambda g: set(map(tuple, g.to_numpy())))
    rows = [results.paired_difference(method, baseline, fraction, phenotype, metric)
            for baseline in per_seed.method.unique() if baseline != method
            for fraction, phenotype in sorted(probed[method] & probed[baseline]) for metric in metrics]
    return pd.DataFrame(rows, columns=DIFFERENCE_COLUMNS)


def condition_baseline(values: np.ndarray, conditions: np.ndarray, train: np.ndarray) -> np.ndarray:
    """(N,) the training split's mean of ``values`` within each row's condition (the overall training mean for a
    condition absent from train): what "within condition" is measured against."""
    known = train[np.isfinite(values[train])]
    overall = float(values[known].mean()) if len(known) else float("nan")
    means = pd.Series(values[known]).groupby(conditions[known]).mean()
    return pd.Series(conditions).map(means).fillna(overall).to_numpy(dtype=float)


def probe_methods(embeddings: dict[tuple[str, int], np.ndarray], phenotypes: np.ndarray, splits: np.ndarray,
                  subject_ids: np.ndarray, config: ProbeConfig = ProbeConfig(), progress: bool = False,
                  names: tuple[str, ...] = PHENOTYPES, conditions: np.ndarray | None = None) -> ProbeResults:
    """Probe every (method, seed) embedding. embeddings: (method, seed) -> (N, D) in cache order;
    phenotypes: (N, P) in ``names`` order (NaN where unknown); splits: (N,) "train"/"val"/"test";
    conditions: (N,) labels for R² within condition (NaN without). Phenotypes of ``config`` that are not in
    ``names`` or have too few labels are skipped.

    Test resamples are drawn once over all test subjects and shared by every phenotype (each scored on a
    resample restricted to its known rows): a family of phenotypes then has a coherent bootstrap."""

    if phenotypes.shape[1] != len(names):
        raise ValueError(f"phenotypes has {phenotypes.shape[1]} columns but {len(names)} names were given")
    train, test = np.flatnonzero(splits == "train"), np.flatnonzero(splits == "test")
    if len(train) < 3 or len(test) < 3:
        raise ValueError(f"probing needs train and test subjects; got {len(train)} train, {len(test)} test")
    largest = max(config.fractions)
    wanted = [name for name in config.phenotypes if name in names]
    counts = resample_counts(bootstrap_indices(len(test), config.n_bootstrap, [config.bootstrap_seed, len(test)]), len(test))
    indices, baselines = {}, {}
    for name in wanted:
        column = names.index(name)
        known_mask = np.isfinite(phenotypes[test, column])
        indices[name] = (test[known_mask], counts[:, known_mask])
        if conditions is not None:
            baselines[name] = condition_baseline(phenotypes[:, column], np.asarray(conditions).astype(str), train)
    rows, predictions, bootstrap = [], [], {}
    for (method, seed), x in tqdm(list(embeddings.items()), desc="probing", disable=not progress):
        for fraction in config.fractions:
            subset = train[label_subset(len(train), fraction, seed, config.min_labels)]
            # phenotypes known on the same training rows are fitted together (one decomposition of x)
            groups: dict[tuple[int, ...], list[str]] = {}
            for name in wanted:
                fit_rows = subset[np.isfinite(phenotypes[subset, names.index(name)])]
                if len(fit_rows) >= 3 and len(indices[name][0]) >= 3:
                    groups.setdefault(tuple(fit_rows), []).append(name)
            for fit_rows, group in groups.items():
                fit_rows = np.array(fit_rows)
                columns = [names.index(name) for name in group]
                probe = fit_ridge(x[fit_rows], phenotypes[np.ix_(fit_rows, columns)], config.alphas)
                alphas = np.atleast_1d(probe[-1].alpha_)
                for j, (name, column) in enumerate(zip(group, columns, strict=True)):
                    known, resamples = indices[name]
                    predicted = probe.predict(x[known]).reshape(len(known), -1)[:, j]
                    truth = phenotypes[known, column]
                    baseline = baselines[name][known] if name in baselines else None
                    point = regression_metrics(truth, predicted, baseline)
                    resampled = weighted_metrics(truth, predicted, resamples, baseline)
                    bootstrap[(method, seed, fraction, name)] = resampled
                    row = {"method": method, "seed": seed, "fraction": fraction, "phenotype": name,
                           "n_train": len(fit_rows), "n_test": len(known), "alpha": float(alphas[j])}
                    for metric in METRICS:
                        row[metric] = point[metric]
                        row[f"{metric}_low"], row[f"{metric}_high"] = interval(resampled[metric])
                    rows.append(row)
                    if fraction == largest:
                        predictions.append(pd.DataFrame({"method": method, "seed": seed, "phenotype": name,
                                                         "subject_id": subject_ids[known], "true": truth, "predicted": predicted}))
    return ProbeResults(pd.DataFrame(rows), pd.concat(predictions, ignore_index=True) if predictions else pd.DataFrame(),
                        bootstrap)
