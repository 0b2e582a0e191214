"""The results report: ``figures/results.md`` with ``results.json`` beside it, built from the tables of
notebooks 03 (probing) and 04 (retrieval). This module renders: the findings of ``evaluation.findings`` (which rows
are compared, and the verdict on each) become markdown sentences, the tables markdown tables, and
``results.json`` carries the findings (numbers and verdicts) with the sentences. A comparison is called a win or a
loss only when its paired bootstrap 95% interval excludes zero and, with several seeds, the difference exceeds the
seed margin t(0.975, df) x SE over seeds (``judge``, in ``ptacl_core.evaluation.statistics``); a loss is said as
plainly as a win. Nothing here knows which method "should" win: the compared pair is the endpoint plan's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ptacl_core.evaluation.endpoints import EndpointPlan
from ptacl_core.evaluation.findings import (
    Difference,
    Finding,
    HeartRate,
    Identification,
    LabelEfficiency,
    Margin,
    NoResults,
    ProbeHeadline,
    ProbeTally,
    RandomGain,
    Ranking,
    ReferenceGap,
    ReferenceRows,
    RetrievalSummary,
    headline_pair,
    heart_rate_finding,
    heart_rate_methods,
    json_safe,
    margin_findings,
    reading_findings,
    reference_rows,
    sham_methods,
)
from ptacl_core.evaluation.statistics import judge_row, seed_margin
from ptacl_core.evaluation.tables import DIRECTIONS, ResultTables
from ptacl_core.evaluation.training_summary import FLAT_LATE_SHARE
from ptacl_core.methods import label, ordered
from ptacl_core.phenotypes import PROBED, UNITS

__all__ = ["ResultTables", "reading", "write_report", "sentence", "endpoint_sentence", "margin_sentences",
           "heart_rate_sentences", "reference_sentences", "probe_table", "retrieval_table", "markdown_table"]


# --- findings as sentences -----------------------------------------------------------------------------------

def _difference(finding: Difference) -> str:
    interval = f"{finding.value:+.3f}, 95% CI [{finding.low:+.3f}, {finding.high:+.3f}]"
    margin = finding.seed_margin
    interval += f", seed margin ±{margin:.3f}" if np.isfinite(margin) else ", seed spread unknown (one seed)"
    method, baseline, what = label(finding.method), label(finding.baseline), finding.what
    if finding.verdict == "indistinguishable":
        return f"{method} and {baseline} are indistinguishable on {what} (difference {interval})."
    return f"{method} is {finding.verdict} than {baseline} on {what} (difference {interval})."


def _no_results(finding: NoResults) -> str:
    return f"No {label(finding.method)} results: nothing to compare."


def _probe_headline(finding: ProbeHeadline) -> str:
    d = finding.difference
    return (f"{finding.phenotype} (all training labels): R² {finding.method_r2:.3f} for {label(d.method)} vs "
            f"{finding.baseline_r2:.3f} for {label(d.baseline)}. " + _difference(d))


def _probe_tally(finding: ProbeTally) -> str:
    method, baseline = label(finding.method), label(finding.baseline)
    criterion = ("whose 95% interval excludes zero and that exceed the seed margin" if finding.seeds_known else
                 "whose 95% interval excludes zero (seed spread unknown: one seed)")
    return (f"Across {finding.n} phenotypes, {method}'s R² is above {baseline}'s on {finding.above} and below on "
            f"{finding.below}; counting only differences {criterion}, {method} is better on {finding.better} "
            f"and worse on {finding.worse}.")


def _ranking(finding: Ranking) -> str:
    listed = ", ".join(f"{label(m)} on {count}" for m, count in finding.counts)
    return (f"Highest mean R² among the self-supervised ECG methods, per phenotype (a ranking of point estimates, "
            f"not a test): {listed} of {finding.n}.")


def _random_gain(finding: RandomGain) -> str:
    return (f"{label(finding.method)}'s R² is above a random-init encoder's on {finding.above} of {finding.n} phenotypes "
            f"(median gain {finding.median_gain:+.3f}); {finding.better} of the {finding.n_differences} differences "
            f"{'passes' if finding.better == 1 else 'pass'} the interval and seed criteria.")


def _reference_gap(finding: ReferenceGap) -> str:
    relation, method = finding.relation, label(finding.method)
    return (f"The {label(finding.reference)} reaches LVEF R² {finding.reference_r2:.3f}, "
            + (f"{abs(finding.gap):.3f} {relation} {method} (point estimates)." if relation not in ("n/a", "equal to")
               else f"{relation} {method}."))


def _label_efficiency(finding: LabelEfficiency) -> str:
    return f"With {finding.fraction:.0%} of the training labels (n = {finding.n_train}): " + _difference(finding.difference)


def _retrieval_summary(finding: RetrievalSummary) -> str:
    closer = {"better": "closer than", "worse": "farther than"}.get(finding.closer, "not distinguishably closer than")
    smaller = {"better": "smaller than", "worse": "larger than"}.get(finding.smaller, "not distinguishable from")
    return (f"{finding.direction} with {label(finding.method)}: precision@10 {finding.precision:.3f} (chance "
            f"{finding.chance:.3f}); the top 10 are {finding.distance:.2f} z-units from the query in phenotype space, "
            f"{closer} a random patient ({finding.random_distance:.2f}); the LVEF error of their mean, {finding.error:.1f} "
            f"points, is {smaller} that of 10 random patients ({finding.random_error:.1f}).")


def _identification(finding: Identification) -> str:
    return (f"Cross-modal identification with {label(finding.method)}: the patient's own CMR is in the top 10 for "
            f"{finding.recall:.1%} of test ECGs (chance {finding.chance:.1%}, ×{finding.ratio:.1f}).")


def _reference_rows(finding: ReferenceRows) -> str:
    parts = [f"{label(m)} {r2:.3f} (within condition {within:.3f})" for m, r2, within in finding.rows]
    return f"LVEF R² on the test split, reference rows beside the compared methods: {'; '.join(parts)}."


MARGIN_WORDS = {"one seed": "one seed: no interval", "above": "above 0: the local features carry patient information",
                "below": "below 0", "phase clock": "not distinguishable from 0: a phase clock"}


def _margin(finding: Margin) -> str:
    return (f"{finding.cohort} cohort, {label(finding.method)}: phase-clock margin {finding.margin:+.3f} [{finding.low:+.3f}, "
            f"{finding.high:+.3f}] over {finding.n_seeds} seed(s) (local loss {finding.local_own:.3f} against the own CMR, "
            f"{finding.local_other:.3f} against another patient's) — {MARGIN_WORDS[finding.verdict]}.")


def _heart_rate(finding: HeartRate) -> str:
    parts = [f"{label(m)} {mean:.3f}{f' ± {sd:.3f}' if n > 1 else ''} ({n} seed(s))" for m, mean, sd, n in finding.methods]
    return (f"{finding.cohort} cohort, heart rate from the ECG embedding (test R²; it predicts time-to-ES on any cohort "
            f"whose hearts share the ECG's rate, the null twin included): {'; '.join(parts)}.")


RENDERERS = {Difference: _difference, NoResults: _no_results, ProbeHeadline: _probe_headline, ProbeTally: _probe_tally,
             Ranking: _ranking, RandomGain: _random_gain, ReferenceGap: _reference_gap, LabelEfficiency: _label_efficiency,
             RetrievalSummary: _retrieval_summary, Identification: _identification, ReferenceRows: _reference_rows,
             Margin: _margin, HeartRate: _heart_rate}


def sentence(finding: Finding) -> str:
    """One finding in words."""
    return RENDERERS[type(finding)](finding)


def reading(tables: ResultTables, method: str | None = None, baseline: str | None = None,
            plan: EndpointPlan | None = None) -> list[str]:
    """The written reading, sentence by sentence, generated from the tables. method, baseline: default the
    endpoint plan's headline comparison (``plan``, default ``configs/endpoints.json``)."""
    method, baseline = headline_pair(method, baseline, plan)
    return [sentence(f) for f in reading_findings(tables, method, baseline)]


def margin_sentences(margins: pd.DataFrame, cohort: str) -> list[str]:
    """The phase-clock margin of each method in words (METHOD.md §4): whether its local features carry patient
    information, judged by the t-interval over seeds."""
    return [sentence(f) for f in margin_findings(margins, cohort)]


def heart_rate_sentences(heart_rate: pd.DataFrame, cohort: str, methods=None, plan: EndpointPlan | None = None) -> list[str]:
    """Heart rate decoded from each compared ECG embedding (test R², mean ± SD over seeds): the channel through which
    a local loss can gain on time-to-ES without electromechanical coupling (it is shared by the null twin).
    methods: default ``findings.heart_rate_methods`` of the endpoint plan."""
    found = heart_rate_finding(heart_rate, cohort, tuple(methods) if methods else heart_rate_methods(plan or EndpointPlan.load()))
    return [sentence(found)] if found is not None else []


def reference_sentences(probe: pd.DataFrame, method: str | None = None, baseline: str | None = None,
                        plan: EndpointPlan | None = None) -> list[str]:
    """What the reference rows bound: LVEF R² overall and within condition for each reference present."""
    method, baseline = headline_pair(method, baseline, plan)
    return [sentence(f) for f in reference_rows(probe, method, baseline)]


# --- tables as markdown --------------------------------------------------------------------------------------

def _cell(row: pd.Series, metric: str, digits: int) -> str:
    spread = row.get(f"{metric}_seed_sd", row.get("seed_sd", np.nan))
    value = row[metric] if metric in row else row["value"]
    low, high = (row[f"{metric}_low"], row[f"{metric}_high"]) if f"{metric}_low" in row else (row["low"], row["high"])
    seeds = f" ±{spread:.{digits}f}" if np.isfinite(spread) else ""
    return f"{value:.{digits}f}{seeds} [{low:.{digits}f}, {high:.{digits}f}]"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def probe_table(probe: pd.DataFrame, metric: str, fraction: float, digits: int) -> str:
    subset = probe[np.isclose(probe.fraction, fraction)]
    methods = ordered(subset.method)
    keyed = subset.set_index(["phenotype", "method"])
    rows = []
    for phenotype in [p for p in PROBED if p in set(subset.phenotype)]:
        unit = f" ({UNITS[phenotype]})" if metric == "mae" else ""
        rows.append([phenotype + unit] + [_cell(keyed.loc[(phenotype, m)], metric, digits) if (phenotype, m) in keyed.index else "–"
                                          for m in methods])
    seeds = subset.groupby("method").n_seeds.first()
    return markdown_table(["phenotype"] + [f"{label(m)} ({seeds[m]} seed{'s' if seeds[m] > 1 else ''})" for m in methods], rows)


def label_efficiency_table(probe: pd.DataFrame, phenotypes=("LVEF_pct", "LVEDV_mL")) -> str:
    methods = ordered(probe.method)
    keyed = probe.set_index(["phenotype", "fraction", "method"])
    rows = []
    for phenotype in phenotypes:
        for fraction in sorted(probe.fraction.unique()):
            n_train = int(probe[(probe.phenotype == phenotype) & np.isclose(probe.fraction, fraction)].n_train.max())
            rows.append([phenotype, f"{fraction:.0%} ({n_train})"] + [
                _cell(keyed.loc[(phenotype, fraction, m)], "r2", 3) if (phenotype, fraction, m) in keyed.index else "–" for m in methods])
    return markdown_table(["phenotype", "labels (n)"] + [label(m) for m in methods], rows)


RETRIEVAL_COLUMNS = ("precision@1", "precision@5", "precision@10", "precision_chance@10", "zdist@10", "zdist_random", "lvef_error@10",
                     "lvef_error_random@10", "recall@1", "recall@5", "recall@10", "recall_chance@10")


def retrieval_table(retrieval: pd.DataFrame, direction: str) -> str:
    subset = retrieval[retrieval.direction == direction]
    metrics = [m for m in RETRIEVAL_COLUMNS if m in set(subset.metric)]
    keyed = subset.set_index(["method", "metric"])
    rows = []
    for method in ordered(subset.method):
        seeds = int(subset[subset.method == method].n_seeds.iloc[0])
        rows.append([f"{label(method)} ({seeds})"] + [_cell(keyed.loc[(method, m)], "value", 3 if "@" in m and "error" not in m else 2)
                                                     if (method, m) in keyed.index else "–" for m in metrics])
    return markdown_table(["method (seeds)"] + metrics, rows)


def differences_table(differences: pd.DataFrame, fraction: float) -> str:
    subset = differences[np.isclose(differences.fraction, fraction) & (differences.metric == "r2")]
    rows = []
    for row in subset.itertuples():
        rows.append([row.phenotype, f"{label(row.method)} − {label(row.baseline)}", f"{row.difference:+.3f}",
                     f"[{row.low:+.3f}, {row.high:+.3f}]",
                     f"±{seed_margin(getattr(row, 'seed_se', np.nan), getattr(row, 'seed_df', np.nan)):.3f}", judge_row(row)])
    return markdown_table(["phenotype", "comparison", "ΔR²", "95% CI (paired bootstrap)", "seed margin", "verdict"], rows)


def endpoint_sentence(row) -> str:
    """One endpoint's result in words, with the criterion that decided it (a row of ``endpoints.finalize``)."""
    if row.verdict == "not computed":
        return f"{row.cohort} cohort, {row.endpoint} ({row.role}): not computed — {row.criterion}."
    gain = f"{label(row.method)} − {label(row.baseline)}"
    if " − " in row.cohort:  # the twin contrast: a difference of differences
        first, second = row.cohort.split(" − ", 1)
        compared = f"({gain}) on the {first} cohort minus on the {second}"
        said = {"better": f"{label(row.method)}'s gain is larger on the {first} cohort",
                "worse": f"{label(row.method)}'s gain is smaller on the {first} cohort"}.get(
            row.verdict, f"{label(row.method)}'s gain does not differ between the cohorts")
        return (f"Contrast, {row.endpoint} ({row.role}): {compared} = {row.difference:+.3f} [{row.ci_low:+.3f}, "
                f"{row.ci_high:+.3f}], p = {row.p:.3g}, Holm-adjusted {row.p_adjusted:.3g} — {said} ({row.criterion}); "
                f"minimal detectable difference ±{row.mdd:.3f} at {row.power:.0%} power.")
    compared = gain
    said = {"better": f"{label(row.method)} is better", "worse": f"{label(row.method)} is worse"}.get(
        row.verdict, f"{label(row.method)} and {label(row.baseline)} are indistinguishable")
    return (f"{row.cohort} cohort, {row.endpoint} ({row.role}): {compared} = {row.difference:+.3f} "
            f"[{row.ci_low:+.3f}, {row.ci_high:+.3f}], p = {row.p:.3g}, Holm-adjusted {row.p_adjusted:.3g} over "
            f"{int(row.n_seeds)} seed(s) per method — {said} ({row.criterion}); the run could detect a difference of "
            f"±{row.mdd:.3f} with {row.power:.0%} power at α = {row.alpha} (test-sampling SD alone {row.test_sd:.3f}).")


def endpoints_table(endpoints: pd.DataFrame) -> str:
    rows = [[r.cohort, r.endpoint, r.role, f"{label(r.method)} − {label(r.baseline)}", f"{r.difference:+.3f}",
             f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]", f"{r.p:.3g}", f"{r.p_adjusted:.3g}", f"{r.mdd:.3f}", f"{r.test_sd:.3f}",
             str(int(r.n_seeds)), r.verdict, r.criterion] for r in endpoints.itertuples()]
    return markdown_table(["cohort", "endpoint", "role", "comparison", "difference", "95% CI (subjects × seeds)", "p",
                           "Holm p", "MDD", "test-sampling SD", "seeds", "verdict", "decided by"], rows)


def reproduction_table(endpoints: pd.DataFrame) -> str:
    """What reproduces: one row per (comparison, endpoint), one column per cohort (and the twin contrast), each
    cell the verdict with the difference and the criterion that decided it."""
    cohorts = list(dict.fromkeys(endpoints.cohort))
    rows = []
    for (method, endpoint), group in endpoints.groupby(["method", "endpoint"], sort=False):
        cells = []
        for cohort in cohorts:
            found = group[group.cohort == cohort]
            if found.empty:
                cells.append("not run")
                continue
            row = found.iloc[0]
            cells.append("not computed" if row.verdict == "not computed" else
                         f"**{row.verdict}** {row.difference:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}], MDD {row.mdd:.3f} "
                         f"({row.criterion})")
        rows.append([f"{label(method)} − {label(group.baseline.iloc[0])}", endpoint, group.role.iloc[0], *cells])
    return markdown_table(["comparison", "endpoint", "role", *cohorts], rows)


def training_section(cohorts: dict[str, ResultTables]) -> list[str]:
    """Markdown lines: per cohort, the margins table, whether the learning curves flattened, and the geometry."""
    from ptacl_core.model.geometry import OCCUPANCY_THRESHOLD  # lazy: loads torch; the report imports without it

    parts = []
    for cohort, tables in cohorts.items():
        if tables.margins is not None and not tables.margins.empty:
            rows = [[label(r.method), str(int(r.n_seeds)), f"{r.margin:+.3f}", f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]",
                     f"{r.local_own:.3f}", f"{r.local_other:.3f}"] for r in tables.margins.itertuples()]
            parts += [f"Phase-clock margins, {cohort} cohort (validation patients, last epoch):", "",
                      markdown_table(["method", "seeds", "margin", "95% CI (t, over seeds)", "local loss vs own CMR",
                                      "vs another patient's"], rows), ""]
        if tables.runs is not None and not tables.runs.empty:
            runs = tables.runs
            flat = runs.flattened.dropna().astype(bool)
            first = runs.iloc[0]
            parts += [f"- {cohort} cohort: {len(runs)} contrastive runs of {int(runs.epochs.max())} epochs; learning curves "
                      f"flattened (the last quarter of epochs brought < {100 * FLAT_LATE_SHARE:.0f} % of the validation-loss "
                      f"improvement) in "
                      f"{int(flat.sum())} of {len(flat)}; median late share {runs.late_share.median():.3f}.",
                      f"- {cohort} cohort geometry: ECG tokens {first.token_ms:.0f} ms, K = {int(first.num_bins)} bins of "
                      f"{first.median_bin_ms:.0f} ms at the median RR; {100 * first.narrow_bin_fraction:.1f} % of training "
                      f"patients have bins narrower than a token; {100 * first.underfilled_fraction:.1f} % fill fewer than "
                      f"{100 * OCCUPANCY_THRESHOLD:.0f} % of their bins; soft-target σ {first.soft_sigma:.3f} cycles.", ""]
    return parts


def write_report(tables: ResultTables, out_dir: Path | str, context: dict | None = None,
                 endpoints: pd.DataFrame | None = None, twin: ResultTables | None = None, twin_label: str = "null twin",
                 plan: EndpointPlan | None = None) -> Path:
    """Write ``results.md`` and ``results.json`` into ``out_dir``; returns the markdown path. endpoints: the
    finalized endpoint rows of every cohort (``endpoints.finalize``); twin: the null twin's tables, shown beside;
    plan: the endpoint plan whose headline comparison the reading makes (default ``configs/endpoints.json``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    context = context or {}
    plan = plan or EndpointPlan.load()
    cohort_label = context.get("cohort", "this")
    cohorts = {cohort_label: tables, **({twin_label: twin} if twin is not None else {})}
    findings = [f for name, t in cohorts.items() if t.margins is not None for f in margin_findings(t.margins, name)]
    findings += [f for name, t in cohorts.items() if t.heart_rate is not None
                 for f in [heart_rate_finding(t.heart_rate, name, heart_rate_methods(plan))] if f is not None]
    findings += reading_findings(tables, plan.method, plan.baseline)
    sentences = ([endpoint_sentence(row) for row in endpoints.itertuples()] if endpoints is not None else []) \
        + [sentence(f) for f in findings]
    (out_dir / "results.md").write_text(render_markdown(tables, context, sentences, endpoints, twin, twin_label, cohorts))
    payload = {"context": context, "reading": sentences, "findings": [f.to_dict() for f in findings],
               "endpoints": json.loads(endpoints.to_json(orient="records")) if endpoints is not None else [],
               **_records(tables)}
    if endpoints is not None and not endpoints.empty:
        primary = endpoints[(endpoints.role == "primary") & (endpoints.method == plan.method)]
        payload["minimal_detectable_difference"] = {row.cohort: row.mdd for row in primary.itertuples()}
        payload["sham"] = json.loads(endpoints[endpoints.method.isin(sham_methods(plan))].to_json(orient="records"))
    payload["phase_clock_margins"] = {name: json.loads(t.margins.to_json(orient="records"))
                                      for name, t in cohorts.items() if t.margins is not None}
    payload["runs"] = {name: json.loads(t.runs.to_json(orient="records")) for name, t in cohorts.items() if t.runs is not None}
    if twin is not None:
        payload[twin_label] = _records(twin)
    (out_dir / "results.json").write_text(json.dumps(json_safe(payload), indent=1, ensure_ascii=False, allow_nan=False))
    return out_dir / "results.md"


def _records(tables: ResultTables) -> dict:
    return {name: json.loads(getattr(tables, name).to_json(orient="records")) for name in
            ("probe", "probe_differences", "retrieval", "retrieval_differences")}


def render_markdown(tables: ResultTables, context: dict, sentences: list[str], endpoints: pd.DataFrame | None,
                    twin: ResultTables | None, twin_label: str, cohorts: dict[str, ResultTables]) -> str:
    """``results.md``: the reading's sentences, then the tables."""
    probe = tables.probe
    full = float(probe.fraction.max())
    parts = ["# Results: ECG-only phenotype prediction and retrieval", ""]
    if context:
        parts += ["Run: " + "; ".join(f"{k} {v}" for k, v in context.items()), ""]
    parts += ["Cells: mean over seeds ± SD over seeds [bootstrap 95% interval of the seed mean, over test subjects]. "
              "The interval reflects test-set sampling only; training randomness is the seed SD, and a difference is called a "
              "win or a loss only when its paired interval excludes zero and it exceeds the seed margin t(0.975, df) × SE "
              "over seeds (unknown with one seed). Generated by `ptacl_core.evaluation.report` from the CSV tables beside this file; "
              "nothing is written by hand.", "",
              "## Reading", ""] + [f"- {s}" for s in sentences] + [""]
    if endpoints is not None and not endpoints.empty:
        parts += ["## What reproduces", "",
                  "Each PTACL variant against global-only on each pre-registered endpoint, per cohort (the null twin is the "
                  "control: a gain there is a leak, not temporal alignment; the sham arm takes its phases from another "
                  "patient's R peaks). Cells: verdict, difference [95% CI], minimal detectable difference, and the criterion "
                  "that decided. Holm's adjustment runs over the endpoints of each comparison; the variants are "
                  "secondary comparisons, not adjusted across one another.", "", reproduction_table(endpoints), ""]
    training = training_section(cohorts)
    if training:
        parts += ["## Training: phase-clock margins, learning curves, geometry", "", *training]
    if endpoints is not None and not endpoints.empty:
        parts += ["## Pre-registered endpoints (`configs/endpoints.json`)", "",
                  "Each endpoint: the seed-mean difference with a 95% interval from a two-level bootstrap over test subjects "
                  "and training seeds, a two-sided p-value Holm-adjusted across the list per cohort and comparison, and the minimal "
                  f"detectable difference (MDD) at {endpoints.power.iloc[0]:.0%} power. A direction needs the interval to "
                  "exclude 0, the difference to exceed the seed margin and the Holm-adjusted p below "
                  f"α = {endpoints.alpha.iloc[0]}; the last column names the criterion that decided.",
                  "", endpoints_table(endpoints), ""]
    parts += ["## Linear probing, all training labels: test R²", "", probe_table(probe, "r2", full, 3), "",
              "## Linear probing, all training labels: R² within condition", "",
              "Against the training split's condition means: what the ECG tells beyond recognising the condition.", "",
              probe_table(probe, "r2_within", full, 3), "",
              "## Linear probing, all training labels: test MAE", "", probe_table(probe, "mae", full, 1), "",
              "## Linear probing, all training labels: Pearson r", "", probe_table(probe, "pearson", full, 3), "",
              "## Label efficiency: test R²", "", label_efficiency_table(probe), "",
              "## Paired differences (all training labels)", "", differences_table(tables.probe_differences, full), ""]
    for direction in DIRECTIONS:
        if direction in set(tables.retrieval.direction):
            parts += [f"## Retrieval {direction}", "", retrieval_table(tables.retrieval, direction), ""]
    if twin is not None:
        twin_full = float(twin.probe.fraction.max())
        parts += [f"## The {twin_label}: linear probing R² (same hearts, ECG timing decoupled)", "",
                  probe_table(twin.probe, "r2", twin_full, 3), "",
                  f"## The {twin_label}: R² within condition", "", probe_table(twin.probe, "r2_within", twin_full, 3), ""]
    parts += ["Metrics (METHOD.md §5): relevant = the query's 10 nearest test subjects in z-scored phenotype space; "
              "zdist@10 = mean z-distance of the top 10 (zdist_random: of a random patient); lvef_error@10 = |mean LVEF of the "
              "top 10 − the query's| in points (…_random: for 10 random patients); recall@k = the query's own CMR in the top k "
              "(recall_chance = k/N).", ""]
    return "\n".join(parts)
