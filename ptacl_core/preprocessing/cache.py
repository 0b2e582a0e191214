"""The training cache: memory-mapped arrays plus an index keyed by subject_id (METHOD.md §2).

Layout of a cache folder::

    cache.json      fingerprint (manifest + phenotypes + preprocessing config + kit version), config, shapes, shard
    ecg.npy         (N, 12, L) float16, memory-mapped
    cmr.npy         (N, T, S, S) float16, or (N, Z, T, S, S) for multi-slice views
    rows.jsonl      one line per completed subject (written after its arrays are flushed): the resume log
    failures.jsonl  one line per failed subject: stage and reason
    index.csv       subject_id, row, split, rpeaks, ed_frame, es_frame, flags, phenotypes (completed subjects)
    failures.csv    subject_id, stage, reason

Rows are the manifest's subjects in subject_id order, so a subject's row never depends on which others
failed or on the order work finished. A killed build resumes from ``rows.jsonl``; a rebuild of a complete
cache is a no-op; a folder built with another fingerprint is refused.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ptacl_core import __version__
from ptacl_core.cohort_tables import read_cohort
from ptacl_core.phenotypes import PHENOTYPES
from ptacl_core.preprocessing.config import PreprocessConfig

CACHE_FORMAT = 1


class CacheMismatchError(RuntimeError):
    """A cache folder built from another manifest, config or kit version."""


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError as error:
            raise ValueError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from error
        if not 0 <= index < count:
            raise ValueError(f"--shard {text}: need 0 <= I < N")
        return cls(index, count)


def fingerprint(cohort_dir: Path, config: PreprocessConfig) -> str:
    """sha256 of the manifest and phenotype tables, the preprocessing config and the kit version."""
    digest = hashlib.sha256()
    for name in ("manifest.csv", "phenotypes.csv"):
        path = cohort_dir / name
        digest.update(path.read_bytes() if path.exists() else b"")
    digest.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    digest.update(__version__.encode())
    return digest.hexdigest()


def default_cache_dir(cohort_dir: Path | str, preset: str) -> Path:
    """``data/cache/<cohort>_<preset>_<fingerprint>``: one folder per (cohort contents, config), so a bigger
    cohort or another preset never collides with an existing cache."""
    from ptacl_core import paths

    cohort_dir = Path(cohort_dir)
    config = PreprocessConfig.preset(preset)
    return paths.data_root() / "cache" / f"{cohort_dir.name}_{preset}_{fingerprint(cohort_dir, config)[:8]}"


def _shapes(config: PreprocessConfig) -> tuple[tuple[int, ...], tuple[int, ...]]:
    cmr = (config.cmr.n_frames, config.cmr.size, config.cmr.size)
    if config.cmr.n_slices > 1:
        cmr = (config.cmr.n_slices, *cmr)
    return (12, config.ecg.n_samples), cmr


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
    from ptacl_core.preprocessing.cmr import CmrQualityError, preprocess_cine
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
        cine_out = preprocess_cine(cine.image, cine.spacing_mm, config.cmr, labels)
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


def _worker(args):
    cohort_dir, row, config_values = args
    return process_subject(Path(cohort_dir), row, PreprocessConfig.from_dict(config_values))


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a kill mid-write: that subject is simply redone
    return records


def _repair_tail(path: Path) -> None:
    """A kill mid-write can leave a last line without its newline: end it, so the next record starts fresh."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) != b"\n":
            handle.write(b"\n")


def _append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _open_arrays(out: Path, n: int, config: PreprocessConfig, create: bool):
    ecg_shape, cmr_shape = _shapes(config)
    mode = "w+" if create else "r+"
    ecg = np.lib.format.open_memmap(out / "ecg.npy", mode=mode, dtype=np.float16, shape=(n, *ecg_shape) if create else None)
    cmr = np.lib.format.open_memmap(out / "cmr.npy", mode=mode, dtype=np.float16, shape=(n, *cmr_shape) if create else None)
    return ecg, cmr


def build_cache(cohort_dir: Path | str, out: Path | str, config: PreprocessConfig | None = None,
                workers: int = 1, shard: Shard | None = None, progress: bool = True,
                stop_after: int | None = None) -> dict:
    """Preprocess a cohort into ``out`` (resuming an interrupted build). Returns a summary dict.

    shard: process only subjects at positions ``index, index + count, ...`` (cluster array jobs; merge
    the shards with ``merge_caches``). stop_after: stop after that many new subjects (tests of resume).
    """
    from tqdm.auto import tqdm

    cohort_dir, out = Path(cohort_dir), Path(out)
    config = config or PreprocessConfig()
    table = read_cohort(cohort_dir).sort_values("subject_id").reset_index(drop=True)
    if shard is not None:
        table = table.iloc[shard.index::shard.count].reset_index(drop=True)
    print_ = (lambda *a, **k: print(*a, **k)) if progress else (lambda *a, **k: None)
    description = {
        "format": CACHE_FORMAT, "fingerprint": fingerprint(cohort_dir, config), "kit_version": __version__,
        "config": config.to_dict(), "n_subjects": len(table), "cohort": str(cohort_dir.resolve()),
        "shard": [shard.index, shard.count] if shard else None,
    }
    out.mkdir(parents=True, exist_ok=True)
    cache_json = out / "cache.json"
    fresh = not cache_json.exists()
    if fresh:  # leftovers of a build killed before it wrote cache.json describe nothing: start clean
        for name in ("rows.jsonl", "failures.jsonl", "index.csv", "failures.csv"):
            (out / name).unlink(missing_ok=True)
    else:
        existing = json.loads(cache_json.read_text())
        for key in ("fingerprint", "shard", "n_subjects"):
            if existing.get(key) != description[key]:
                raise CacheMismatchError(
                    f"{out} holds a cache built from another manifest, preprocessing config or kit version "
                    f"({key}: {existing.get(key)!r} there, {description[key]!r} now); use another --out or delete it")
    ecg_array, cmr_array = _open_arrays(out, len(table), config, create=fresh)
    if fresh:  # only once the arrays exist: a cache.json always has its arrays
        cache_json.write_text(json.dumps({**description, "complete": False}, indent=1))

    _repair_tail(out / "rows.jsonl")
    _repair_tail(out / "failures.jsonl")
    done = {r["subject_id"] for r in _read_jsonl(out / "rows.jsonl")}
    failed = {r["subject_id"] for r in _read_jsonl(out / "failures.jsonl")}
    row_of = {subject: position for position, subject in enumerate(table.subject_id)}
    todo = [row for row in table.to_dict("records") if row["subject_id"] not in done | failed]
    if stop_after is not None:
        todo = todo[:stop_after]
    start = time.perf_counter()
    bar = tqdm(total=len(todo), desc="preprocessing", unit="subj", disable=not progress or not todo)

    def collect(result) -> None:
        meta, ecg, cmr = result
        if ecg is None:
            _append_jsonl(out / "failures.jsonl", meta)
        else:
            position = row_of[meta["subject_id"]]
            ecg_array[position] = ecg
            cmr_array[position] = cmr
            ecg_array.flush()
            cmr_array.flush()
            _append_jsonl(out / "rows.jsonl", {**meta, "row": position})
        bar.update()

    config_values = config.to_dict()
    if workers <= 1 or len(todo) < 4:
        for row in todo:
            collect(process_subject(cohort_dir, row, config))
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=_single_threaded) as pool:
            futures = [pool.submit(_worker, (str(cohort_dir), row, config_values)) for row in todo]
            for future in as_completed(futures):
                collect(future.result())
    bar.close()
    seconds = time.perf_counter() - start

    rows = _read_jsonl(out / "rows.jsonl")
    failures = _read_jsonl(out / "failures.jsonl")
    complete = len({r["subject_id"] for r in rows} | {f["subject_id"] for f in failures}) == len(table)
    _write_tables(out, table, rows, failures)
    cache_json.write_text(json.dumps({**description, "complete": complete}, indent=1))
    summary = {
        "out": str(out), "n_subjects": len(table), "n_cached": len({r["subject_id"] for r in rows}),
        "n_failed": len({f["subject_id"] for f in failures}), "n_processed_now": len(todo), "seconds": seconds,
        "subjects_per_s": len(todo) / seconds if todo and seconds > 0 else float("nan"), "complete": complete,
        "failures_by_stage": pd.Series([f["stage"] for f in failures], dtype=str).value_counts().to_dict(),
    }
    print_(f"cache {out}: {summary['n_cached']} subjects cached, {summary['n_failed']} failed "
           f"{summary['failures_by_stage'] or ''}; {'complete' if complete else 'INCOMPLETE: run again to resume'}")
    return summary


def _single_threaded() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _write_tables(out: Path, table: pd.DataFrame, rows: list[dict], failures: list[dict]) -> None:
    latest = {r["subject_id"]: r for r in rows}
    phenotype_columns = [c for c in (*PHENOTYPES, "HR_bpm", "QRS_ms", "condition", "sex", "age_years") if c in table]
    by_subject = table.set_index("subject_id")
    records = []
    for subject in sorted(latest):
        meta = latest[subject]
        source = by_subject.loc[subject]
        records.append({
            "subject_id": subject, "row": meta["row"], "split": source["split"],
            "rpeaks": " ".join(str(r) for r in meta["rpeaks"]), "ed_frame": meta["ed_frame"], "es_frame": meta["es_frame"],
            "frame_interval_ms": meta["frame_interval_ms"], "source_frames": meta["source_frames"],
            "flags": ";".join(meta["flags"]), **{c: source[c] for c in phenotype_columns},
        })
    columns = ["subject_id", "row", "split", "rpeaks", "ed_frame", "es_frame", "frame_interval_ms", "source_frames",
               "flags", *phenotype_columns]
    pd.DataFrame(records, columns=columns).to_csv(out / "index.csv", index=False)
    unique_failures = {f["subject_id"]: f for f in failures}
    with open(out / "failures.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject_id", "stage", "reason"])
        for subject in sorted(unique_failures):
            writer.writerow([subject, unique_failures[subject]["stage"], unique_failures[subject]["reason"]])


def merge_caches(shard_dirs: list[Path | str], out: Path | str) -> dict:
    """Merge shard caches (``--shard I/N``) into one; every shard must carry the same fingerprint."""
    shard_dirs = [Path(d) for d in shard_dirs]
    descriptions = []
    for folder in shard_dirs:
        path = folder / "cache.json"
        if not path.exists():
            raise CacheMismatchError(f"{folder}: not a cache (no cache.json)")
        descriptions.append(json.loads(path.read_text()))
    fingerprints = {d["fingerprint"] for d in descriptions}
    if len(fingerprints) > 1:
        raise CacheMismatchError(f"shards were built from different manifests/configs: {sorted(fingerprints)}")
    shards = sorted((tuple(d["shard"] or (0, 1)), folder) for d, folder in zip(descriptions, shard_dirs, strict=True))
    counts = {s[0][1] for s in shards}
    indices = [s[0][0] for s in shards]
    if len(counts) != 1 or sorted(indices) != list(range(counts.pop())):
        raise CacheMismatchError(f"shards {[list(s[0]) for s in shards]} do not cover I/N for I = 0..N-1 exactly once")
    incomplete = [str(folder) for d, folder in zip(descriptions, shard_dirs, strict=True) if not d.get("complete")]
    if incomplete:
        raise CacheMismatchError(f"shard(s) not finished (run them again to resume): {incomplete}")
    config = PreprocessConfig.from_dict(descriptions[0]["config"])
    indexes = [pd.read_csv(folder / "index.csv", dtype={"subject_id": str}) for _, folder in shards]
    all_subjects = sorted(
        set().union(*(set(i.subject_id) for i in indexes))
        | set().union(*(set(pd.read_csv(folder / "failures.csv", dtype={"subject_id": str}).subject_id) for _, folder in shards))
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    total = sum(d["n_subjects"] for d in descriptions)
    ecg_out, cmr_out = _open_arrays(out, total, config, create=True)
    merged_rows, merged_failures = [], []
    global_row = {subject: position for position, subject in enumerate(all_subjects)}
    for (_, folder), index in zip(shards, indexes, strict=True):
        ecg_in = np.load(folder / "ecg.npy", mmap_mode="r")
        cmr_in = np.load(folder / "cmr.npy", mmap_mode="r")
        for record in index.to_dict("records"):
            position = global_row[record["subject_id"]]
            ecg_out[position] = ecg_in[record["row"]]
            cmr_out[position] = cmr_in[record["row"]]
            merged_rows.append({**record, "row": position})
        merged_failures.extend(pd.read_csv(folder / "failures.csv", dtype={"subject_id": str}).to_dict("records"))
    ecg_out.flush()
    cmr_out.flush()
    pd.DataFrame(merged_rows).sort_values("subject_id").to_csv(out / "index.csv", index=False)
    pd.DataFrame(merged_failures, columns=["subject_id", "stage", "reason"]).sort_values("subject_id").to_csv(out / "failures.csv", index=False)
    description = {**descriptions[0], "n_subjects": total, "shard": None, "complete": True, "merged_from": [str(f) for _, f in shards]}
    (out / "cache.json").write_text(json.dumps(description, indent=1))
    return {"out": str(out), "n_cached": len(merged_rows), "n_failed": len(merged_failures)}


@dataclass
class Cache:
    """A finished cache opened for reading: memory-mapped arrays and the index (one row per subject)."""

    folder: Path
    ecg: np.ndarray
    cmr: np.ndarray
    index: pd.DataFrame
    config: PreprocessConfig
    fingerprint: str

    @classmethod
    def open(cls, folder: Path | str, expected_config: PreprocessConfig | None = None) -> Cache:
        folder = Path(folder)
        path = folder / "cache.json"
        if not path.exists():
            raise FileNotFoundError(f"{folder}: not a cache (no cache.json); build it with `python -m ptacl_core preprocess`")
        description = json.loads(path.read_text())
        if not description.get("complete"):
            raise CacheMismatchError(f"{folder}: the build did not finish; run the same preprocess command again to resume")
        config = PreprocessConfig.from_dict(description["config"])
        if expected_config is not None and expected_config.to_dict() != config.to_dict():
            raise CacheMismatchError(f"{folder}: built with preprocessing {config.to_dict()}, expected {expected_config.to_dict()}")
        index = pd.read_csv(folder / "index.csv", dtype={"subject_id": str, "flags": str}).fillna({"flags": ""})
        return cls(folder, np.load(folder / "ecg.npy", mmap_mode="r"), np.load(folder / "cmr.npy", mmap_mode="r"),
                   index, config, description["fingerprint"])

    def rpeaks(self, position: int) -> np.ndarray:
        text = self.index.rpeaks.iloc[position]
        return np.array([int(v) for v in str(text).split()], dtype=np.int64) if isinstance(text, str) else np.array([], dtype=np.int64)
