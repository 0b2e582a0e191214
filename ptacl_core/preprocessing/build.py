"""Building a cache from a cohort: resumable, idempotent, shardable (``python -m ptacl_core preprocess``).

Subjects are processed one by one (``subject.process_subject``) in worker processes; each completed subject's
arrays are flushed before its line is appended to ``rows.jsonl`` (failures to ``failures.jsonl``), so a killed
build resumes where it stopped. The tables (``index.csv``, ``failures.csv``) are rewritten at the end, atomically
(``paths.written_atomically``: a full disk keeps the previous tables). ``--out`` must be a new folder, a cache or a
killed build's leftovers, never a link or a folder holding links or other files (``check_output_folder``); the
arrays' disk space is reserved before the first subject (``cache.open_arrays``).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ptacl_core import __version__, paths
from ptacl_core.io.cohort_tables import CohortError, read_cohort
from ptacl_core.io.csv_cells import write_csv, write_rows
from ptacl_core.phenotypes import ECG_TRUTH, PHENOTYPES, TEMPORAL_PHENOTYPES
from ptacl_core.preprocessing.cache import (
    CACHE_FORMAT,
    CacheMismatchError,
    fingerprint,
    foreign_files,
    is_cache,
    listed,
    open_arrays,
    read_description,
    write_description,
)
from ptacl_core.preprocessing.config import PreprocessConfig
from ptacl_core.preprocessing.subject import SUBJECT_TIMEOUT_S, check_timeout, worker
from ptacl_core.tools.threads import single_threaded


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
    """One line of a resume log, on disk before the next subject (a line a full disk cuts is redone on resume)."""
    try:
        with open(path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        if paths.is_disk_full(error):
            raise paths.disk_full(path.parent, path.name, error=error) from error
        raise


def check_paths_inside(cohort_dir: Path, table: pd.DataFrame) -> None:
    """Refuse manifest paths that leave the cohort folder (absolute, or climbing out with ``..``): a manifest
    must not make the build read anywhere on disk. Checked lexically, so links placed inside the folder are
    followed (a common way to point at bulk data)."""
    root = os.path.normpath(os.path.abspath(cohort_dir))
    outside = []
    for _, row in table.iterrows():
        for column in ("ecg", "cmr", "cmr_seg"):
            value = row.get(column)
            if not isinstance(value, str) or not value:
                continue
            resolved = os.path.normpath(os.path.join(root, value))
            if os.path.commonpath([root, resolved]) != root:
                outside.append(f"{row['subject_id']} {column}={value}")
    if outside:
        raise CohortError(f"{cohort_dir / 'manifest.csv'}: {len(outside)} path(s) lie outside the cohort folder "
                          f"({'; '.join(outside[:3])}{'; ...' if len(outside) > 3 else ''}); make them relative to it "
                          "(links inside it are fine) or pass --allow-outside-paths")


def check_output_folder(out: Path) -> None:
    """ValueError unless ``out`` is new, a cache (to resume or rerun) or a folder holding only a killed build's
    leftovers; never a file, a symbolic link or a folder holding links (writes would land where they point)."""
    paths.refuse_links(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: is a file, not a folder; choose an empty or new folder for --out")
    if out.is_dir() and not is_cache(out):  # not a cache (yet): it may hold only a killed build's leftovers
        foreign = foreign_files(out)
        if foreign:
            raise ValueError(f"{out}: the folder holds other files ({listed(foreign)}) and is not a cache; choose an "
                             "empty or new folder for --out")


def build_cache(cohort_dir: Path | str, out: Path | str, config: PreprocessConfig | None = None,
                workers: int = 1, shard: Shard | None = None, progress: bool = True,
                stop_after: int | None = None, allow_outside_paths: bool = False,
                subject_timeout_s: float | None = SUBJECT_TIMEOUT_S) -> dict:
    """Preprocess a cohort into ``out`` (resuming an interrupted build). Returns a summary dict.

    shard: process only subjects at positions ``index, index + count, ...`` (cluster array jobs; merge
    the shards with ``merge_caches``). stop_after: stop after that many new subjects (tests of resume).
    allow_outside_paths: let manifest paths point outside ``cohort_dir``. subject_timeout_s: a subject running
    longer is recorded as failed (stage ``timeout``). A worker process that dies (e.g. killed by the kernel's
    out-of-memory killer) costs its subject only: it is recorded as failed (stage ``worker_died``).
    """
    cohort_dir, out = Path(cohort_dir), Path(out)
    config = config or PreprocessConfig()
    check_timeout(subject_timeout_s)
    table = read_cohort(cohort_dir).sort_values("subject_id").reset_index(drop=True)
    if not allow_outside_paths:
        check_paths_inside(cohort_dir, table)
    if shard is not None:
        table = table.iloc[shard.index::shard.count].reset_index(drop=True)
    print_ = (lambda *a, **k: print(*a, **k)) if progress else (lambda *a, **k: None)
    description = {
        "format": CACHE_FORMAT, "fingerprint": fingerprint(cohort_dir, config), "kit_version": __version__,
        "config": config.to_dict(), "n_subjects": len(table), "cohort": str(cohort_dir.resolve()),
        "shard": [shard.index, shard.count] if shard else None,
    }
    check_output_folder(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    fresh = not is_cache(out)
    if fresh:  # leftovers of a build killed before it wrote cache.json describe nothing: start clean
        for name in ("rows.jsonl", "failures.jsonl", "index.csv", "failures.csv"):
            (out / name).unlink(missing_ok=True)
    else:
        existing = read_description(out)
        for key in ("fingerprint", "shard", "n_subjects"):
            if existing.get(key) != description[key]:
                raise CacheMismatchError(
                    f"{out} holds a cache built from another manifest, preprocessing config or kit version "
                    f"({key}: {existing.get(key)!r} there, {description[key]!r} now); use another --out or delete it")
    try:
        ecg_array, cmr_array = open_arrays(out, len(table), config, create=fresh)
    except paths.DiskFullError:
        if created:
            out.rmdir()  # the arrays were removed again: leave no empty folder behind
        raise
    if fresh:  # only once the arrays exist: a cache.json always has its arrays
        write_description(out, {**description, "complete": False})

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

    # always in worker processes, even with workers=1: a subject whose process dies (the out-of-memory killer)
    # must cost that subject, not the build and then every resume
    _run_in_workers([(str(cohort_dir), row, config.to_dict(), subject_timeout_s) for row in todo], max(workers, 1), collect)
    bar.close()
    seconds = time.perf_counter() - start

    rows = _read_jsonl(out / "rows.jsonl")
    failures = _read_jsonl(out / "failures.jsonl")
    complete = len({r["subject_id"] for r in rows} | {f["subject_id"] for f in failures}) == len(table)
    _write_tables(out, table, rows, failures)
    write_description(out, {**description, "complete": complete})
    summary = {
        "out": str(out), "n_subjects": len(table), "n_cached": len({r["subject_id"] for r in rows}),
        "n_failed": len({f["subject_id"] for f in failures}), "n_processed_now": len(todo), "seconds": seconds,
        "subjects_per_s": len(todo) / seconds if todo and seconds > 0 else float("nan"), "complete": complete,
        "failures_by_stage": pd.Series([f["stage"] for f in failures], dtype=str).value_counts().to_dict(),
    }
    print_(f"cache {out}: {summary['n_cached']} subjects cached, {summary['n_failed']} failed "
           f"{summary['failures_by_stage'] or ''}; {'complete' if complete else 'INCOMPLETE: run again to resume'}")
    return summary


WATCHDOG_GRACE_S = 60.0  # past the subject timeout: a worker that ignored its alarm is stuck (e.g. in the kernel)


def _answer_within(job: tuple) -> float | None:
    """Seconds the parent waits for a job's worker before killing it: its subject timeout plus a grace period."""
    timeout_s = job[3]
    return timeout_s + WATCHDOG_GRACE_S if timeout_s else None


def _run_in_workers(jobs: list[tuple], workers: int, collect) -> None:
    """Run ``worker(job)`` for every job in a process pool, ``collect`` each result as it comes.

    At most ``2 * workers`` jobs are in flight. When a worker dies (the pool breaks), the jobs in flight are the
    suspects: each is rerun alone in a process of its own, where a second death names the culprit, recorded as
    its failure; the pool is restarted for the rest. A watchdog: when no job finishes within the subject timeout
    plus ``WATCHDOG_GRACE_S`` (a worker ignoring its alarm, e.g. blocked in an uninterruptible read), the workers
    are killed and the jobs in flight become suspects in the same way."""
    pending = list(reversed(jobs))
    patience = _answer_within(jobs[0]) if jobs else None
    while pending:
        suspects, killed = [], False
        pool = ProcessPoolExecutor(max_workers=workers, initializer=single_threaded)
        in_flight = {}
        try:
            while pending or in_flight:
                while pending and len(in_flight) < 2 * workers:
                    future = pool.submit(worker, pending[-1])  # raises BrokenProcessPool once a worker died
                    in_flight[future] = pending.pop()
                done, _ = wait(in_flight, timeout=patience, return_when=FIRST_COMPLETED)
                if not done:  # nothing finished in time: the busy workers are stuck
                    if killed:  # killed, and still nothing: give up on this pool, its jobs are suspects
                        raise BrokenProcessPool("the pool's workers did not die when killed")
                    for process in list((getattr(pool, "_processes", None) or {}).values()):
                        process.kill()
                    killed = True
                for future in done:
                    result = future.result()  # raises BrokenProcessPool while the job is still in flight
                    del in_flight[future]
                    collect(result)
        except BrokenProcessPool:
            for future, job in in_flight.items():
                if future.done() and not future.cancelled() and future.exception() is None:
                    collect(future.result())
                else:
                    suspects.append(job)
        finally:
            pool.shutdown(wait=not killed, cancel_futures=True)  # a process stuck in the kernel is not waited for
        for job in suspects:
            collect(_run_alone(job))


def _alone(connection, job) -> None:
    single_threaded()
    connection.send(worker(job))
    connection.close()


def _run_alone(job: tuple):
    """``worker(job)`` in a process of its own; if that process dies, or does not answer within the subject timeout
    plus the grace period, the subject's failure (stage ``worker_died`` naming the signal, or ``timeout``)."""
    context = multiprocessing.get_context()
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_alone, args=(sender, job), daemon=True)
    process.start()
    sender.close()
    patience = _answer_within(job)
    subject = job[1]["subject_id"]
    result = None
    try:
        if receiver.poll(patience):
            result = receiver.recv()
        else:
            process.kill()
            process.join(5)
            reason = (f"no answer in {patience:g} s: the worker ignored its time limit and was killed (a read stuck in "
                      "the kernel, e.g. a hung network mount?)")
            return {"subject_id": subject, "stage": "timeout", "reason": reason}, None, None
    except EOFError:
        result = None
    process.join()
    if result is not None:
        return result
    code = process.exitcode
    how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
    reason = f"worker died: {how} (out of memory? the subject was retried alone and its process died again)"
    return {"subject_id": subject, "stage": "worker_died", "reason": reason}, None, None


def _write_tables(out: Path, table: pd.DataFrame, rows: list[dict], failures: list[dict]) -> None:
    latest = {r["subject_id"]: r for r in rows}
    phenotype_columns = [c for c in (*PHENOTYPES, *TEMPORAL_PHENOTYPES, *ECG_TRUTH, "condition", "sex", "age_years") if c in table]
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
    with paths.written_atomically(out / "index.csv") as temporary:  # a full disk keeps the previous table
        write_csv(pd.DataFrame(records, columns=columns), temporary, index=False)
    unique_failures = {f["subject_id"]: f for f in failures}
    with paths.written_atomically(out / "failures.csv") as temporary:
        write_rows(temporary, ["subject_id", "stage", "reason"],
                   ([subject, unique_failures[subject]["stage"], unique_failures[subject]["reason"]]
                    for subject in sorted(unique_failures)))
