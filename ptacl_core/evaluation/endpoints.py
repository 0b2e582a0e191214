"""Pre-registered endpoints (METHOD.md §5): a short list, fixed in ``configs/endpoints.json`` before the run, on
which the headline comparison (PTACL vs global-only by default) is decided.

Each endpoint is a seed-mean difference of a family mean (e.g. R² averaged over the ten volume phenotypes) or of
one retrieval metric, with a two-level bootstrap over test subjects and training seeds
(``statistics.hierarchical_difference``), a two-sided p-value, the minimal detectable difference at the
configured power, and the test-sampling SD (subjects only). The report Holm-adjusts the p-values across the list
per cohort and comparison (``finalize``) and the verdict names the criterion that decided it (``statistics.verdict``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ptacl_core import paths
from ptacl_core.evaluation.probing import METRICS
from ptacl_core.evaluation.statistics import (
    hierarchical_contrast,
    hierarchical_difference,
    holm,
    minimal_detectable_difference,
    query_resamples,
    seed_degrees_of_freedom,
    seed_standard_error,
    verdict,
)
from ptacl_core.evaluation.tables import DIRECTIONS, ENDPOINT_SAMPLES_GLOB
from ptacl_core.methods import METHODS
from ptacl_core.phenotypes import PROBED

RETRIEVAL_METRIC = re.compile(r"^(precision|zdist|lvef_error|recall)@\d+$")
ENDPOINT_COLUMNS = ["cohort", "endpoint", "role", "comparison", "method", "baseline", "metric", "difference", "ci_low",
                    "ci_high", "p", "p_adjusted", "se", "test_sd", "mdd", "seed_se", "seed_df", "n_seeds", "alpha", "power",
                    "verdict", "criterion"]


@dataclass(frozen=True)
class Endpoint:
    name: str
    role: str  # primary | secondary
    kind: str  # probe | retrieval
    metric: str
    phenotypes: tuple[str, ...] = ()
    direction: str = ""
    higher_is_better: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("probe", "retrieval"):
            raise ValueError(f"endpoint {self.name!r}: kind must be probe or retrieval, got {self.kind!r}")
        if self.role not in ("primary", "secondary"):
            raise ValueError(f"endpoint {self.name!r}: role must be primary or secondary, got {self.role!r}")
        if self.kind == "probe":
            if not self.phenotypes:
                raise ValueError(f"endpoint {self.name!r}: a probe endpoint needs its phenotypes")
            unknown = set(self.phenotypes) - set(PROBED)
            if unknown:
                raise ValueError(f"endpoint {self.name!r}: unknown phenotype(s) {sorted(unknown)}; known: {PROBED}")
            if self.metric not in METRICS:
                raise ValueError(f"endpoint {self.name!r}: probe metric must be one of {METRICS}, got {self.metric!r}")
        if self.kind == "retrieval":
            if self.direction not in DIRECTIONS:
                raise ValueError(f"endpoint {self.name!r}: direction must be one of {DIRECTIONS}, got {self.direction!r}")
            if not RETRIEVAL_METRIC.match(self.metric):
                raise ValueError(f"endpoint {self.name!r}: unknown retrieval metric {self.metric!r}")


@dataclass(frozen=True)
class EndpointPlan:
    """method vs baseline is the headline comparison; each of ``variants`` (the other PTACL variants and the sham
    arm) is compared with the same baseline on the same endpoints, as its own Holm family, where it was trained."""

    method: str = "ptacl"
    baseline: str = "global"
    fraction: float = 1.0
    alpha: float = 0.05
    power: float = 0.8
    endpoints: tuple[Endpoint, ...] = field(default_factory=tuple)
    variants: tuple[str, ...] = ()

    @property
    def comparisons(self) -> list[str]:
        """The methods compared with the baseline: the headline method first, then the variants."""
        return list(dict.fromkeys([self.method, *self.variants]))

    @classmethod
    def load(cls, path: Path | str | None = None) -> EndpointPlan:
        """``configs/endpoints.json`` (or ``path``); a clear error naming the file when it is malformed."""
        path = Path(path) if path else paths.project_root() / "configs" / "endpoints.json"
        try:
            values = json.loads(path.read_text())
            endpoints = tuple(Endpoint(**{**e, "phenotypes": tuple(e.get("phenotypes", ()))}) for e in values["endpoints"])
            plan = cls(**{k: v for k, v in values.items() if k in ("method", "baseline", "fraction", "alpha", "power")},
                       endpoints=endpoints, variants=tuple(values.get("variants", ())))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: not a valid endpoint list ({type(error).__name__}: {error})") from error
        unknown = [m for m in (plan.method, plan.baseline, *plan.variants) if m not in METHODS]
        if unknown:
            raise ValueError(f"{path}: unknown method(s) {unknown}; known: {list(METHODS)}")
        if [e.role for e in plan.endpoints].count("primary") != 1:
            raise ValueError(f"{path}: exactly one endpoint must be primary")
        if not (0 < plan.alpha < 1 and 0 < plan.power < 1 and 0 < plan.fraction <= 1):
            raise ValueError(f"{path}: alpha and power must lie in (0, 1) and fraction in (0, 1]")
        return plan


def probe_endpoint_samples(results, endpoint: Endpoint, method: str, fraction: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(per-seed points (S,), per-seed subject resamples (S, B)) of the family mean of ``endpoint.metric`` over
    its phenotypes, for ``method``; None when the method lacks any of them."""
    per_seed = results.per_seed
    rows = per_seed[(per_seed.method == method) & np.isclose(per_seed.fraction, fraction)
                    & per_seed.phenotype.isin(endpoint.phenotypes)]
    seeds = sorted(rows.seed.unique())
    if not seeds or any(set(rows[rows.seed == s].phenotype) != set(endpoint.phenotypes) for s in seeds):
        return None
    points = np.array([rows[rows.seed == s][endpoint.metric].mean() for s in seeds])
    samples = np.array([np.mean([results.bootstrap[(method, s, rows.fraction.iloc[0], p)][endpoint.metric]
                                 for p in endpoint.phenotypes], axis=0) for s in seeds])
    return points, samples


def retrieval_endpoint_samples(per_query: dict, endpoint: Endpoint, method: str, n_bootstrap: int,
                               seed: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """The same for a retrieval metric: per-seed means over queries and over the shared query resamples
    (those of ``comparison.summarise_retrieval``)."""
    scores = {run_seed: s for (m, run_seed, direction), s in per_query.items() if m == method and direction == endpoint.direction}
    if not scores or any(endpoint.metric not in s.per_query for s in scores.values()):
        return None
    n_queries = len(next(iter(scores.values())).per_query[endpoint.metric])
    indices = query_resamples(n_queries, n_bootstrap, seed)
    ordered_seeds = sorted(scores)
    points = np.array([scores[s].per_query[endpoint.metric].mean() for s in ordered_seeds])
    samples = np.array([scores[s].per_query[endpoint.metric][indices].mean(1) for s in ordered_seeds])
    return points, samples


def endpoint_rows(plan: EndpointPlan, kind: str, samples_of, cohort: str = "") -> pd.DataFrame:
    """One row per (compared method, endpoint of ``kind``): difference from the baseline, interval, raw p, SE,
    test SD, minimal detectable difference, seed SE. The headline method's rows are always kept (so its Holm family
    never shrinks silently); a variant's only where it was trained. samples_of(endpoint, method) -> (points,
    samples) or None."""
    rows = []
    for method in plan.comparisons:
        endpoints = [e for e in plan.endpoints if e.kind == kind]
        if method != plan.method and all(samples_of(e, method) is None for e in endpoints):
            continue  # a variant not trained on this cohort
        for endpoint in endpoints:
            a, b = samples_of(endpoint, method), samples_of(endpoint, plan.baseline)
            base = {"cohort": cohort, "endpoint": endpoint.name, "role": endpoint.role, "comparison": f"{method} − {plan.baseline}",
                    "method": method, "baseline": plan.baseline, "metric": endpoint.metric, "alpha": plan.alpha,
                    "power": plan.power}
            if a is None or b is None:
                rows.append({**base, "difference": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p": np.nan, "n_seeds": 0})
                continue
            result = hierarchical_difference(a[1], b[1])
            rows.append({**base, "difference": float(np.mean(a[0]) - np.mean(b[0])),
                         "ci_low": result["low"], "ci_high": result["high"], "p": result["p"], "se": result["se"],
                         "test_sd": result["test_sd"], "mdd": minimal_detectable_difference(result["se"], plan.alpha, plan.power),
                         "seed_se": seed_standard_error(a[0], b[0]), "seed_df": seed_degrees_of_freedom(a[0], b[0]),
                         "n_seeds": result["n_seeds"]})
    return pd.DataFrame(rows, columns=[c for c in ENDPOINT_COLUMNS if c not in ("p_adjusted", "verdict", "criterion")])


def save_samples(path: Path | str, plan: EndpointPlan, kind: str, samples_of) -> None:
    """The per-seed points and subject resamples of both compared methods, per endpoint of ``kind``, as one
    ``.npz``: what ``contrast_rows`` needs to compare two cohorts scored on the same test subjects."""
    arrays = {}
    for endpoint in plan.endpoints:
        if endpoint.kind != kind:
            continue
        for method in (plan.method, plan.baseline):
            found = samples_of(endpoint, method)
            if found is not None:
                arrays[f"{endpoint.name}|{method}|points"], arrays[f"{endpoint.name}|{method}|samples"] = found
    np.savez(path, **arrays)


def load_samples(tables_dir: Path | str) -> dict:
    """{(endpoint, method): (points, samples)} from the ``endpoint_samples_<kind>.npz`` of a tables folder."""
    found = {}
    for path in sorted(Path(tables_dir).glob(ENDPOINT_SAMPLES_GLOB)):
        with np.load(path, allow_pickle=False) as stored:
            for key in stored.files:
                endpoint, method, part = key.rsplit("|", 2)
                found.setdefault((endpoint, method), {})[part] = stored[key]
    return {key: (value["points"], value["samples"]) for key, value in found.items() if {"points", "samples"} <= set(value)}


def method_values(samples: dict, plan: EndpointPlan) -> list[dict]:
    """Each compared method's value per endpoint (the plan's method and baseline, where ``samples`` holds them,
    as ``load_samples`` returns them): the mean of the per-seed points, with the two-level 95% interval of
    ``statistics.hierarchical_contrast`` on its own samples (seeds redrawn, test subjects resampled). An endpoint
    not computed (non-finite samples, e.g. fewer test subjects than neighbours) is left out."""
    rows = []
    for endpoint in plan.endpoints:
        for method in (plan.method, plan.baseline):
            if (endpoint.name, method) not in samples:
                continue
            points, resamples = samples[(endpoint.name, method)]
            if not (np.isfinite(points).all() and np.isfinite(resamples).all()):
                continue
            interval = hierarchical_contrast([(resamples, 1.0)])
            rows.append({"endpoint": endpoint.name, "method": method, "value": float(np.mean(points)),
                         "ci_low": interval["low"], "ci_high": interval["high"], "n_seeds": len(points)})
    return rows


def contrast_rows(plan: EndpointPlan, cohort: dict, twin: dict, cohort_label: str, twin_label: str) -> pd.DataFrame:
    """Per endpoint, (method - baseline) on ``cohort`` minus (method - baseline) on ``twin``: the same test subjects
    (the twins share hearts and splits), so the subject resamples pair and the contrast has its own interval and
    p-value. This, not two separate verdicts, is the test that the gain is the coupling's."""
    rows = []
    for endpoint in plan.endpoints:
        keys = [(endpoint.name, plan.method), (endpoint.name, plan.baseline)]
        base = {"cohort": f"{cohort_label} − {twin_label}", "endpoint": endpoint.name, "role": endpoint.role,
                "comparison": f"({plan.method} − {plan.baseline}) {cohort_label} − ({plan.method} − {plan.baseline}) {twin_label}",
                "method": plan.method, "baseline": plan.baseline, "metric": endpoint.metric, "alpha": plan.alpha, "power": plan.power}
        if not all(k in cohort and k in twin for k in keys) or cohort[keys[0]][1].shape[1] != twin[keys[0]][1].shape[1]:
            rows.append({**base, "difference": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p": np.nan, "n_seeds": 0})
            continue
        (a1, s_a1), (b1, s_b1) = cohort[keys[0]], cohort[keys[1]]
        (a2, s_a2), (b2, s_b2) = twin[keys[0]], twin[keys[1]]
        result = hierarchical_contrast([(s_a1, 1), (s_b1, -1), (s_a2, -1), (s_b2, 1)])
        own, other = np.asarray(a1) - np.mean(b1), np.asarray(a2) - np.mean(b2)
        rows.append({**base, "difference": float(np.mean(a1) - np.mean(b1) - np.mean(a2) + np.mean(b2)),
                     "ci_low": result["low"], "ci_high": result["high"], "p": result["p"], "se": result["se"],
                     "test_sd": result["test_sd"], "mdd": minimal_detectable_difference(result["se"], plan.alpha, plan.power),
                     "seed_se": seed_standard_error(own, other), "seed_df": seed_degrees_of_freedom(own, other),
                     "n_seeds": result["n_seeds"]})
    return pd.DataFrame(rows, columns=[c for c in ENDPOINT_COLUMNS if c not in ("p_adjusted", "verdict", "criterion")])


def finalize(rows: pd.DataFrame, plan: EndpointPlan) -> pd.DataFrame:
    """Holm-adjusted p-values across each cohort's endpoints, then each verdict with the criterion that decided it."""
    rows = rows.copy()
    rows["p_adjusted"] = np.nan
    for _, group in rows.groupby(["cohort", "comparison"], sort=False):  # one family per cohort and comparison
        rows.loc[group.index, "p_adjusted"] = holm(group.p.to_numpy())
    directions = {e.name: e.higher_is_better for e in plan.endpoints}
    decided = [("not computed", "a method was not scored on this endpoint (missing runs or phenotypes)")
               if not np.isfinite(r.p) else
               verdict(r.difference, r.ci_low, r.ci_high, directions.get(r.endpoint, True), r.seed_se, r.seed_df,
                       p_adjusted=r.p_adjusted, alpha=plan.alpha) for r in rows.itertuples()]
    rows["verdict"] = [d[0] for d in decided]
    rows["criterion"] = [d[1] for d in decided]
    return rows[ENDPOINT_COLUMNS]
