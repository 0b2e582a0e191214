"""The one-paragraph reading printed under each figure of notebooks 00-05, generated from the numbers the figure
shows (never written by hand, so it cannot drift from the figure). Each function takes what its figure takes and
returns plain text; notebooks print it (plain text: cohort ids are never rendered as markup).

Which method is better is still decided by the paired intervals of notebooks 03-05 (``findings``, ``report``): a
reading here names a difference as a win only when its interval, given in the table it reads, excludes zero.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ptacl_core.methods import METHODS, label, ordered
from ptacl_core.phenotypes import display_name, unit
from ptacl_core.plotting.style import condition_name


def _value(value: float, column: str) -> str:
    """A phenotype value with its unit: "61 %" / "152 mL" (one decimal below 10)."""
    digits = 1 if abs(value) < 10 else 0
    return f"{value:.{digits}f} {unit(column)}".rstrip()


def _signed(value: float, digits: int = 3) -> str:
    """A signed number that never reads "-0.000": values that round to zero are written 0.000."""
    text = f"{value:+.{digits}f}"
    return text[1:] if float(text) == 0 else text


def ecg_reading(rpeaks: np.ndarray, fs: float, n_samples: int) -> str:
    """The example ECG: how many R peaks in how many seconds, and the heart rate of their median RR."""
    seconds = n_samples / fs
    if len(rpeaks) < 2:
        return f"{len(rpeaks)} R peak(s) in {seconds:.0f} s: too few for a heart rate."
    rr_ms = np.diff(np.sort(rpeaks)) / fs * 1000.0
    return (f"{len(rpeaks)} R peaks in {seconds:.0f} s: median RR {np.median(rr_ms):.0f} ms, a heart rate of "
            f"{60000.0 / np.median(rr_ms):.0f} bpm (RR range {rr_ms.min():.0f}-{rr_ms.max():.0f} ms).")


def cine_reading(lv_volume_ml: np.ndarray, frame_interval_ms: float) -> str:
    """The example cine: LV volume at ED (frame 0) and ES (smallest cavity), the ejection fraction they give."""
    es = int(np.argmin(lv_volume_ml))
    edv, esv = float(lv_volume_ml[0]), float(lv_volume_ml[es])
    return (f"LV cavity from the masks: {edv:.0f} mL at end-diastole (frame 0), {esv:.0f} mL at end-systole "
            f"(frame {es} of {len(lv_volume_ml)}, {es * frame_interval_ms:.0f} ms after the R wave): an ejection "
            f"fraction of {100.0 * (edv - esv) / edv:.0f} %.")


def conditions_reading(cohort: pd.DataFrame, columns: list[str], reference: str = "normal", top: int = 2) -> str:
    """Phenotypes by condition: for each other condition, the ``top`` columns whose median departs most from the
    reference condition's (in reference SDs), with both medians."""
    if reference not in set(cohort.condition):
        return f"No '{reference}' subjects to compare the conditions with."
    base = cohort[cohort.condition == reference]
    parts = []
    for condition in [c for c in dict.fromkeys(cohort.condition) if c != reference]:
        group = cohort[cohort.condition == condition]
        shifts = {c: (group[c].median() - base[c].median()) / (base[c].std() or np.nan) for c in columns}
        shifts = {c: s for c, s in shifts.items() if np.isfinite(s)}
        biggest = sorted(shifts, key=lambda c: -abs(shifts[c]))[:top]
        described = ", ".join(f"{display_name(c)} {_value(group[c].median(), c)} (vs {_value(base[c].median(), c)}, "
                              f"{shifts[c]:+.1f} SD)" for c in biggest)
        parts.append(f"{condition_name(condition)} (n = {len(group)}): {described}")
    return (f"Medians against {reference} (n = {len(base)}), the two largest departures per condition: "
            + "; ".join(parts) + ".")


def filtering_reading(raw: np.ndarray, raw_fs: float, filtered: np.ndarray, fs: float, rpeaks: np.ndarray,
                      lead: int = 1) -> str:
    """ECG before and after: rates, the baseline offset the high-pass removed (median of a lead), R peaks found."""
    heart_rate = 60.0 * fs / np.median(np.diff(rpeaks)) if len(rpeaks) > 1 else float("nan")
    return (f"Raw at {raw_fs:.0f} Hz, preprocessed at {fs:.0f} Hz. Median level of lead II: {np.median(raw[lead]):+.3f} "
            f"mV raw, {np.median(filtered[lead]):+.3f} mV after the high-pass. {len(rpeaks)} R peaks detected over "
            f"{filtered.shape[1] / fs:.0f} s ({heart_rate:.0f} bpm).")


def crops_reading(ed_frames: np.ndarray, es_frames: np.ndarray, n_frames: int, crop_px: int) -> str:
    """Cine crops: their size and where end-systole falls in the resampled cycle, over the cached subjects."""
    es = np.asarray(es_frames, dtype=float) - np.asarray(ed_frames, dtype=float)
    low, median, high = np.percentile(es, [10, 50, 90])
    return (f"{crop_px} x {crop_px} px crops, {n_frames} frames per cycle. End-systole at frame {median:.0f} after "
            f"end-diastole in the median subject (10th-90th percentile {low:.0f}-{high:.0f}), i.e. at "
            f"{100 * median / n_frames:.0f} % of the cycle.")


def rhythm_reading(rr_ms: np.ndarray, flag_counts: pd.Series, n_subjects: int) -> str:
    """RR intervals and quality flags of the cache."""
    if len(rr_ms) == 0:
        return f"No RR interval in the {n_subjects} cached subjects (fewer than two R peaks each)."
    flags = (", ".join(f"{name} {count}" for name, count in flag_counts.items()) if len(flag_counts)
             else "no quality flag raised")
    return (f"{len(rr_ms)} RR intervals of {n_subjects} subjects: median {np.median(rr_ms):.0f} ms "
            f"({60000.0 / np.median(rr_ms):.0f} bpm), 1st-99th percentile {np.percentile(rr_ms, 1):.0f}-"
            f"{np.percentile(rr_ms, 99):.0f} ms. Subjects with a flag: {flags}.")


def learning_curves_reading(run_summary: pd.DataFrame) -> str:
    """Learning curves: how many runs flattened, and each method's final validation loss and margin."""
    flat = run_summary.flattened.dropna()
    parts = []
    for method in ordered(run_summary.method):
        rows = run_summary[run_summary.method == method]
        margin = rows.val_margin.dropna() if "val_margin" in rows else pd.Series(dtype=float)
        text = f"{label(method)} {rows.val_loss.mean():.3f}"
        if len(margin):
            text += f" (margin {margin.mean():+.3f})"
        parts.append(text)
    judged = (f"{int(flat.sum())} of {len(flat)} runs flattened (last quarter of the epochs under 10 % of the "
              f"improvement)." if len(flat) else "Too few epochs to judge whether the curves flattened.")
    return (f"{judged} Final validation loss, mean over seeds (each method's own objective: compare a method with "
            f"itself, not across panels): " + ", ".join(parts) + ".")


def phase_similarity_reading(contrasts: dict[str, tuple[float, float]]) -> str:
    """K x K similarity: mean same-phase against other-phase cosine, per method (``diagnostics.same_phase_contrast``)."""
    return "Mean cosine similarity, same phase bin against other bins: " + "; ".join(
        f"{label(m)} {same:.3f} vs {other:.3f} (gap {_signed(same - other)})" for m, (same, other) in contrasts.items()) + "."


def phase_alignment_reading(matrices: dict[str, np.ndarray]) -> str:
    """Mean K x K alignment over test patients: the diagonal's mean against the off-diagonal mean, per method."""
    parts = []
    for method, matrix in matrices.items():
        diagonal = float(np.nanmean(np.diag(matrix)))
        off = float(np.nanmean(matrix[~np.eye(len(matrix), dtype=bool)]))
        parts.append(f"{label(method)} {diagonal:.3f} vs {off:.3f} (gap {_signed(diagonal - off)})")
    return ("Same phase bin against other bins, mean cosine over test patients: " + "; ".join(parts)
            + ". A larger gap means ECG segments sit closer to the CMR frames of their own phase.")


def probe_reading(summary: pd.DataFrame, differences: pd.DataFrame, fraction: float, method: str, baseline: str) -> str:
    """R² per phenotype: the best encoder on each, and where ``method`` beats or trails ``baseline`` with a paired
    95% interval that excludes zero (``differences``: ``probing.probe_differences``)."""
    subset = summary[np.isclose(summary.fraction, fraction)]
    encoders = subset[[m not in METHODS or METHODS[m].kind != "reference" for m in subset.method]]
    best = [f"{display_name(p)}: {label(g.loc[g.r2.idxmax(), 'method'])} {g.r2.max():.2f}"
            for p, g in encoders.groupby("phenotype", sort=False) if g.r2.notna().any()]
    text = "Best encoder per phenotype (test R², reference rows aside): " + "; ".join(best) + "."
    chosen = differences[(differences.method == method) & (differences.baseline == baseline) & (differences.metric == "r2")
                         & np.isclose(differences.fraction, fraction)] if not differences.empty else differences
    if len(chosen):
        wins = [display_name(r.phenotype) for r in chosen.itertuples() if r.low > 0]
        losses = [display_name(r.phenotype) for r in chosen.itertuples() if r.high < 0]
        text += (f" {label(method)} against {label(baseline)} (paired 95% interval over test subjects and seeds): "
                 f"higher on {', '.join(wins) or 'none'}, lower on {', '.join(losses) or 'none'}, "
                 f"undecided on the other {len(chosen) - len(wins) - len(losses)} of {len(chosen)}.")
    return text


def label_efficiency_reading(summary: pd.DataFrame, methods: list[str], phenotypes=("LVEF_pct", "LVEDV_mL")) -> str:
    """Label efficiency: each method's test R² at the smallest and the largest label fraction."""
    parts = []
    for phenotype in phenotypes:
        rows = summary[summary.phenotype == phenotype]
        if rows.empty:
            continue
        low, high = rows.fraction.min(), rows.fraction.max()
        values = []
        for method in [m for m in methods if m in set(rows.method)]:
            r2 = rows[rows.method == method].set_index("fraction").r2
            values.append(f"{label(method)} {r2.get(low, np.nan):.2f} → {r2.get(high, np.nan):.2f}")
        parts.append(f"{display_name(phenotype)} ({low:.0%} → {high:.0%} of the labels): " + ", ".join(values))
    return "Test R² as labels grow. " + "; ".join(parts) + "."


def predicted_reading(predictions: pd.DataFrame, conditions: dict[str, str], method: str, seed: int,
                      phenotypes=("LVEF_pct", "LVEDV_mL")) -> str:
    """Predicted vs true: R² and MAE of one run, and the condition with the largest mean error (bias)."""
    parts = []
    for phenotype in phenotypes:
        rows = predictions[(predictions.method == method) & (predictions.seed == seed) & (predictions.phenotype == phenotype)]
        if rows.empty:
            continue
        residual = rows.predicted - rows.true
        r2 = 1.0 - float((residual ** 2).sum()) / float(((rows.true - rows.true.mean()) ** 2).sum())
        bias = residual.groupby(rows.subject_id.map(conditions).fillna("unknown").to_numpy()).mean()
        worst = bias.abs().idxmax()
        parts.append(f"{display_name(phenotype)}: R² {r2:.2f}, MAE {_value(residual.abs().mean(), phenotype)} over "
                     f"{len(rows)} test subjects; largest mean error in {condition_name(worst)} "
                     f"({bias[worst]:+.1f} {unit(phenotype)})")
    return f"{label(method)} seed {seed}. " + "; ".join(parts) + "."


def retrieval_panel_reading(queries: list[dict]) -> str:
    """Retrieval panel: per query, its condition and LVEF against those of its retrieved patients (the query
    dicts of ``Comparison.retrieval_panel_queries``, which carry ``condition`` and ``lvef``)."""
    parts = []
    for number, query in enumerate(queries, 1):
        retrieved = query["retrieved"]
        same = sum(r["condition"] == query["condition"] for r in retrieved)
        lvef = [r["lvef"] for r in retrieved]
        if query["condition"] == "unknown":  # a cohort without conditions: LVEF only
            parts.append(f"query {number} (LVEF {query['lvef']:.0f} %): its {len(retrieved)} retrieved have LVEF "
                         f"{min(lvef):.0f}-{max(lvef):.0f} %")
            continue
        parts.append(f"query {number} ({condition_name(query['condition'])}, LVEF {query['lvef']:.0f} %): "
                     f"{same} of {len(retrieved)} retrieved share its condition, their LVEF "
                     f"{min(lvef):.0f}-{max(lvef):.0f} %")
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + f". {len(queries)} queries illustrate; precision@k over every query is in notebook 04."


def neighbour_agreement(embedding: np.ndarray, conditions: np.ndarray, k: int = 10) -> float:
    """Share of each subject's k nearest neighbours (cosine, the subject excluded) that share its condition."""
    x = embedding / np.linalg.norm(embedding, axis=1, keepdims=True).clip(1e-12)
    similarity = x @ x.T
    np.fill_diagonal(similarity, -np.inf)
    k = min(k, len(x) - 1)
    neighbours = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    return float((conditions[neighbours] == conditions[:, None]).mean())


def embedding_map_reading(embeddings: dict[str, np.ndarray], conditions: np.ndarray, k: int = 10) -> str:
    """Embedding map: how often a subject's k nearest neighbours in the full embedding (not the 2-D map) share its
    condition, per method, against the chance rate of the condition mix."""
    conditions = np.asarray(conditions)
    if len(set(conditions) - {"unknown"}) < 2:
        return "The cohort has no condition labels to compare neighbours by; the map only illustrates."
    shares = pd.Series(conditions).value_counts(normalize=True).to_numpy()
    chance = float((shares ** 2).sum())
    parts = [f"{label(m)} {neighbour_agreement(x, conditions, k):.0%}" for m, x in embeddings.items()]
    return (f"Of each subject's {k} nearest neighbours in the full ECG embedding, the share with the same condition: "
            + ", ".join(parts) + f" (chance for this condition mix: {chance:.0%}). The 2-D map only illustrates; the "
            f"shares are measured in the embedding itself.")
