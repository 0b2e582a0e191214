"""The text ``predict`` prints: per ECG file its predictions with intervals, its novelty verdict and its nearest patients.

Every piece of text that comes from outside the kit (file names, error messages, subject ids, conditions, flags)
goes through ``shown``: printable text as it is, anything else as its ``repr`` (a newline in a file name is
``\\n``, not a forged line of the report).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ptacl_core.phenotypes import UNITS


def shown(value: object) -> str:
    """``value`` as one line of the report: its text when every character is printable, else its ``repr`` (quoted,
    control characters, line and paragraph separators escaped)."""
    text = str(value)
    return text if text.isprintable() else repr(text)


def format_report(predictions: pd.DataFrame, neighbours: pd.DataFrame, test_errors: pd.DataFrame) -> str:
    """Human-readable text of ``Predictor.predict``'s tables."""
    lines = []
    for row in predictions.to_dict("records"):
        lines.append(f"== {shown(row['file'])}")
        if row["status"] != "ok":
            lines.append(f"   ERROR: {shown(row['error'])}")
            continue
        if isinstance(row.get("flags"), str) and row["flags"]:
            lines.append(f"   quality flags: {shown(row['flags'])}")
        if "ood_verdict" in row and isinstance(row["ood_verdict"], str):
            lines.append(f"   {shown(row['ood_verdict'].upper())}: farther from the training ECGs than {row['ood_percentile']:.0f} % "
                         f"of the validation ECGs (Mahalanobis distance {row['ood_distance']:.1f})")
        for name in test_errors.index:
            coverage = test_errors.loc[name, "test_coverage"] if "test_coverage" in test_errors else np.nan
            lines.append(f"   {name:<11} {row[name]:8.1f} {UNITS[name]:<5} [{row[f'{name}_low']:.1f}, {row[f'{name}_high']:.1f}] "
                         f"(conformal interval, test coverage {100 * coverage:.0f} %; probe test MAE "
                         f"{test_errors.loc[name, 'test_mae']:.1f}, R² {test_errors.loc[name, 'test_r2']:.2f})")
        near = neighbours[neighbours.file == row["file"]]
        for match in near.to_dict("records"):
            described = ", ".join(f"{n.split('_')[0]} {match[n]:.0f}" for n in ("LVEF_pct", "LVEDV_mL", "LVM_g") if n in match)
            condition = f", {shown(match['condition'])}" if "condition" in match else ""
            lines.append(f"   nearest #{match['rank']}: {shown(match['subject_id'])} (cosine {match['cosine_similarity']:.3f}; "
                         f"{described}{condition})")
    return "\n".join(lines)
