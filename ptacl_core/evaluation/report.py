"""The results report: ``figures/results.md`` with ``results.json`` beside it, built from the tables of
notebooks 03 (probing) and 04 (retrieval). Every sentence of the written reading is generated from those
numbers: a comparison is called a win or a loss only when its paired bootstrap 95% interval excludes zero
and, with several seeds, the difference exceeds the seed margin t(0.975, df) x SE over seeds (``judge``, in
``ptacl_core.evaluation.statistics``);
a loss is said as plainly as a win. Nothing here knows which method "should" win.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ptacl_core.evaluation.statistics import judge, judge_row, seed_margin
from ptacl_core.methods import REFERENCE_FEATURES, SELF_SUPERVISED, label, ordered
from ptacl_core.phenotypes import EVALUATED, PHENOTYPES, UNITS

HEADLINE = ("LVEF_pct", "LVEDV_mL", "LVM_g")
HIGHER_IS_BETTER = {"r2": True, "precision@10": True, "recall@10": True}  # the direction of each metric the reading judges


@dataclass
class ResultTables:
    """probe: ProbeResults.summary(); probe_differences: rows of ProbeResults.paired_difference; retrieval:
    summarise_retrieval's over-seed table; retrieval_differences: rows of retrieval_difference."""

    probe: pd.DataFrame
    probe_differences: pd.DataFrame
    retrieval: pd.DataFrame
    retrieval_differences: pd.DataFrame
    endpoints: pd.DataFrame | None = None  # endpoint_rows of notebooks 03 and 04 (before Holm)
    runs: pd.DataFrame | None = None  # notebook 02's run table (training_summary.run_table)
    margins: pd.DataFrame | None = None  # notebook 02's phase-clock margins per method (training_summary.margin_table)
    heart_rate: pd.DataFrame | None = None  # notebook 03's heart-rate probe per run (diagnostics.heart_rate_probe)

    @classmethod
    def read(cls, tables_dir: Path | str) -> ResultTables:
        tables_dir = Path(tables_dir)
        names = {"probe": "probe_summary.csv", "probe_differences": "probe_differences.csv",
                 "retrieval": "retrieval_summary.csv", "retrieval_differences": "retrieval_differences.csv"}
        missing = [name for name in names.values() if not (tables_dir / name).exists()]
        if missing:
            raise FileNotFoundError(f"{tables_dir}: missing {missing}; run notebooks 03 (probing) and 04 (retrieval) first")
        endpoint_files = [tables_dir / f"endpoints_{kind}.csv" for kind in ("probe", "retrieval")]
        endpoints = [pd.read_csv(path) for path in endpoint_files if path.exists()]
        endpoints = [frame for frame in endpoints if not frame.empty]
        optional = {key: pd.read_csv(tables_dir / name) if (tables_dir / name).exists() else None
                    for key, name in (("runs", "02_runs.csv"), ("margins", "02_phase_clock_margin.csv"),
                                      ("heart_rate", "heart_rate_probe.csv"))}
        return cls(**{key: pd.read_csv(tables_dir / name) for key, name in names.items()},
                   endpoints=pd.concat(endpoints, ignore_index=True) if endpoints else None, **optional)


def _difference(table: pd.DataFrame, **where) -> pd.Series | None:
    mask = np.ones(len(table), dtype=bool)
    for column, value in where.items():
        mask &= np.isclose(table[column], value) if isinstance(value, float) else (table[column] == value).to_numpy()
    return table[mask].iloc[0] if mask.any() else None


def _phrase(method: str, baseline: str, row: pd.Series, what: str, higher_is_better: bool) -> str:
    verdict = judge_row(row, higher_is_better)
    interval = f"{row.difference:+.3f}, 95% CI [{row.low:+.3f}, {row.high:+.3f}]"
    margin = seed_margin(float(row.get("seed_se", np.nan)), float(row.get("seed_df", np.nan)))
    interval += f", seed margin ±{margin:.3f}" if np.isfinite(margin) else ", seed spread unknown (one seed)"
    if verdict == "indistinguishable":
        return f"{label(method)} and {label(baseline)} are indistinguishable on {what} (difference {interval})."
    return f"{label(method)} is {verdict} than {label(baseline)} on {what} (difference {interval})."


def reading(tables: ResultTables, method: str = "ptacl", baseline: str = "global") -> list[str]:
    """The written reading, sentence by sentence, generated from the tables."""
    probe, lines = tables.probe, []
    full = probe[np.isclose(probe.fraction, probe.fraction.max())]
    methods = set(full.method)
    if method not in methods:
        return [f"No {label(method)} results: nothing to compare."]
    r2 = full.pivot_table(index="phenotype", columns="method", values="r2")
    phenotypes = [p for p in PHENOTYPES if p in r2.index]
    for phenotype in [p for p in HEADLINE if p in phenotypes]:
        row = _difference(tables.probe_differences, method=method, baseline=baseline, fraction=float(full.fraction.iloc[0]),
                          phenotype=phenotype, metric="r2")
        if row is not None:
            lines.append(f"{phenotype} (all training labels): R² {r2.loc[phenotype, method]:.3f} for {label(method)} vs "
                         f"{r2.loc[phenotype, baseline]:.3f} for {label(baseline)}. "
                         + _phrase(method, baseline, row, f"{phenotype} R²", HIGHER_IS_BETTER["r2"]))
    if baseline in methods:
        rows = tables.probe_differences[(tables.probe_differences.method == method) & (tables.probe_differences.baseline == baseline)
                                        & np.isclose(tables.probe_differences.fraction, full.fraction.max())
                                        & (tables.probe_differences.metric == "r2")]
        verdicts = [judge_row(r) for r in rows.itertuples()]
        above, below = int((rows.difference > 0).sum()), int((rows.difference < 0).sum())
        seeds_known = bool(np.isfinite(rows.get("seed_se", pd.Series(dtype=float))).all()) and len(rows) > 0
        criterion = ("whose 95% interval excludes zero and that exceed the seed margin" if seeds_known else
                     "whose 95% interval excludes zero (seed spread unknown: one seed)")
        lines.append(f"Across {len(rows)} phenotypes, {label(method)}'s R² is above {label(baseline)}'s on {above} and below on "
                     f"{below}; counting only differences {criterion}, {label(method)} is better on {verdicts.count('better')} "
                     f"and worse on {verdicts.count('worse')}.")
    contenders = [m for m in SELF_SUPERVISED if m in methods]
    if len(contenders) > 1:
        best = r2[contenders].idxmax(axis=1)
        counts = best.value_counts()
        listed = ", ".join(f"{label(m)} on {counts[m]}" for m in ordered(counts.index))
        lines.append(f"Highest mean R² among the self-supervised ECG methods, per phenotype (a ranking of point estimates, "
                     f"not a test): {listed} of {len(best)}.")
    if "random" in methods:
        rows = tables.probe_differences[(tables.probe_differences.method == method) & (tables.probe_differences.baseline == "random")
                                        & np.isclose(tables.probe_differences.fraction, full.fraction.max())
                                        & (tables.probe_differences.metric == "r2")]
        gains = r2[method] - r2["random"]
        better = sum(judge_row(r) == "better" for r in rows.itertuples())
        lines.append(f"{label(method)}'s R² is above a random-init encoder's on {int((gains > 0).sum())} of {len(gains)} phenotypes "
                     f"(median gain {gains.median():+.3f}); {better} of the {len(rows)} differences "
                     f"{'passes' if better == 1 else 'pass'} the interval and seed criteria.")
    for reference in ("supervised", "cmr_ptacl"):
        if reference in methods and "LVEF_pct" in phenotypes:
            gap = r2.loc["LVEF_pct", reference] - r2.loc["LVEF_pct", method]
            relation = "n/a" if not np.isfinite(gap) else "above" if gap > 0 else "below" if gap < 0 else "equal to"
            lines.append(f"The {label(reference)} reaches LVEF R² {r2.loc['LVEF_pct', reference]:.3f}, "
                         + (f"{abs(gap):.3f} {relation} {label(method)} (point estimates)." if relation not in ("n/a", "equal to")
                            else f"{relation} {label(method)}."))
    fractions = sorted(probe.fraction.unique())
    if len(fractions) > 1 and baseline in methods:
        smallest = fractions[0]
        row = _difference(tables.probe_differences, method=method, baseline=baseline, fraction=float(smallest),
                          phenotype="LVEF_pct", metric="r2")
        if row is not None:
            n_train = int(probe[np.isclose(probe.fraction, smallest) & (probe.phenotype == "LVEF_pct")].n_train.max())
            lines.append(f"With {smallest:.0%} of the training labels (n = {n_train}): "
                         + _phrase(method, baseline, row, "LVEF R²", HIGHER_IS_BETTER["r2"]))
    lines += _retrieval_reading(tables, method, baseline)
    return lines + reference_sentences(probe)


def _retrieval_reading(tables: ResultTables, method: str, baseline: str) -> list[str]:
    retrieval, lines = tables.retrieval, []
    if retrieval.empty:
        return lines
    value = retrieval.set_index(["method", "direction", "metric"]).value
    for direction in ("ECG→ECG", "ECG→CMR"):
        if (method, direction, "precision@10") not in value.index:
            continue
        keyed = retrieval.set_index(["method", "direction", "metric"])
        distance, random_distance = value[(method, direction, "zdist@10")], value[(method, direction, "zdist_random")]
        error, random_error = value[(method, direction, "lvef_error@10")], value[(method, direction, "lvef_error_random@10")]
        verdicts = {}
        for gain in ("zdist_gain@10", "lvef_error_gain@10"):  # random minus retrieved, per query, with its interval
            row = keyed.loc[(method, direction, gain)] if (method, direction, gain) in keyed.index else None
            verdicts[gain] = judge(row.value, row.low, row.high) if row is not None else "indistinguishable"
        closer = {"better": "closer than", "worse": "farther than"}.get(verdicts["zdist_gain@10"], "not distinguishably closer than")
        smaller = {"better": "smaller than", "worse": "larger than"}.get(verdicts["lvef_error_gain@10"], "not distinguishable from")
        chance = value.get((method, direction, "precision_chance@10"), np.nan)
        lines.append(f"{direction} with {label(method)}: precision@10 {value[(method, direction, 'precision@10')]:.3f} (chance "
                     f"{chance:.3f}); the top 10 are {distance:.2f} z-units from the query in phenotype space, {closer} a random "
                     f"patient ({random_distance:.2f}); the LVEF error of their mean, {error:.1f} points, is {smaller} that of 10 "
                     f"random patients ({random_error:.1f}).")
        row = _difference(tables.retrieval_differences, method=method, baseline=baseline, direction=direction, metric="precision@10")
        if row is not None:
            lines.append(_phrase(method, baseline, row, f"{direction} precision@10", HIGHER_IS_BETTER["precision@10"]))
        if (method, direction, "recall@10") in value.index:
            recall, chance = value[(method, direction, "recall@10")], value[(method, direction, "recall_chance@10")]
            ratio = recall / chance if chance > 0 else float("nan")
            lines.append(f"Cross-modal identification with {label(method)}: the patient's own CMR is in the top 10 for "
                         f"{recall:.1%} of test ECGs (chance {chance:.1%}, ×{ratio:.1f}).")
            row = _difference(tables.retrieval_differences, method=method, baseline=baseline, direction=direction, metric="recall@10")
            if row is not None:
                lines.append(_phrase(method, baseline, row, "identification recall@10", HIGHER_IS_BETTER["recall@10"]))
    return lines


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
    for phenotype in [p for p in EVALUATED if p in set(subset.phenotype)]:
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


def margin_sentences(margins: pd.DataFrame, cohort: str) -> list[str]:
    """The phase-clock margin of each method in words (METHOD.md §4): whether its local features carry patient
    information, judged by the t-interval over seeds."""
    out = []
    for row in margins.itertuples():
        if row.n_seeds < 2 or not np.isfinite(row.ci_low):
            what = "one seed: no interval"
        elif row.ci_low > 0:
            what = "above 0: the local features carry patient information"
        elif row.ci_high < 0:
            what = "below 0"
        else:
            what = "not distinguishable from 0: a phase clock"
        out.append(f"{cohort} cohort, {label(row.method)}: phase-clock margin {row.margin:+.3f} [{row.ci_low:+.3f}, "
                   f"{row.ci_high:+.3f}] over {int(row.n_seeds)} seed(s) (local loss {row.local_own:.3f} against the own CMR, "
                   f"{row.local_other:.3f} against another patient's) — {what}.")
    return out


def heart_rate_sentences(heart_rate: pd.DataFrame, cohort: str, methods=("global", "ptacl", "ptacl_cross", "ptacl_sham")) -> list[str]:
    """Heart rate decoded from each compared ECG embedding (test R², mean ± SD over seeds): the channel through which
    a local loss can gain on time-to-ES without electromechanical coupling (it is shared by the null twin)."""
    present = [m for m in methods if m in set(heart_rate.method)]
    if not present:
        return []
    parts = []
    for method in present:
        values = heart_rate[heart_rate.method == method].r2
        spread = f" ± {values.std(ddof=1):.3f}" if len(values) > 1 else ""
        parts.append(f"{label(method)} {values.mean():.3f}{spread} ({len(values)} seed(s))")
    return [f"{cohort} cohort, heart rate from the ECG embedding (test R²; it predicts time-to-ES on any cohort whose "
            f"hearts share the ECG's rate, the null twin included): {'; '.join(parts)}."]


def training_section(cohorts: dict[str, ResultTables]) -> list[str]:
    """Markdown lines: per cohort, the margins table, whether the learning curves flattened, and the geometry."""
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
                      f"flattened (the last quarter of epochs brought < 10 % of the validation-loss improvement) in "
                      f"{int(flat.sum())} of {len(flat)}; median late share {runs.late_share.median():.3f}.",
                      f"- {cohort} cohort geometry: ECG tokens {first.token_ms:.0f} ms, K = {int(first.num_bins)} bins of "
                      f"{first.median_bin_ms:.0f} ms at the median RR; {100 * first.narrow_bin_fraction:.1f} % of training "
                      f"patients have bins narrower than a token; {100 * first.underfilled_fraction:.1f} % fill fewer than "
                      f"80 % of their bins; soft-target σ {first.soft_sigma:.3f} cycles.", ""]
    return parts


def reference_sentences(probe: pd.DataFrame) -> list[str]:
    """What the reference rows bound: LVEF R² overall and within condition for each reference present."""
    full = probe[np.isclose(probe.fraction, probe.fraction.max()) & (probe.phenotype == "LVEF_pct")].set_index("method")
    if "r2_within" not in full or not any(m in full.index for m in REFERENCE_FEATURES):
        return []
    parts = [f"{label(m)} {full.loc[m, 'r2']:.3f} (within condition {full.loc[m, 'r2_within']:.3f})"
             for m in (*REFERENCE_FEATURES, "ptacl", "global") if m in full.index]
    return [f"LVEF R² on the test split, reference rows beside the compared methods: {'; '.join(parts)}."]


def write_report(tables: ResultTables, out_dir: Path | str, context: dict | None = None,
                 endpoints: pd.DataFrame | None = None, twin: ResultTables | None = None, twin_label: str = "null twin",
                 headline: str = "ptacl") -> Path:
    """Write ``results.md`` and ``results.json`` into ``out_dir``; returns the markdown path. endpoints: the
    finalized endpoint rows of every cohort (``endpoints.finalize``); twin: the null twin's tables, shown beside."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    context = context or {}
    probe = tables.probe
    full = float(probe.fraction.max())
    cohort_label = context.get("cohort", "this")
    cohorts = {cohort_label: tables, **({twin_label: twin} if twin is not None else {})}
    sentences = ([endpoint_sentence(row) for row in endpoints.itertuples()] if endpoints is not None else []) \
        + [s for name, t in cohorts.items() if t.margins is not None for s in margin_sentences(t.margins, name)] \
        + [s for name, t in cohorts.items() if t.heart_rate is not None for s in heart_rate_sentences(t.heart_rate, name)] \
        + reading(tables)
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
    for direction in ("ECG→ECG", "ECG→CMR"):
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
    markdown = out_dir / "results.md"
    markdown.write_text("\n".join(parts))
    payload = {"context": context, "reading": sentences,
               "endpoints": json.loads(endpoints.to_json(orient="records")) if endpoints is not None else [],
               **{name: json.loads(getattr(tables, name).to_json(orient="records")) for name in
                  ("probe", "probe_differences", "retrieval", "retrieval_differences")}}
    if endpoints is not None and not endpoints.empty:
        primary = endpoints[(endpoints.role == "primary") & (endpoints.method == headline)]
        payload["minimal_detectable_difference"] = {row.cohort: row.mdd for row in primary.itertuples()}
        payload["sham"] = json.loads(endpoints[endpoints.method == "ptacl_sham"].to_json(orient="records"))
    payload["phase_clock_margins"] = {name: json.loads(t.margins.to_json(orient="records"))
                                      for name, t in cohorts.items() if t.margins is not None}
    payload["runs"] = {name: json.loads(t.runs.to_json(orient="records")) for name, t in cohorts.items() if t.runs is not None}
    if twin is not None:
        payload[twin_label] = {name: json.loads(getattr(twin, name).to_json(orient="records")) for name in
                               ("probe", "probe_differences", "retrieval", "retrieval_differences")}
    (out_dir / "results.json").write_text(json.dumps(payload, indent=1, ensure_ascii=False))
    return markdown
