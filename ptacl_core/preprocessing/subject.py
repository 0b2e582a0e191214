"""Preprocessing one subject (METHOD.md §2): read its ECG and cine, check them, preprocess both into the cache's
shapes. Every failure is returned as (subject, stage, reason), never raised: a build records it and goes on."""

from __future__ import annotations

import math
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ptacl_core.io.cmr import CmrReadError, read_cmr, read_nifti_labels
from ptacl_core.io.ecg import EcgReadError, read_ecg
from ptacl_core.preprocessing.cine_cropping import CmrQualityError, preprocess_cmr
from ptacl_core.preprocessing.config import PreprocessConfig
from ptacl_core.preprocessing.ecg_filtering import EcgQualityError, preprocess_ecg

SUBJECT_TIMEOUT_S = 300.0  # one subject takes ~0.1-2 s; a subject still running after 5 min is stuck


class SubjectTimeout(BaseException):
    """Raised inside ``process_subject`` when a subject takes longer than its time limit. A BaseException, so that
    the readers' and libraries' ``except Exception`` cannot turn it into a read error or swallow it."""


@contextmanager
def _time_limit(seconds: float | None):
    """Raise ``SubjectTimeout`` after ``seconds`` (SIGALRM; only in a main thread, where signals are delivered)."""
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):
        raise SubjectTimeout(f"took longer than {seconds:g} s (a blocking or huge input?)")

    previous = signal.signal(signal.SIGALRM, expire)
    started = time.monotonic()
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)  # a caller's own alarm, re-armed afterwards
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer > 0:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 1e-3))


def check_timeout(timeout_s: float | None) -> None:
    """A per-subject time limit is None/0 (no limit) or a positive finite number of seconds."""
    if timeout_s is not None and (not math.isfinite(timeout_s) or timeout_s < 0):
        raise ValueError(f"the subject timeout must be a non-negative number of seconds (0: no limit), got {timeout_s!r}")


def process_subject(cohort_dir: Path, row: dict, config: PreprocessConfig,
                    timeout_s: float | None = None) -> tuple[dict | None, np.ndarray | None, np.ndarray | None]:
    """Read and preprocess one subject. Returns (meta, ecg, cmr) or (failure, None, None) where failure
    has a ``stage`` and a ``reason``. Never raises for bad data: everything is recorded, including a subject that
    runs past ``timeout_s`` (stage ``timeout``)."""

    subject = row["subject_id"]
    check_timeout(timeout_s)

    def failure(stage: str, error: BaseException) -> tuple[dict, None, None]:
        return {"subject_id": subject, "stage": stage, "reason": str(error)}, None, None

    try:
        with _time_limit(timeout_s):
            return _process_subject(cohort_dir, row, config, failure)
    except SubjectTimeout as error:
        return failure("timeout", error)
    except Exception as error:  # anything unforeseen is one subject's failure, not the whole build's
        return failure("unexpected", RuntimeError(f"{type(error).__name__}: {error}"))


def _process_subject(cohort_dir: Path, row: dict, config: PreprocessConfig, failure):
    subject = row["subject_id"]

    ecg_path = cohort_dir / str(row["ecg"])
    if not ecg_path.exists() and not ecg_path.with_suffix(".hea").exists():
        return failure("read_ecg", FileNotFoundError(f"{ecg_path}: file not found"))
    try:
        ecg = read_ecg(ecg_path, max_seconds=config.ecg.duration_s + 1.0)  # only what preprocessing keeps
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
    interval_ms, interval_flags = source_frame_interval_ms(cine.frame_interval_ms, cine.n_frames, ecg_out.rpeaks,
                                                           config.ecg.fs)
    meta = {
        "subject_id": subject, "rpeaks": ecg_out.rpeaks.tolist(), "ed_frame": cine_out.ed_frame,
        "es_frame": cine_out.es_frame, "flags": [*ecg_out.flags, *cine_out.flags, *interval_flags],
        # the cached frames span the same cycle as the source frames
        "frame_interval_ms": interval_ms * cine.n_frames / config.cmr.n_frames,
        "source_frames": cine.n_frames,
    }
    with np.errstate(over="ignore"):  # an overflow to inf is refused just below
        ecg16, cmr16 = ecg_out.signal.astype(np.float16), cmr_array.astype(np.float16)
    if not np.isfinite(ecg16).all():  # a NaN from a filter, or beyond float16's range: never cached
        return failure("ecg_quality", EcgReadError(ecg_path, f"{_non_finite(ecg16)} after preprocessing"))
    if not np.isfinite(cmr16).all():
        return failure("cmr_quality", CmrReadError(cmr_path, f"{_non_finite(cmr16)} after preprocessing"))
    return meta, ecg16, cmr16


def _non_finite(array: np.ndarray) -> str:
    """How many values of a preprocessed float16 array are NaN or infinite (float16 holds at most ±65504)."""
    return f"{int(np.isnan(array).sum())} NaN and {int(np.isinf(array).sum())} infinite value(s) (float16 holds ±65504)"


PLAUSIBLE_CYCLE_MS = (250.0, 2500.0)  # the frames of a cine span one cardiac cycle: 24-240 beats/min


def source_frame_interval_ms(interval_ms: float, n_frames: int, rpeaks: np.ndarray, ecg_fs: float) -> tuple[float, list[str]]:
    """The cine's frame interval (ms) and its flags. When the file gives none (NaN) or one that makes the cycle
    (``n_frames`` x interval) implausible, e.g. a NIfTI storing 1 as a placeholder, it is derived from the paired
    ECG: its median RR (rpeaks in samples at ``ecg_fs``) over the frame count, flagged ``frame_interval_from_ecg``."""
    cycle = interval_ms * n_frames
    low, high = PLAUSIBLE_CYCLE_MS
    if np.isfinite(cycle) and low <= cycle <= high:
        return float(interval_ms), []
    rr_ms = float(np.median(np.diff(rpeaks))) * 1000.0 / ecg_fs
    return rr_ms / n_frames, ["frame_interval_from_ecg"]


def worker(args: tuple[str, dict, dict, float | None]):
    """``process_subject`` for a process pool: (cohort folder, manifest row, config as a dict, timeout in s)."""
    cohort_dir, row, config_values, timeout_s = args
    return process_subject(Path(cohort_dir), row, PreprocessConfig.from_dict(config_values), timeout_s)
