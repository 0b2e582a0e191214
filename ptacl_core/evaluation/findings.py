"""The report's findings: which rows of the results tables the written reading compares, and the verdict on each,
as small frozen records (numbers and verdicts, no words). ``evaluation.report`` renders them to markdown
sentences and writes them to ``results.json``.

A comparison is a ``Difference``: method minus baseline on one metric, its paired bootstrap 95% interval, the seed
margin t(0.975, df) x SE over seeds, and the verdict of ``statistics.judge`` (better / worse only when the
interval excludes zero and, with several seeds, the difference exceeds the seed margin). The compared pair is the
endpoint plan's headline comparison (``configs/endpoints.json``: ``EndpointPlan.method`` vs ``.baseline``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ptacl_core.evaluation.endpoints import EndpointPlan
from ptacl_core.evaluation.statistics import judge, judge_row, seed_margin
from ptacl_core.evaluation.tables import DIRECTIONS, ResultTables
from ptacl_core.methods import METHODS, REFERENCE_FEATURES, SELF_SUPERVISED, ordered
from ptacl_core.phenotypes import PHENOTYPES

HEADLINE = ("LVEF_pct", "LVEDV_mL", "LVM_g")  # the phenotypes the reading names one by one
HIGHER_IS_BETTER = {"r2": True, "precision@10": True, "recall@10": True}  # the direction of each metric the reading judges
# encoders that bound the compared methods (the supervised ECG model, the CMR embedding): the reading's reference gaps
REFERENCE_ENCODERS = tuple(m for m, method in METHODS.items() if method.kind == "reference" and m not in REFERENCE_FEATURES)


class Finding:
    """A finding's JSON form: its kind (the class name) and its fields."""

    def to_dict(self) -> dict:
        """Strict JSON: a NaN (e.g. the seed margin of one seed) becomes None, as pandas' ``to_json`` writes it."""
        return {"kind": type(self).__name__, **{key: json_safe(value) for key, value in asdict(self).items()}}


def json_safe(value):
    """``value`` with every non-finite float (also inside lists, tuples and dicts) as None: strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class Difference(Finding):
    """method - baseline on ``what`` (e.g. "LVEF_pct R²"): value, paired 95% interval [low, high], seed margin
    (NaN with one seed) and the verdict (better | worse | indistinguishable)."""

    method: str
    baseline: str
    what: str
    value: float
    low: float
    high: float
    seed_margin: float
    verdict: str


@dataclass(frozen=True)
class NoResults(Finding):
    method: str


@dataclass(frozen=True)
class ProbeHeadline(Finding):
    """One headline phenotype with all training labels: both methods' test R² and their difference."""

    phenotype: str
    method_r2: float
    baseline_r2: float
    difference: Difference


@dataclass(frozen=True)
class ProbeTally(Finding):
    """Over the phenotypes: how many R² differences are above / below zero, and how many pass the criteria."""

    method: str
    baseline: str
    n: int
    above: int
    below: int
    better: int
    worse: int
    seeds_known: bool


@dataclass(frozen=True)
class Ranking(Finding):
    """Per phenotype, the self-supervised method with the highest mean R² (point estimates): (method, count)."""

    counts: tuple[tuple[str, int], ...]
    n: int


@dataclass(frozen=True)
class RandomGain(Finding):
    """method against the random-init encoder: phenotypes with a higher R², the median gain, passing differences."""

    method: str
    above: int
    n: int
    median_gain: float
    better: int
    n_differences: int


@dataclass(frozen=True)
class ReferenceGap(Finding):
    """A reference encoder's LVEF R² and its gap to the method (point estimates); relation: above | below |
    equal to | n/a."""

    reference: str
    method: str
    reference_r2: float
    gap: float
    relation: str


@dataclass(frozen=True)
class LabelEfficiency(Finding):
    """The LVEF R² difference with the smallest label fraction (n_train labels)."""

    fraction: float
    n_train: int
    difference: Difference


@dataclass(frozen=True)
class RetrievalSummary(Finding):
    """One direction's retrieval with the method: precision@10 against chance, the top 10's phenotype distance and
    LVEF error against random patients; closer / smaller: the verdicts on those two gains."""

    direction: str
    method: str
    precision: float
    chance: float
    distance: float
    random_distance: float
    closer: str
    error: float
    random_error: float
    smaller: str


@dataclass(frozen=True)
class Identification(Finding):
    """Cross-modal identification: recall@10 of the patient's own CMR, chance and their ratio."""

    method: str
    recall: float
    chance: float
    ratio: float


@dataclass(frozen=True)
class ReferenceRows(Finding):
    """LVEF R² (overall, within condition) of each reference row and of the compared methods: (name, r2, within)."""

    rows: tuple[tuple[str, float, float], ...]


@dataclass(frozen=True)
class Margin(Finding):
    """A method's phase-clock margin over seeds (METHOD.md §4) with its t-interval; verdict: one seed | above |
    below | phase clock (the interval includes 0)."""

    cohort: str
    method: str
    margin: float
    low: float
    high: float
    n_seeds: int
    local_own: float
    local_other: float
    verdict: str


@dataclass(frozen=True)
class HeartRate(Finding):
    """Heart rate decoded from each compared ECG embedding: (method, mean test R², SD over seeds or NaN, seeds)."""

    cohort: str
    methods: tuple[tuple[str, float, float, int], ...]


def headline_pair(method: str | None = None, baseline: str | None = None, plan: EndpointPlan | None = None) -> tuple[str, str]:
    """(method, baseline) of the headline comparison: given ones win, else the endpoint plan's (default
    ``configs/endpoints.json``)."""
    if method is None or baseline is None:
        plan = plan or EndpointPlan.load()
    return method or plan.method, baseline or plan.baseline


def _select(table: pd.DataFrame, **where) -> pd.Series | None:
    mask = np.ones(len(table), dtype=bool)
    for column, value in where.items():
        mask &= np.isclose(table[column], value) if isinstance(value, float) else (table[column] == value).to_numpy()
    return table[mask].iloc[0] if mask.any() else None


def difference(method: str, baseline: str, row: pd.Series, what: str, higher_is_better: bool = True) -> Difference:
    """A difference row (difference, low, high[, seed_se, seed_df]) judged."""
    margin = seed_margin(float(row.get("seed_se", np.nan)), float(row.get("seed_df", np.nan)))
    return Difference(method, baseline, what, float(row.difference), float(row.low), float(row.high), margin,
                      judge_row(row, higher_is_better))


def _r2_rows(differences: pd.DataFrame, method: str, baseline: str, fraction: float) -> pd.DataFrame:
    return differences[(differences.method == method) & (differences.baseline == baseline)
                       & np.isclose(differences.fraction, fraction) & (differences.metric == "r2")]


def probe_findings(tables: ResultTables, method: str, baseline: str) -> list[Finding]:
    """The probing part of the reading: headline phenotypes, the tally, the ranking, against random init, the
    reference encoders and the smallest label fraction."""
    probe, found = tables.probe, []
    full = probe[np.isclose(probe.fraction, probe.fraction.max())]
    methods = set(full.method)
    r2 = full.pivot_table(index="phenotype", columns="method", values="r2")
    phenotypes = [p for p in PHENOTYPES if p in r2.index]
    for phenotype in [p for p in HEADLINE if p in phenotypes]:
        row = _select(tables.probe_differences, method=method, baseline=baseline, fraction=float(full.fraction.iloc[0]),
                      phenotype=phenotype, metric="r2")
        if row is not None:
            found.append(ProbeHeadline(phenotype, float(r2.loc[phenotype, method]), float(r2.loc[phenotype, baseline]),
                                       difference(method, baseline, row, f"{phenotype} R²", HIGHER_IS_BETTER["r2"])))
    if baseline in methods:
        rows = _r2_rows(tables.probe_differences, method, baseline, full.fraction.max())
        verdicts = [judge_row(r) for r in rows.itertuples()]
        seeds_known = bool(np.isfinite(rows.get("seed_se", pd.Series(dtype=float))).all()) and len(rows) > 0
        found.append(ProbeTally(method, baseline, len(rows), int((rows.difference > 0).sum()), int((rows.difference < 0).sum()),
                                verdicts.count("better"), verdicts.count("worse"), seeds_known))
    contenders = [m for m in SELF_SUPERVISED if m in methods]
    if len(contenders) > 1:
        best = r2[contenders].idxmax(axis=1)
        counts = best.value_counts()
        found.append(Ranking(tuple((m, int(counts[m])) for m in ordered(counts.index)), len(best)))
    if "random" in methods:
        rows = _r2_rows(tables.probe_differences, method, "random", full.fraction.max())
        gains = r2[method] - r2["random"]
        found.append(RandomGain(method, int((gains > 0).sum()), len(gains), float(gains.median()),
                                sum(judge_row(r) == "better" for r in rows.itertuples()), len(rows)))
    for reference in REFERENCE_ENCODERS:
        if reference in methods and "LVEF_pct" in phenotypes:
            gap = r2.loc["LVEF_pct", reference] - r2.loc["LVEF_pct", method]
            relation = "n/a" if not np.isfinite(gap) else "above" if gap > 0 else "below" if gap < 0 else "equal to"
            found.append(ReferenceGap(reference, method, float(r2.loc["LVEF_pct", reference]), float(gap), relation))
    fractions = sorted(probe.fraction.unique())
    if len(fractions) > 1 and baseline in methods:
        smallest = fractions[0]
        row = _select(tables.probe_differences, method=method, baseline=baseline, fraction=float(smallest),
                      phenotype="LVEF_pct", metric="r2")
        if row is not None:
            n_train = int(probe[np.isclose(probe.fraction, smallest) & (probe.phenotype == "LVEF_pct")].n_train.max())
            found.append(LabelEfficiency(float(smallest), n_train,
                                         difference(method, baseline, row, "LVEF R²", HIGHER_IS_BETTER["r2"])))
    return found


def retrieval_findings(tables: ResultTables, method: str, baseline: str) -> list[Finding]:
    """Per retrieval direction the method was scored on: the summary, the difference in precision@10 and, with
    identification, recall@10 and its difference."""
    retrieval, found = tables.retrieval, []
    if retrieval.empty:
        return found
    keyed = retrieval.set_index(["method", "direction", "metric"])
    value = keyed.value
    for direction in DIRECTIONS:
        if (method, direction, "precision@10") not in value.index:
            continue
        verdicts = {}
        for gain in ("zdist_gain@10", "lvef_error_gain@10"):  # random minus retrieved, per query, with its interval
            row = keyed.loc[(method, direction, gain)] if (method, direction, gain) in keyed.index else None
            verdicts[gain] = judge(row.value, row.low, row.high) if row is not None else "indistinguishable"
        found.append(RetrievalSummary(
            direction, method, float(value[(method, direction, "precision@10")]),
            float(value.get((method, direction, "precision_chance@10"), np.nan)), float(value[(method, direction, "zdist@10")]),
            float(value[(method, direction, "zdist_random")]), verdicts["zdist_gain@10"],
            float(value[(method, direction, "lvef_error@10")]), float(value[(method, direction, "lvef_error_random@10")]),
            verdicts["lvef_error_gain@10"]))
        row = _select(tables.retrieval_differences, method=method, baseline=baseline, direction=direction, metric="precision@10")
        if row is not None:
            found.append(difference(method, baseline, row, f"{direction} precision@10", HIGHER_IS_BETTER["precision@10"]))
        if (method, direction, "recall@10") in value.index:
            recall, chance = value[(method, direction, "recall@10")], value[(method, direction, "recall_chance@10")]
            found.append(Identification(method, float(recall), float(chance), float(recall / chance if chance > 0 else float("nan"))))
            row = _select(tables.retrieval_differences, method=method, baseline=baseline, direction=direction, metric="recall@10")
            if row is not None:
                found.append(difference(method, baseline, row, "identification recall@10", HIGHER_IS_BETTER["recall@10"]))
    return found


def reference_rows(probe: pd.DataFrame, method: str, baseline: str) -> list[Finding]:
    """LVEF R² of the reference rows beside the compared methods (nothing when the table has no reference row)."""
    full = probe[np.isclose(probe.fraction, probe.fraction.max()) & (probe.phenotype == "LVEF_pct")].set_index("method")
    if "r2_within" not in full or not any(m in full.index for m in REFERENCE_FEATURES):
        return []
    return [ReferenceRows(tuple((m, float(full.loc[m, "r2"]), float(full.loc[m, "r2_within"]))
                                for m in (*REFERENCE_FEATURES, method, baseline) if m in full.index))]


def reading_findings(tables: ResultTables, method: str, baseline: str) -> list[Finding]:
    """Every finding of the written reading, in its order (``NoResults`` alone when the method is absent)."""
    probe = tables.probe
    full = probe[np.isclose(probe.fraction, probe.fraction.max())]
    if method not in set(full.method):
        return [NoResults(method)]
    return (probe_findings(tables, method, baseline) + retrieval_findings(tables, method, baseline)
            + reference_rows(probe, method, baseline))


def margin_findings(margins: pd.DataFrame, cohort: str) -> list[Margin]:
    """Each method's phase-clock margin judged by its t-interval over seeds."""
    found = []
    for row in margins.itertuples():
        if row.n_seeds < 2 or not np.isfinite(row.ci_low):
            verdict = "one seed"
        elif row.ci_low > 0:
            verdict = "above"
        elif row.ci_high < 0:
            verdict = "below"
        else:
            verdict = "phase clock"
        found.append(Margin(cohort, row.method, float(row.margin), float(row.ci_low), float(row.ci_high), int(row.n_seeds),
                            float(row.local_own), float(row.local_other), verdict))
    return found


def heart_rate_methods(plan: EndpointPlan) -> tuple[str, ...]:
    """The embeddings the heart-rate finding compares: the baseline, the headline method and the variants that
    change the local loss (a local loss can gain on time-to-ES through heart rate)."""
    return tuple(dict.fromkeys((plan.baseline, plan.method, *(v for v in plan.variants if METHODS[v].local_variant))))


def heart_rate_finding(heart_rate: pd.DataFrame, cohort: str, methods: tuple[str, ...]) -> HeartRate | None:
    """Mean test R² (SD over seeds) of heart rate from each of ``methods`` present; None when none is."""
    present = [m for m in methods if m in set(heart_rate.method)]
    if not present:
        return None
    rows = []
    for method in present:
        values = heart_rate[heart_rate.method == method].r2
        rows.append((method, float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else float("nan"), len(values)))
    return HeartRate(cohort, tuple(rows))


def sham_methods(plan: EndpointPlan) -> list[str]:
    """The compared methods that are sham arms (their local loss takes another patient's phases)."""
    return [m for m in plan.comparisons if METHODS[m].local_variant == "sham"]
