"""Preprocessing one subject (METHOD.md §2): read its ECG and cine, check them, preprocess both into the cache's
shapes. Every failure is returned as (subject, stage, reason), never raised: a build records it and goes on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ptacl_core.preprocessing.config import PreprocessConfig


def process_subject(cohort_dir: Path, row: dict, config: PreprocessConfig) -> tuple[dict | None, np.ndarray | None, np.ndarray | None]:
    """Read and preprocess one subject. Returns (meta, ecg, cmr) or (failure, None, None) where failure
    has a ``stage`` and a ``reason``. Never raises for bad data: everything is recorded."""

    subject = row["subject_id"]

    def failure(stage: str, error: Exception) -> tuple[dict, None, None]:
        return {"subject_id": subject, "stage": stage, "reason": str(error)}, None, None

    try:
        return _process_subject(cohort_dir, row, config, failure)
    except Exception as error:  # anything unforeseen is one subject's failure, not the whole build's
        return failure("unexpected", RuntimeError(f"{type(error).__name__}: {error}"))


def _process_subject(cohort_dir: Path, row: dict, config: PreprocessConfig, failure):
    from ptacl_core.io.cmr import CmrReadError, read_cmr, read_nifti_labels
    from ptacl_core.io.ecg import EcgReadError, read_ecg
    from ptacl_core.preprocessing.cmr import CmrQualityError, preprocess_cmr
    from ptacl_core.preprocessing.ecg import EcgQualityError, preprocess_ecg

    subject = row["subject_id"]

    ecg_path = cohort_dir / str(row["ecg"])
    if not ecg_path.exists() and not ecg_path.with_suffix(".hea").exists():
        return failure("read_ecg", FileNotFoundError(f"{ecg_path}: file not found"))
    try:
        ecg = read_ecg(ecg_path)
    except EcgReadError as error:
        return failure("read_ecg", error)
    try:
        ecg_out = preprocess_ecg(ecg.signal, ecg.fs, config.ecg)
    except EcgQualityError as error:
        return failure("ecg_quality", EcgReadError(ecg_path, str(error)))
    cmr_path = cohort_dir / str(row["cmr"])
    if not cmr_path.exists():
        return failure("read_cmr", FileNotFoundError(f"{cmr_path}: file not found"))
    try:
        # UK Biobank long-axis zips (field 20208) hold the 2-, 3- and 4-chamber series: pick the view's.
        cine = read_cmr(cmr_path, series_description="4ch" if config.cmr.view == "la_4ch" else None)
        seg = row.get("cmr_seg")
        labels = read_nifti_labels(cohort_dir / str(seg)) if isinstance(seg, str) and seg else None
    except CmrReadError as error:
        return failure("read_cmr", error)
    try:
        cine_out = preprocess_cmr(cine.image, cine.spacing_mm, config.cmr, labels)
    except CmrQualityError as error:
        return failure("cmr_quality", CmrReadError(cmr_path, str(error)))
    cmr_array = cine_out.cine if config.cmr.n_slices > 1 else cine_out.cine[0]
    meta = {
        "subject_id": subject, "rpeaks": ecg_out.rpeaks.tolist(), "ed_frame": cine_out.ed_frame,
        "es_frame": cine_out.es_frame, "flags": list(ecg_out.flags),
        # the cached frames span the same cycle as the source frames
        "frame_interval_ms": cine.frame_interval_ms * cine.n_frames / config.cmr.n_frames,
        "source_frames": cine.n_frames,
    }
    return meta, ecg_out.signal.astype(np.float16), cmr_array.astype(np.float16)


def worker(args: tuple[str, dict, dict]):
    """``process_subject`` for a process pool: (cohort folder, manifest row, config as a dict)."""
    cohort_dir, row, config_values = args
    return process_subject(Path(cohort_dir), row, PreprocessConfig.from_dict(config_values))
