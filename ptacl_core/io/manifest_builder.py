"""Write a cohort's ``manifest.csv`` from a folder of files, with deterministic splits.

Two layouts:

- kit layout: ``ecg/<id>.hea|.xml|.dcm|.scp|.edf|.bdf`` and ``cmr/<id>*.nii.gz`` (optional ``cmr/<id>*_seg*.nii.gz`` masks),
  ``cmr/<id>/`` DICOM folders or ``cmr/<id>*.zip``;
- UK Biobank bulk layout: ``<eid>_20205_2_0.xml`` (ECG) and ``<eid>_20209_2_0.zip`` (short-axis CMR) anywhere
  below the folder.

Subjects lacking a modality are reported (subject, stage, reason), never silently dropped.
"""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

from ptacl_core.io.cohort_tables import SPLIT_FRACTIONS
from ptacl_core.io.csv_cells import escape_cell
from ptacl_core.io.ecg import ECG_SUFFIXES
from ptacl_core.paths import written_atomically


def split_for(subject_id: str, salt: str = "ptacl", fractions=SPLIT_FRACTIONS) -> str:
    """Deterministic split from a hash of the id: stable when subjects are added or removed."""
    value = int(hashlib.sha256(f"{salt}:{subject_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "train" if value < fractions[0] else "val" if value < fractions[0] + fractions[1] else "test"


def _pick(candidates: list[Path], prefer: str) -> Path | str:
    """One file among a subject's candidates: the only one, else the only one whose name contains
    ``prefer``; a string (the reason) when that is ambiguous."""
    if len(candidates) == 1:
        return candidates[0]
    preferred = [path for path in candidates if prefer in path.name.lower()]
    if len(preferred) == 1:
        return preferred[0]
    return f"several candidate files {[p.name for p in candidates]}; keep one per subject or name it *{prefer}*"


def _kit_layout(cohort_dir: Path) -> tuple[dict, dict, dict]:
    ecg: dict[str, Path] = {}
    for path in sorted((cohort_dir / "ecg").glob("*")):
        if path.suffix.lower() in ECG_SUFFIXES:  # WFDB, XML exports, DICOM, SCP-ECG, EDF/BDF
            ecg.setdefault(path.stem, path)
    by_length = sorted(ecg, key=len, reverse=True)
    cmr_candidates: dict[str, list[Path]] = {}
    seg_candidates: dict[str, list[Path]] = {}
    for path in sorted((cohort_dir / "cmr").glob("*")):
        name = path.name
        # The id is the longest ECG id that the name starts with (ids may hold "_" or "."), else the
        # text before the first "_" or "." (reported as a subject without an ECG).
        subject = next((s for s in by_length if name == s or name.startswith((s + "_", s + "."))),
                       re.split(r"[_.]", name, maxsplit=1)[0])
        if "_seg" in name or "label" in name:
            seg_candidates.setdefault(subject, []).append(path)
        elif path.is_dir() or name.lower().endswith((".nii", ".nii.gz", ".zip")):
            cmr_candidates.setdefault(subject, []).append(path)
    cmr = {subject: _pick(paths, "_sa") for subject, paths in cmr_candidates.items()}
    seg = {subject: _pick(paths, "_sa") for subject, paths in seg_candidates.items()}
    return ecg, cmr, seg


def _ukb_layout(cohort_dir: Path) -> tuple[dict, dict, dict]:
    ecg, cmr = {}, {}
    for path in sorted(cohort_dir.rglob("*_2_0.*")):
        match = re.fullmatch(r"(\d+)_(\d+)_2_0\.(xml|zip)", path.name)
        if not match:
            continue
        eid, field = match.group(1), int(match.group(2))
        if field == 20205:
            ecg[eid] = path
        elif field == 20209:
            cmr[eid] = path
    return ecg, cmr, {}


def build_manifest(cohort_dir: Path | str, layout: str = "kit", splits: dict[str, str] | None = None) -> tuple[list[dict], list[tuple[str, str, str]]]:
    """Scan ``cohort_dir`` and write ``manifest.csv``. Returns (rows, problems) where problems are
    (subject_id, stage, reason) for subjects lacking a modality."""
    cohort_dir = Path(cohort_dir)
    if layout not in ("kit", "ukb"):
        raise ValueError(f"layout must be 'kit' or 'ukb', not {layout!r}")
    ecg, cmr, seg = _kit_layout(cohort_dir) if layout == "kit" else _ukb_layout(cohort_dir)
    rows, problems = [], []
    for subject in sorted(set(ecg) | set(cmr)):
        if subject not in ecg:
            problems.append((subject, "manifest", "no ECG file found"))
            continue
        if subject not in cmr:
            problems.append((subject, "manifest", "no CMR file found"))
            continue
        if isinstance(cmr[subject], str) or isinstance(seg.get(subject), str):
            problems.append((subject, "manifest", cmr[subject] if isinstance(cmr[subject], str) else seg[subject]))
            continue
        rows.append({
            "subject_id": subject, "ecg": str(ecg[subject].relative_to(cohort_dir)),
            "cmr": str(cmr[subject].relative_to(cohort_dir)),
            "cmr_seg": str(seg[subject].relative_to(cohort_dir)) if subject in seg else "",
            "split": (splits or {}).get(subject) or split_for(subject),
        })
    with written_atomically(cohort_dir / "manifest.csv") as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["subject_id", "ecg", "cmr", "cmr_seg", "split"])
        writer.writeheader()
        writer.writerows({key: escape_cell(value) for key, value in row.items()} for row in rows)
    return rows, problems
