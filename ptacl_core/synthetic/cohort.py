"""Generate and write the synthetic paired cohort (METHOD.md §1 layout, §6 physiology).

Layout written under ``out``::

    cohort.json              generator config (coupling included), seed, kit version (never mixed with another config)
    manifest.csv             subject_id, ecg, cmr, cmr_seg, split
    phenotypes.csv           subject_id, the ten phenotypes and six temporal ones (from the masks), the ECG truth
                             (HR_bpm, PR_ms, QRS_ms, QT_ms), condition, sex, age_years
    latents.csv              the generator's ground truth (timings, axis, territory, ...), for tests and plots
    ecg/<id>.hea/.dat/.atr   WFDB record, 12 leads, mV; .atr holds the true R peaks
    cmr/<id>_sa.nii.gz       short-axis cine (X, Y, Z, T) int16; pixdim = (mm, mm, mm, ms per frame)
    cmr/<id>_sa_seg.nii.gz   labels 1 LV cavity, 2 LV myocardium, 3 RV cavity
    subjects/<id>.json       per-subject record, written last: its presence means the subject is complete
    failures.csv             subjects that failed (subject_id, stage, reason), if any

Each subject's random stream is seeded by (seed, index), so subject i does not depend on N and a re-run
with the same seed writes byte-identical files. An interrupted run resumes: complete subjects are skipped.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from isal import igzip
from tqdm.auto import tqdm

from ptacl_core import __version__
from ptacl_core.io.cohort_tables import SPLIT_FRACTIONS
from ptacl_core.io.ecg import read_wfdb, write_wfdb
from ptacl_core.paths import write_text_atomically, written_atomically
from ptacl_core.phenotypes import (
    ECG_TRUTH,
    PHENOTYPES,
    TEMPORAL_PHENOTYPES,
    label_volume_curves,
    phenotypes_from_volumes,
    temporal_phenotypes,
)
from ptacl_core.synthetic.cine_phantom import SyntheticCine, render_cine
from ptacl_core.synthetic.config import SynthConfig
from ptacl_core.synthetic.dipole_ecg import SyntheticEcg, fiducial_offset, synthesize_ecg
from ptacl_core.synthetic.latent import SubjectLatent, sample_latent, with_trigger_offsets
from ptacl_core.tools.threads import resolve_workers, single_threaded

# Bumped whenever the generator's output changes, so an old cohort is never resumed with new code.
GENERATOR_VERSION = 3  # 3: physiological timing couplings, null twin, trigger at the detector's fiducial
LATENTS_FILE = "latents.csv"  # the generator's ground truth beside the manifest: its presence marks a synthetic cohort


class CohortMismatchError(RuntimeError):
    """The output folder already holds a cohort generated with another seed or config."""


def subject_id(index: int) -> str:
    return f"SYN{index:06d}"


@dataclass(frozen=True)
class SyntheticSubject:
    latent: SubjectLatent
    ecg: SyntheticEcg
    cine: SyntheticCine


def make_subject(index: int, seed: int, config: SynthConfig) -> SyntheticSubject:
    """Generate one subject in memory (no I/O). Independent streams for latent, ECG and cine."""
    latent_seed, ecg_seed, cine_seed, twin_seed = np.random.SeedSequence([seed, index]).spawn(4)
    latent = sample_latent(np.random.default_rng(latent_seed), subject_id(index), config, np.random.default_rng(twin_seed))
    # The R peak (the cine's trigger) sits where the kit's detector puts it: the QRS-energy centroid.
    ecg_offset = fiducial_offset(latent, config.ecg_fs)
    mechanical = ecg_offset if latent.mechanical_qrs_duration_s == latent.qrs_duration_s else fiducial_offset(
        replace(latent, qrs_duration_s=latent.mechanical_qrs_duration_s), config.ecg_fs)
    latent = with_trigger_offsets(latent, ecg_offset, mechanical)
    ecg = synthesize_ecg(latent, np.random.default_rng(ecg_seed), config.ecg_fs, config.ecg_duration_s, config.mains_hz)
    cine = render_cine(latent, np.random.default_rng(cine_seed), config.image_size, config.pixel_mm, config.n_slices, config.n_frames)
    return SyntheticSubject(latent, ecg, cine)


def _write_wfdb(ecg: SyntheticEcg, latent: SubjectLatent, folder: Path) -> None:
    import wfdb  # lazy: 0.6 s at import (pandas, scipy, requests), needed only when writing a cohort

    comments = (f"Age: {latent.age_years:.0f}", f"Sex: {latent.sex.capitalize()}", "Source: ptacl_core synthetic cohort")
    write_wfdb(folder / latent.subject_id, ecg.signal, ecg.fs, comments=comments)
    wfdb.wrann(latent.subject_id, "atr", ecg.rpeaks, symbol=["N"] * len(ecg.rpeaks), fs=ecg.fs, write_dir=str(folder))


def _write_nifti(volume: np.ndarray, cine: SyntheticCine, path: Path) -> None:
    """Write a gzipped NIfTI-1 file, atomically. Compressed with ISA-L (``isal``): the same gzip format
    nibabel reads, ~6x faster than zlib, with mtime 0 so that the bytes depend on the data only."""
    import nibabel as nib  # lazy: 0.4 s at import, needed only when writing a cohort

    # RAS+ world: array x runs towards the patient's left (-x), y anterior, z from base to apex (inferior):
    # viewers then show the RV on the patient's right, as in a real short-axis stack.
    dx, dy, dz = cine.spacing_mm
    image = nib.Nifti1Image(volume, np.diag([-dx, dy, -dz, 1.0]))
    image.header.set_zooms((*cine.spacing_mm, cine.frame_interval_ms))
    image.header.set_xyzt_units("mm", "msec")
    with written_atomically(path) as temporary:  # a unique temporary name, removed on failure
        temporary.write_bytes(igzip.compress(image.to_bytes(), compresslevel=1, mtime=0))


def subject_record(subject: SyntheticSubject) -> dict:
    """Phenotypes measured from the masks, plus the latent ground truth, as one JSON-able dict."""
    latent, cine = subject.latent, subject.cine
    volumes = label_volume_curves(cine.labels, cine.spacing_mm)
    measured = phenotypes_from_volumes(volumes, latent.heart_rate_bpm)
    lv = volumes[1]
    measured.update(temporal_phenotypes(lv, cine.frame_interval_ms))
    record = {
        "subject_id": latent.subject_id,
        "phenotypes": {name: round(float(value), 4) for name, value in measured.items()},
        # the ECG truth the generator used (at the mean RR)
        "ecg_truth": {"HR_bpm": round(latent.heart_rate_bpm, 3), "PR_ms": round(latent.pr_interval_s * 1000.0, 2),
                      "QRS_ms": round(latent.qrs_duration_s * 1000.0, 2), "QT_ms": round(latent.qt_s(latent.rr_s) * 1000.0, 2)},
        "latent": latent.to_dict(),
        "timing": {
            "t_end_after_r_ms": round(latent.t_end_after_r_s() * 1000.0, 3),
            "end_systole_after_r_ms": round(latent.end_systole_s * 1000.0, 3),
            "ejection_start_after_r_ms": round(latent.ejection_start_s * 1000.0, 3),
            "frame_interval_ms": round(cine.frame_interval_ms, 4),
            "end_systole_frame": int(np.argmin(lv)),
            "rpeaks": subject.ecg.rpeaks.tolist(),
        },
    }
    return record


def write_subject(index: int, seed: int, config: SynthConfig, out: Path) -> dict:
    """Generate subject ``index`` and write its files; returns its record (also saved as JSON, last)."""
    subject = make_subject(index, seed, config)
    name = subject.latent.subject_id
    for stale in _subject_files(out, name):  # a file left by an interrupted run may be a link into another cohort
        stale.unlink()  # (``link_subjects``): never write through it
    _write_wfdb(subject.ecg, subject.latent, out / "ecg")
    _write_nifti(subject.cine.image, subject.cine, out / "cmr" / f"{name}_sa.nii.gz")
    _write_nifti(subject.cine.labels, subject.cine, out / "cmr" / f"{name}_sa_seg.nii.gz")
    record = subject_record(subject)
    done = out / "subjects" / f"{name}.json"
    write_text_atomically(done, json.dumps(record, indent=1, sort_keys=True))
    return record


def _worker(args: tuple[int, int, dict, str]) -> tuple[int, dict | None, str]:
    index, seed, config_values, out = args
    try:
        return index, write_subject(index, seed, SynthConfig.from_dict(config_values), Path(out)), ""
    except Exception as error:  # recorded in failures.csv; the other subjects go on
        return index, None, f"{type(error).__name__}: {error}"


def assign_splits(subject_ids: list[str], conditions: list[str], seed: int, fractions=SPLIT_FRACTIONS) -> dict[str, str]:
    """Train/val/test stratified by condition; within a condition the order is a hash of (seed, id)."""
    splits: dict[str, str] = {}
    for condition in sorted(set(conditions)):
        members = [sid for sid, c in zip(subject_ids, conditions, strict=True) if c == condition]
        members.sort(key=lambda sid: hashlib.sha256(f"{seed}:{sid}".encode()).hexdigest())
        n_train = int(round(fractions[0] * len(members)))
        n_val = int(round(fractions[1] * len(members)))
        for position, sid in enumerate(members):
            splits[sid] = "train" if position < n_train else "val" if position < n_train + n_val else "test"
    return splits


def _check_or_write_cohort_json(out: Path, seed: int, config: SynthConfig) -> None:
    description = {"generator": "ptacl_core.synthetic", "generator_version": GENERATOR_VERSION, "seed": seed,
                   "config": config.to_dict()}
    path = out / "cohort.json"
    if path.exists():
        existing = json.loads(path.read_text())
        if {k: existing.get(k) for k in description} != description:
            raise CohortMismatchError(
                f"{out} already holds a cohort made with seed {existing.get('seed')}, generator version "
                f"{existing.get('generator_version')} and config {existing.get('config')}; refusing to mix it with "
                f"seed {seed}, generator version {GENERATOR_VERSION} and {config.to_dict()}. "
                "Use another --out folder or delete this one."
            )
    path.write_text(json.dumps({**description, "kit_version": __version__}, indent=1, sort_keys=True))


def _write_tables(out: Path, records: list[dict], seed: int, config: SynthConfig) -> None:
    records = sorted(records, key=lambda r: r["subject_id"])
    ids = [r["subject_id"] for r in records]
    splits = assign_splits(ids, [r["latent"]["condition"] for r in records], seed, config.split_fractions)
    with open(out / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject_id", "ecg", "cmr", "cmr_seg", "split"])
        for sid in ids:
            writer.writerow([sid, f"ecg/{sid}.hea", f"cmr/{sid}_sa.nii.gz", f"cmr/{sid}_sa_seg.nii.gz", splits[sid]])
    with open(out / "phenotypes.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject_id", *PHENOTYPES, *TEMPORAL_PHENOTYPES, *ECG_TRUTH, "condition", "sex", "age_years"])
        for r in records:
            latent, truth = r["latent"], r["ecg_truth"]
            writer.writerow([
                r["subject_id"], *(f"{r['phenotypes'][p]:.4f}" for p in (*PHENOTYPES, *TEMPORAL_PHENOTYPES)),
                f"{truth['HR_bpm']:.2f}", f"{truth['PR_ms']:.1f}", f"{truth['QRS_ms']:.1f}", f"{truth['QT_ms']:.1f}",
                latent["condition"], latent["sex"], latent["age_years"],
            ])
    # sorted, as in the subjects' JSON: a resumed cohort (records read back) writes the same table as a whole one
    latent_columns = sorted(k for k in records[0]["latent"] if k != "subject_id") if records else []
    timing_columns = ["t_end_after_r_ms", "end_systole_after_r_ms", "ejection_start_after_r_ms", "frame_interval_ms",
                      "end_systole_frame"]
    with open(out / LATENTS_FILE, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject_id", *latent_columns, *timing_columns])
        for r in records:
            writer.writerow([r["subject_id"], *(r["latent"][k] for k in latent_columns), *(r["timing"][k] for k in timing_columns)])


def _subject_files(folder: Path, name: str) -> list[Path]:
    """A subject's ECG and CMR files in a cohort folder (not its record in subjects/)."""
    return [*(folder / "ecg").glob(f"{name}.*"), *(folder / "cmr").glob(f"{name}_*")]


def _generator_description(path: Path) -> dict:
    values = json.loads(path.read_text())
    return {k: v for k, v in values.items() if k != "kit_version"}


def link_subjects(source: Path | str, out: Path | str, n: int) -> int:
    """Hard-link (copy across file systems) the files of subjects 0..n-1 that ``source`` holds into ``out``, so
    that ``generate_cohort(out, n)`` writes only the others: a subject's files depend on its index, the seed and the
    config only, so a larger cohort of the same seed and config starts from a smaller one (the scaling profile).
    ``source``'s ``cohort.json`` comes along, and ``generate_cohort`` then refuses a seed or config other than its
    own; a folder whose ``cohort.json`` differs is refused before anything is linked. A subject of ``out`` that
    ``generate_cohort`` writes later (an interrupted link) first loses its linked files, so writing one cohort never
    changes another. Returns the number of subjects linked."""
    source, out = Path(source), Path(out)
    if not (source / "cohort.json").exists():
        raise FileNotFoundError(f"{source}: no cohort.json, not a cohort written by the kit's generator")
    if (out / "cohort.json").exists() and _generator_description(out / "cohort.json") != _generator_description(source / "cohort.json"):
        raise CohortMismatchError(f"{out} holds a cohort of another seed, generator or config than {source}; refusing "
                                  "to link its subjects (use another folder or delete this one)")
    for folder in ("ecg", "cmr", "subjects"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    if not (out / "cohort.json").exists():
        shutil.copyfile(source / "cohort.json", out / "cohort.json")
    linked = 0
    for index in range(n):
        name = subject_id(index)
        done = source / "subjects" / f"{name}.json"
        if not done.exists() or (out / "subjects" / done.name).exists():
            continue
        for file in [*_subject_files(source, name), done]:  # the subject's record last: it marks the subject complete
            target = out / file.parent.name / file.name
            target.unlink(missing_ok=True)
            try:
                os.link(file, target)
            except OSError:  # another file system, or links not allowed
                shutil.copyfile(file, target)
        linked += 1
    return linked


def generate_cohort(out: Path | str, n: int, seed: int = 0, config: SynthConfig | None = None,
                    workers: int | None = None, progress: bool = True) -> dict:
    """Write a cohort of ``n`` subjects to ``out`` (resuming if it was interrupted).

    Returns a summary: n_written, n_skipped (already complete), failures [(subject_id, stage, reason)],
    seconds, subjects_per_s.
    """
    config = config or SynthConfig()
    out = Path(out)
    for folder in ("ecg", "cmr", "subjects"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    _check_or_write_cohort_json(out, seed, config)  # records the coupling (physiological or the null twin)

    records: dict[int, dict] = {}
    todo: list[int] = []
    for index in range(n):
        done = out / "subjects" / f"{subject_id(index)}.json"
        if done.exists():
            records[index] = json.loads(done.read_text())
        else:
            todo.append(index)
    n_skipped = len(records)
    failures: list[tuple[str, str, str]] = []
    workers = resolve_workers(workers)
    start = time.perf_counter()
    jobs = [(index, seed, config.to_dict(), str(out)) for index in todo]
    bar = tqdm(total=len(jobs), desc="synthetic subjects", unit="subj", disable=not progress or not jobs)
    results: Iterable
    if workers == 1 or len(jobs) < 8:
        results = map(_worker, jobs)
        for index, record, error in results:
            _collect(index, record, error, records, failures)
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=single_threaded) as pool:
            futures = [pool.submit(_worker, job) for job in jobs]
            for future in as_completed(futures):
                _collect(*future.result(), records, failures)
                bar.update()
    bar.close()
    seconds = time.perf_counter() - start

    _write_tables(out, list(records.values()), seed, config)
    failure_file = out / "failures.csv"
    if failures:
        with open(failure_file, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["subject_id", "stage", "reason"])
            writer.writerows(sorted(failures))
    elif failure_file.exists():
        failure_file.unlink()
    written = len(todo) - len(failures)
    return {
        "out": str(out), "n_subjects": len(records), "n_written": written, "n_skipped": n_skipped,
        "failures": failures, "seconds": seconds, "subjects_per_s": written / seconds if seconds > 0 and written else float("nan"),
    }


def _collect(index: int, record: dict | None, error: str, records: dict, failures: list) -> None:
    if record is None:
        failures.append((subject_id(index), "generate", error))
    else:
        records[index] = record


def read_synthetic_subject(cohort_dir: Path | str, subject: str) -> dict:
    """Everything about one generated subject, read back from its files (for notebooks and tests).

    Keys: ecg (io.ecg.Ecg), rpeaks (samples, from the WFDB .atr annotation), image and labels
    ((X, Y, Z, T) arrays), spacing_mm, frame_interval_ms, record (the subject's JSON: phenotypes, latent, timing).
    """
    import nibabel as nib  # lazy: 0.4 s at import, needed only to read a subject back
    import wfdb  # lazy: 0.6 s at import, needed only to read a subject's R-peak annotation back

    cohort_dir = Path(cohort_dir)
    ecg = read_wfdb(cohort_dir / "ecg" / f"{subject}.hea")
    annotation = wfdb.rdann(str(cohort_dir / "ecg" / subject), "atr")
    image = nib.load(cohort_dir / "cmr" / f"{subject}_sa.nii.gz")
    labels = nib.load(cohort_dir / "cmr" / f"{subject}_sa_seg.nii.gz")
    zooms = image.header.get_zooms()
    return {
        "ecg": ecg,
        "rpeaks": np.asarray(annotation.sample, dtype=np.int64),
        "image": np.asarray(image.dataobj),
        "labels": np.asarray(labels.dataobj),
        "spacing_mm": tuple(float(z) for z in zooms[:3]),
        "frame_interval_ms": float(zooms[3]),
        "record": json.loads((cohort_dir / "subjects" / f"{subject}.json").read_text()),
    }
