"""What PTACL transfers as the cohort grows (``--profile scaling``; METHOD.md §5): the pre-registered endpoints of
the headline comparison (PTACL vs global-only) and the reference rows at each N subjects per cohort, on the
physiological cohort and its null twin, read back from the tables notebooks 03 and 04 wrote at each point
(``tools.runner.ScalingPoint``), as one long table that notebook 07 plots and writes.

    scaling table (``collect``), one row per (n, cohort, endpoint, row):
      n          subjects per cohort
      cohort     "physiological", "null twin", or "physiological − null twin" (the contrast)
      endpoint   the endpoint's name (``configs/endpoints.json``)
      row        a method ("ptacl", "global"), a reference row ("median_beat", ...), or "ptacl − global"
      kind       method | reference | difference | contrast
      value, ci_low, ci_high   the seed mean and its two-level 95% interval (test subjects and seeds); a
                 reference row (one fit, no seeds) has its value only
      p_adjusted, verdict      differences and contrasts: Holm across the endpoints per N, cohort and comparison
      n_seeds

Timing (``timings``): the seconds papermill recorded for each point's executed notebooks (both cohorts), and a
straight line through them for the sizes that were not run (``estimate_seconds``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ptacl_core.evaluation import tables as layout
from ptacl_core.evaluation.endpoints import EndpointPlan, contrast_rows, finalize, load_samples, method_values
from ptacl_core.methods import METHODS
from ptacl_core.tools.runner import TWIN_FOLDER, TWIN_LABEL, ScalingPoint

COHORT = "physiological"
CONTRAST = f"{COHORT} − {TWIN_LABEL}"
COLUMNS = ["n", "cohort", "endpoint", "row", "kind", "value", "ci_low", "ci_high", "p_adjusted", "verdict", "n_seeds"]
REFERENCE_ROWS = tuple(name for name, method in METHODS.items() if method.kind == "reference")


def point_tables(point: ScalingPoint) -> tuple[Path, Path]:
    """The tables folders of a point's physiological cohort and of its null twin."""
    return layout.tables_dir(point.figures_dir), layout.tables_dir(point.figures_dir / TWIN_FOLDER)


def method_rows(samples: dict, plan: EndpointPlan, n: int, cohort: str) -> list[dict]:
    """The compared methods' values per endpoint (``endpoints.method_values``) at this N and cohort."""
    return [{"n": n, "cohort": cohort, "row": v.pop("method"), "kind": "method", **v} for v in method_values(samples, plan)]


def reference_rows(per_seed: pd.DataFrame, plan: EndpointPlan, n: int, cohort: str) -> list[dict]:
    """Each reference row's value per probe endpoint at the plan's label fraction: the endpoint's metric averaged
    over its phenotypes (and over seeds, where a row has several); a row lacking a phenotype is left out."""
    rows = []
    at_fraction = per_seed[np.isclose(per_seed.fraction, plan.fraction)]
    for endpoint in (e for e in plan.endpoints if e.kind == "probe"):
        for reference in REFERENCE_ROWS:
            found = at_fraction[(at_fraction.method == reference) & at_fraction.phenotype.isin(endpoint.phenotypes)]
            if found.empty or set(found.phenotype) != set(endpoint.phenotypes):
                continue
            value = found.groupby("seed")[endpoint.metric].mean().mean()
            rows.append({"n": n, "cohort": cohort, "endpoint": endpoint.name, "row": reference, "kind": "reference",
                         "value": float(value), "ci_low": np.nan, "ci_high": np.nan, "n_seeds": found.seed.nunique()})
    return rows


def difference_rows(plan: EndpointPlan, cohort_tables: Path, twin_tables: Path | None, n: int) -> pd.DataFrame:
    """PTACL − global-only on each cohort (the endpoint rows notebooks 03/04 wrote) and the physiological − twin
    contrast (``endpoints.contrast_rows``), Holm-adjusted as notebook 05 does (``endpoints.finalize``)."""
    comparison = f"{plan.method} − {plan.baseline}"
    found = []
    for folder in (cohort_tables, twin_tables):
        if folder is None or not folder.exists():
            continue
        for kind in layout.ENDPOINT_KINDS:
            frame = layout.read_table(folder, layout.endpoints_name(kind), required=False)
            if frame is not None and not frame.empty:
                found.append(frame[frame.comparison == comparison])
    if twin_tables is not None and twin_tables.exists():
        with np.errstate(invalid="ignore"):  # an endpoint not computed at this N stays NaN, its verdict says so
            found.append(contrast_rows(plan, load_samples(cohort_tables), load_samples(twin_tables), COHORT, TWIN_LABEL))
    if not found:
        return pd.DataFrame(columns=COLUMNS)
    rows = finalize(pd.concat(found, ignore_index=True), plan)
    rows["cohort"] = rows.cohort.fillna(COHORT).replace("", COHORT)
    return pd.DataFrame({"n": n, "cohort": rows.cohort, "endpoint": rows.endpoint, "row": comparison,
                         "kind": np.where(rows.cohort == CONTRAST, "contrast", "difference"), "value": rows.difference,
                         "ci_low": rows.ci_low, "ci_high": rows.ci_high, "p_adjusted": rows.p_adjusted,
                         "verdict": rows.verdict, "n_seeds": rows.n_seeds})


def collect(sizes, plan: EndpointPlan) -> pd.DataFrame:
    """The scaling table (module docstring) of every size in ``sizes`` whose physiological tables exist; a
    FileNotFoundError naming the folders when none does."""
    frames, missing = [], []
    for n in sizes:
        cohort_tables, twin_tables = point_tables(ScalingPoint(n))
        if not (cohort_tables / layout.PROBE_PER_SEED).exists():
            missing.append(str(cohort_tables))
            continue
        rows = []
        for cohort, folder in ((COHORT, cohort_tables), (TWIN_LABEL, twin_tables)):
            if (folder / layout.PROBE_PER_SEED).exists():
                rows += method_rows(load_samples(folder), plan, n, cohort)
                rows += reference_rows(layout.read_table(folder, layout.PROBE_PER_SEED), plan, n, cohort)
        frames += [pd.DataFrame(rows), difference_rows(plan, cohort_tables, twin_tables if twin_tables.exists() else None, n)]
    if not any(not frame.empty for frame in frames):
        raise FileNotFoundError(f"no scaling point has results yet: {missing}; run `python -m ptacl_core run --profile scaling`")
    table = pd.concat([f for f in frames if not f.empty], ignore_index=True)
    return table.reindex(columns=COLUMNS).sort_values(["endpoint", "cohort", "kind", "row", "n"], kind="stable",
                                                      ignore_index=True)


def notebook_seconds(executed: Path) -> float:
    """The seconds papermill recorded for an executed notebook (its ``metadata.papermill.duration``); NaN when
    it holds none (a notebook that did not finish)."""
    try:
        duration = json.loads(Path(executed).read_text()).get("metadata", {}).get("papermill", {}).get("duration")
    except (OSError, ValueError):
        return float("nan")
    return float(duration) if isinstance(duration, (int, float)) else float("nan")


def timings(sizes, executed_dir: Path | str) -> pd.DataFrame:
    """Per N: the seconds of its executed notebooks (``<executed_dir>/n<N>/``, the twin's pass included), per
    notebook and in all; sizes without executed notebooks are left out."""
    rows = []
    for n in sizes:
        folder = Path(executed_dir) / ScalingPoint(n).name
        notebooks = sorted(folder.rglob("[0-9][0-9]_*.ipynb")) if folder.exists() else []
        if not notebooks:
            continue
        seconds = {str(path.relative_to(folder)): notebook_seconds(path) for path in notebooks}
        rows.append({"n": n, "seconds": float(np.nansum(list(seconds.values()))), "notebooks": len(notebooks),
                     "unfinished": int(np.isnan(list(seconds.values())).sum())})
    return pd.DataFrame(rows, columns=["n", "seconds", "notebooks", "unfinished"])


def estimate_seconds(measured: pd.DataFrame, n: int) -> float:
    """Seconds at ``n`` subjects from a least-squares line through the measured (n, seconds) points (the cost of
    every stage grows about linearly with N); NaN with fewer than two finished points."""
    finished = measured[measured.unfinished == 0]
    if len(finished) < 2:
        return float("nan")
    slope, intercept = np.polyfit(finished.n.to_numpy(float), finished.seconds.to_numpy(float), 1)
    return float(intercept + slope * n)


def scaling_reading(table: pd.DataFrame, plan: EndpointPlan) -> str:
    """One paragraph from the numbers: per endpoint, PTACL − global-only at the smallest and largest N on the
    physiological cohort with its interval, the contrast with the twin at the largest N, and the best reference row
    there against the better method."""
    sizes = sorted(table.n.unique())
    if not sizes:
        return "No scaling point has results yet."
    low, high = sizes[0], sizes[-1]
    sentences = [f"Measured at N = {', '.join(f'{n:,}' for n in sizes)} subjects per cohort."]
    for endpoint in plan.endpoints:
        rows = table[table.endpoint == endpoint.name]
        difference = rows[(rows.kind == "difference") & (rows.cohort == COHORT)].set_index("n")
        contrast = rows[rows.kind == "contrast"].set_index("n")
        if high not in difference.index:
            continue
        if not np.isfinite(difference.loc[high].value):
            sentences.append(f"{endpoint.name}: not computed at N = {high:,} ({difference.loc[high].verdict}).")
            continue
        shown_low = low in difference.index and low != high and np.isfinite(difference.loc[low].value)
        parts = [f"{endpoint.name}: PTACL − global-only " + (
            f"{_value(difference.loc[low])} at N = {low:,}, " if shown_low else "")
            + f"{_value(difference.loc[high])} at N = {high:,} ({difference.loc[high].verdict})"]
        if high in contrast.index:
            parts.append(f"physiological − twin contrast {_value(contrast.loc[high])}")
        methods = rows[(rows.kind == "method") & (rows.cohort == COHORT) & (rows.n == high)]
        references = rows[(rows.kind == "reference") & (rows.cohort == COHORT) & (rows.n == high)
                          & ~rows.row.isin(("generator_latents", *(m for m in REFERENCE_ROWS if METHODS[m].cmr_embedding_of)))]
        if not methods.empty and not references.empty:
            best = (lambda frame: frame.value.idxmax()) if endpoint.higher_is_better else (lambda frame: frame.value.idxmin())
            best_method, best_reference = methods.loc[best(methods)], references.loc[best(references)]
            parts.append(f"best ECG reference row {METHODS[best_reference.row].label} {best_reference.value:.3f} vs "
                         f"{METHODS[best_method.row].label} {best_method.value:.3f}")
        sentences.append("; ".join(parts) + ".")
    return " ".join(sentences)


def _value(row: pd.Series) -> str:
    return f"{row.value:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}]"
