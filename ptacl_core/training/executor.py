"""Running a grid of training runs on the machine at hand: notebook 02's plan, one ``GridJob`` per (method, seed).

Backends (``execute(jobs, backend)``):

- ``sequential``: in this process, one run after another, with torch's intra-op threads on the usable cores;
- ``local``: a process pool of as many workers as usable cores (``usable_cores``: the CPU affinity, not the machine's
  count), each run with ``cores // workers`` intra-op threads (1 by default): runs never oversubscribe the cores and do
  not spin against each other when another process keeps a core busy;
- ``cuda``: one worker per GPU (or per group of ``gpus_per_run`` GPUs), each pinned with ``CUDA_VISIBLE_DEVICES``
  before torch starts; a run on a group of GPUs is launched with ``torchrun`` (DDP);
- ``slurm``: one submitit job per run (``submitit.AutoExecutor``; ``cluster="local"`` runs the same path on this
  machine), waves in dependency order.
- ``auto``: ``cuda`` when GPUs are visible, else ``local`` when more than one core is usable, else ``sequential``.

A run whose checkpoint already holds its last epoch (and the same config) is skipped without starting a worker;
an interrupted one resumes. A run that fails is reported with its log (``GridResult.error``, ``log``) and the others
go on; a run that starts from a failed one (``ptacl_mae`` from its MAE runs) is reported as not started. Each
worker writes its run's log to ``<runs_dir>/logs/<name>.log`` (a line per epoch, the traceback of a failure).
On CPU the same configs give the same weights whatever the backend, as long as the intra-op thread count is the
same (a float sum's order depends on it): ``tests/test_executor.py`` checks it.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ptacl_core import paths
from ptacl_core.training.config import TrainConfig
from ptacl_core.training.loop import train
from ptacl_core.training.runs import checkpoint_path, read_checkpoint, run_folder_of
from ptacl_core.training.setup import same_run

BACKENDS = ("auto", "sequential", "local", "cuda", "slurm")
LOGS = "logs"  # <runs_dir>/logs/<run name>.log


@dataclass(frozen=True)
class GridJob:
    """One run of the grid: its key (method, seed), its full config (``name`` set; ``init_from`` naming the folders of
    the runs it starts from), and the keys of those runs (they must finish first)."""

    key: tuple[str, int]
    config: TrainConfig
    after: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if not self.config.name:
            raise ValueError(f"a grid job needs a run name (config.name) for {self.key}")

    @property
    def folder(self) -> Path:
        return run_folder_of(self.config.runs_dir or None, self.config.name)

    def config_dict(self) -> dict:
        return self.config.to_dict()


@dataclass
class GridResult:
    """What became of one job: ``status`` is finished (trained now), skipped (already finished), failed or
    not_started (a run it starts from failed); ``error`` says why, ``log`` is the worker's log file."""

    key: tuple[str, int]
    folder: Path
    status: str
    seconds: float = 0.0
    error: str = ""
    log: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("finished", "skipped")


@dataclass
class GridReport:
    results: dict[tuple[str, int], GridResult] = field(default_factory=dict)
    backend: str = ""
    workers: int = 1
    seconds: float = 0.0

    @property
    def failed(self) -> list[GridResult]:
        return [r for r in self.results.values() if not r.ok]

    def folders(self) -> dict[tuple[str, int], Path]:
        """The run folders of the runs that finished (or were found finished)."""
        return {key: r.folder for key, r in self.results.items() if r.ok}

    def summary(self) -> str:
        counts = {s: sum(r.status == s for r in self.results.values()) for s in ("finished", "skipped", "failed", "not_started")}
        text = (f"{len(self.results)} runs on {self.backend} ({self.workers} at a time) in {self.seconds:.0f} s: "
                + ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in counts.items() if n))
        for result in self.failed:
            text += f"\n  {result.folder.name}: {result.status}: {result.error}"
            if result.log is not None:
                text += f" (log: {result.log})"
        return text


class GridFailed(RuntimeError):
    """Some runs of a grid failed (the others finished): the report names each with its log."""

    def __init__(self, report: GridReport):
        super().__init__(report.summary())
        self.report = report


def usable_cores() -> int:
    """Cores this process may run on: the CPU affinity (a Slurm allocation, ``taskset``, a container's cpuset),
    not ``os.cpu_count()`` (every core of the machine)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """The CUDA devices this process sees, as ``CUDA_VISIBLE_DEVICES`` entries ("0", "1", ...)."""
    if not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed:
        return [d.strip() for d in listed.split(",") if d.strip()][: torch.cuda.device_count()]
    return [str(i) for i in range(torch.cuda.device_count())]


def choose_backend(backend: str = "auto", devices: Sequence[str] = ()) -> str:
    """``auto``: cuda with visible GPUs (unless every run is told ``device=cpu``: ``devices`` lists the runs'
    devices), local with more than one usable core, else sequential."""
    if backend not in BACKENDS:
        raise ValueError(f"executor backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    if visible_gpus() and not (devices and all(device == "cpu" for device in devices)):
        return "cuda"
    return "local" if usable_cores() > 1 else "sequential"


def is_finished(job: GridJob) -> bool:
    """Whether the job's folder holds a checkpoint of this very run (same config, execution settings aside) at its
    last epoch: then it is not started again."""
    if not checkpoint_path(job.folder).exists():
        return False
    try:
        state = read_checkpoint(job.folder, mmap=True)
    except Exception:  # a damaged checkpoint: let train() say what is wrong with it
        return False
    wanted = job.config_dict()
    return state["epoch"] + 1 >= job.config.optim.epochs and same_run(state["config"], wanted)


def log_path(job: GridJob) -> Path:
    return Path(job.config.runs_dir or paths.runs_root()) / LOGS / f"{job.config.name}.log"


def train_job(config: dict, log: str, threads: int = 0, gpus: str | None = None, gpus_per_run: int = 1) -> str:
    """Train one run (a worker's job; a top-level function so that process pools and submitit can pickle it):
    the run's log goes to ``log``; returns the run folder. gpus: the ``CUDA_VISIBLE_DEVICES`` of this run; with
    ``gpus_per_run`` > 1 the run is launched with torchrun on those GPUs (DDP)."""
    log_file = Path(log)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus
    with open(log_file, "a", encoding="utf-8") as handle, contextlib.redirect_stdout(handle), \
            contextlib.redirect_stderr(handle):
        print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()} threads {threads or 'default'}"
              f"{' CUDA_VISIBLE_DEVICES=' + gpus if gpus is not None else ''}", flush=True)
        try:
            if gpus_per_run > 1:
                return _train_with_torchrun(config, handle, gpus_per_run)
            return str(_train_here(config, threads, handle))
        except BaseException:
            traceback.print_exc(file=handle)
            handle.flush()
            raise


def _train_here(config: dict, threads: int, handle) -> Path:
    train_config = TrainConfig.from_dict(config)
    if threads:
        train_config = train_config.with_overrides({"threads": threads})

    def line(row: dict) -> None:
        print(f"epoch {row['epoch']}: loss {row['loss']:.4f} val {row['val_loss']:.4f} "
              f"({row['samples_per_s']:.0f} pairs/s)", file=handle, flush=True)

    return train(train_config, progress=False, on_epoch=line)


def _train_with_torchrun(config: dict, handle, gpus_per_run: int) -> str:
    """A DDP run on this worker's GPUs: ``torchrun --standalone --nproc_per_node=G -m ptacl_core train``."""
    folder = Path(config.get("runs_dir") or paths.runs_root()) / LOGS
    spec = folder / f"{config['name']}.config.json"
    spec.write_text(json.dumps(config, indent=1))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus_per_run}",
               "-m", "ptacl_core", "train", "--config", str(spec), "--no-progress"]
    completed = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"torchrun exited with {completed.returncode}")
    return str(run_folder_of(config.get("runs_dir") or None, config["name"]))


def _worker_start(threads: int, gpu_queue) -> None:
    """Pool initializer: torch's and the BLAS pools' threads at the run's count (torch is already imported with
    this module, so the environment variables only reach the processes a run starts, e.g. torchrun's), and this
    worker's GPUs (taken once from the queue, so each worker keeps its own devices; CUDA starts lazily, after)."""
    count = max(threads, 1)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(count)
    torch.set_num_threads(count)
    threadpool_limits(count)
    if gpu_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu_queue.get()


def _worker_gpus() -> str | None:
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def _pool_job(config: dict, log: str, threads: int, gpus_per_run: int, pinned: bool) -> str:
    return train_job(config, log, threads, _worker_gpus() if pinned else None, gpus_per_run)


def execute(jobs: Sequence[GridJob], backend: str = "auto", workers: int | None = None, threads: int | None = None,
            gpus: Sequence[str] | None = None, gpus_per_run: int = 1, slurm: dict | None = None,
            progress: bool = True, log: Callable[[str], None] | None = None,
            job_function: Callable[..., str] | None = None) -> GridReport:
    """Run every job, respecting ``after``; returns the report (raise ``GridFailed`` yourself if you need to).

    workers: runs at a time (local: default the usable cores; cuda: default one per GPU group); threads: intra-op
    threads per run (local default: usable cores // workers, at least 1; sequential default: torch's); gpus: the
    devices the cuda backend shares out (default ``visible_gpus()``); slurm: ``submitit`` parameters (e.g.
    ``{"cluster": "local", "folder": ..., "slurm_partition": "gpu", "timeout_min": 120, "gpus_per_node": 1}``);
    job_function: what a pool worker runs per job, ``(config, log, threads, gpus_per_run, pinned) -> folder`` (a
    top-level function; default: training, ``train_job``), for tests of the pool itself."""
    backend = choose_backend(backend, [job.config.device for job in jobs])
    if isinstance(slurm, str):  # from the command line: -p slurm '{"slurm_partition": "gpu"}'
        try:
            slurm = json.loads(slurm) if slurm.strip() else {}
        except json.JSONDecodeError as error:
            raise ValueError(f"slurm parameters must be a JSON object, got {slurm!r}: {error}") from None
    if slurm is not None and not isinstance(slurm, dict):
        raise ValueError(f"slurm parameters must be a JSON object (a dict), got {type(slurm).__name__}")
    keys = [job.key for job in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"a grid lists a run twice: {sorted(k for k in set(keys) if keys.count(k) > 1)}")
    known = set(keys)
    for job in jobs:
        missing = [k for k in job.after if k not in known]
        if missing:
            raise ValueError(f"{job.config.name} starts from runs the grid does not hold: {missing}")
    jobs = dependency_order(jobs)
    start = time.perf_counter()
    report = GridReport(backend=backend)
    todo = []
    for job in jobs:
        if is_finished(job):
            report.results[job.key] = GridResult(job.key, job.folder, "skipped", log=log_path(job))
        else:
            todo.append(job)
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc=f"training grid ({backend})", unit="run",
               disable=not progress)
    if backend == "sequential":
        report.workers = 1
        _run_sequential(todo, report, threads or 0, bar)
    elif backend == "slurm":
        report.workers = len(todo)
        _run_slurm(todo, report, dict(slurm or {}), bar)
    else:
        _run_pool(todo, report, backend, workers, threads, gpus, gpus_per_run, bar, job_function or _pool_job)
    bar.close()
    report.results = {key: report.results[key] for key in keys}  # the plan's order
    report.seconds = time.perf_counter() - start
    if log is not None:
        log(report.summary())
    return report


def dependency_order(jobs: Sequence[GridJob]) -> list[GridJob]:
    """The jobs with every run after the runs it starts from (otherwise in the given order); a ValueError naming
    the runs of a dependency cycle."""
    ordered, placed, pending = [], set(), list(jobs)
    while pending:
        ready = [job for job in pending if all(k in placed for k in job.after)]
        if not ready:
            raise ValueError(f"the grid's runs depend on each other in a cycle: {[job.config.name for job in pending]}")
        for job in ready:
            ordered.append(job)
            placed.add(job.key)
        pending = [job for job in pending if job.key not in placed]
    return ordered


def _blocked(job: GridJob, report: GridReport) -> str:
    """Why a job cannot start: a run it starts from did not finish ("" when every one did)."""
    bad = [k for k in job.after if k in report.results and not report.results[k].ok]
    return f"a run it starts from did not finish: {bad}" if bad else ""


def _run_sequential(todo: list[GridJob], report: GridReport, threads: int, bar) -> None:
    for job in todo:
        _record(job, report, lambda job=job: train_job(job.config_dict(), str(log_path(job)), threads), bar)


def _record(job: GridJob, report: GridReport, call: Callable[[], str], bar) -> None:
    reason = _blocked(job, report)
    if reason:
        report.results[job.key] = GridResult(job.key, job.folder, "not_started", error=reason, log=log_path(job))
    else:
        began = time.perf_counter()
        try:
            folder = Path(call())
            report.results[job.key] = GridResult(job.key, folder, "finished", time.perf_counter() - began, log=log_path(job))
        except Exception as error:  # one failed run does not stop the grid: its log keeps the traceback
            report.results[job.key] = GridResult(job.key, job.folder, "failed", time.perf_counter() - began,
                                                 f"{type(error).__name__}: {error}", log_path(job))
    bar.update(1)


def _run_pool(todo: list[GridJob], report: GridReport, backend: str, workers: int | None, threads: int | None,
              gpus: Sequence[str] | None, gpus_per_run: int, bar, job_function: Callable[..., str]) -> None:
    """A pool of ``workers`` processes with at most ``workers`` runs in flight. A worker that dies (the OOM killer,
    a segfault, a CUDA fault) breaks the pool: the runs then in flight start again on a fresh pool (they resume from
    their checkpoints), each alone, so that a run at its second death is the one whose worker died: it is
    reported failed, and the runs that shared its first death finish. An interrupt (Ctrl-C, a
    notebook's "interrupt kernel") terminates the workers at once; their runs resume on the next call."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter per worker: no forked torch threads
    groups: list[str] = []
    if backend == "cuda":
        devices = list(gpus) if gpus is not None else visible_gpus()
        if len(devices) < gpus_per_run:
            raise ValueError(f"the cuda backend needs {gpus_per_run} GPU(s) per run; {len(devices)} visible")
        groups = [",".join(devices[i:i + gpus_per_run]) for i in range(0, len(devices) - gpus_per_run + 1, gpus_per_run)]
        workers = min(workers or len(groups), len(groups))
    else:
        workers = workers or usable_cores()
    # threads follow the cores per worker of the whole grid, not of what is left: the same runs get the same thread
    # count (and so the same weights) whether they train in the first pass or in a rerun of the failures
    threads = threads or max(usable_cores() // workers, 1)
    workers = max(1, min(workers, len(todo) or 1))
    report.workers = workers
    waiting, deaths = list(todo), {}
    while waiting:
        gpu_queue = None
        if groups:
            gpu_queue = context.Manager().Queue()
            for group in groups[:workers]:
                gpu_queue.put(group)
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_start,
                                   initargs=(threads, gpu_queue))
        try:
            _drain(pool, job_function, waiting, report, threads, gpus_per_run, gpu_queue is not None, workers, deaths, bar)
        except BaseException:  # KeyboardInterrupt or anything unexpected: stop the runs in flight now
            _terminate(pool)
            raise
        _terminate(pool)  # every run submitted is done (or its worker died): nothing left to wait for


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Kill a pool's workers and drop its queued work (``shutdown`` alone would wait for the runs in flight)."""
    for process in list(getattr(pool, "_processes", {}).values()):  # no public handle on the workers
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def _drain(pool, job_function, waiting: list[GridJob], report: GridReport, threads: int, gpus_per_run: int,
           pinned: bool, workers: int, deaths: dict, bar) -> bool:
    """Submit ready jobs (at most ``workers`` in flight) until ``waiting`` is empty; True when the pool broke (the
    jobs then in flight are back in ``waiting``, or failed at their second death). ``waiting`` is in dependency
    order (``execute`` sorts it), so while it is not empty some job is ready or a prerequisite is in flight."""
    running: dict[Future, tuple[GridJob, float]] = {}
    broke = False
    while (waiting or running) and not broke:
        for job in list(waiting):
            if len(running) >= workers or any(deaths.get(j.key) for j, _ in running.values()):
                break  # full, or a run that lost its worker retries alone
            if any(k not in report.results for k in job.after):
                continue  # a prerequisite is still training
            if deaths.get(job.key) and running:
                break  # it lost its worker once: it retries alone, so a second death is its own
            waiting.remove(job)
            reason = _blocked(job, report)
            if reason:
                report.results[job.key] = GridResult(job.key, job.folder, "not_started", error=reason, log=log_path(job))
                bar.update(1)
                continue
            try:
                future = pool.submit(job_function, job.config_dict(), str(log_path(job)), threads, gpus_per_run, pinned)
            except BrokenProcessPool:  # a worker died between two results
                waiting.insert(0, job)
                broke = True
                break
            running[future] = (job, time.perf_counter())
        if broke or not running:
            continue
        done, _ = wait(list(running), return_when=FIRST_COMPLETED)
        for future in done:
            job, began = running[future]
            try:
                folder = Path(future.result())
            except BrokenProcessPool:
                broke = True  # this run and the others in flight are handled below
                continue
            except Exception as error:  # the worker's log holds the traceback; the grid goes on
                report.results[job.key] = GridResult(job.key, job.folder, "failed", time.perf_counter() - began,
                                                     f"{type(error).__name__}: {error}", log_path(job))
            else:
                report.results[job.key] = GridResult(job.key, folder, "finished", time.perf_counter() - began,
                                                     log=log_path(job))
            del running[future]
            bar.update(1)
            bar.set_postfix(last=job.config.name)
    for job, began in running.values():  # only when the pool broke: every run in flight lost its worker
        # the pool cannot tell whose worker died, so every run in flight retries, each alone: a run that dies
        # twice died the second time with no other run in flight, and the blame is its own
        deaths[job.key] = deaths.get(job.key, 0) + 1
        if deaths[job.key] >= 2:
            report.results[job.key] = GridResult(
                job.key, job.folder, "failed", time.perf_counter() - began,
                "its worker process died twice while it trained (out of memory? see its log and the system log)",
                log_path(job))
            bar.update(1)
        else:
            waiting.insert(0, job)  # resumes from its checkpoint on a fresh pool
    return broke


def _slurm_outcome(slurm_job) -> tuple[str | None, Exception | None]:
    """(folder, None) or (None, the job's error): waits for one submitit job."""
    try:
        return slurm_job.result(), None
    except Exception as error:  # the job's own exception, or submitit's report of a failed job
        return None, error


def _run_slurm(todo: list[GridJob], report: GridReport, parameters: dict, bar) -> None:
    """One submitit job per run, submitted in waves: a wave holds every run whose prerequisites are done."""
    try:
        import submitit  # lazy: an optional dependency, needed only on a cluster (pip install .[slurm])
    except ImportError as error:
        raise ImportError("the slurm backend needs submitit: pip install -e .[slurm]") from error
    if not todo:
        return
    folder = parameters.pop("folder", None) or str(log_path(todo[0]).parent / "submitit")
    cluster = parameters.pop("cluster", None)
    threads = int(parameters.pop("threads", 0))
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    if parameters:
        executor.update_parameters(**parameters)
    waiting = list(todo)
    while waiting:
        wave = [job for job in waiting if all(k in report.results for k in job.after)]
        waiting = [job for job in waiting if job not in wave]
        submitted = []
        for job in wave:
            reason = _blocked(job, report)
            if reason:
                report.results[job.key] = GridResult(job.key, job.folder, "not_started", error=reason, log=log_path(job))
                bar.update(1)
                continue
            executor.update_parameters(name=job.config.name)
            submitted.append((job, executor.submit(train_job, job.config_dict(), str(log_path(job)), threads),
                              time.perf_counter()))
        try:
            outcomes = [(job, _slurm_outcome(slurm_job), began) for job, slurm_job, began in submitted]
        except BaseException:  # an interrupt: cancel what this grid queued instead of leaving it on the cluster
            for _, slurm_job, _ in submitted:
                slurm_job.cancel(check=False)
            raise
        for job, (folder, error), began in outcomes:
            try:
                if error is not None:
                    raise error
                folder = Path(folder)
                report.results[job.key] = GridResult(job.key, folder, "finished", time.perf_counter() - began,
                                                     log=log_path(job))
            except Exception as error:  # submitit raises the job's exception (or a failure of the job itself)
                first_line = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
                report.results[job.key] = GridResult(job.key, job.folder, "failed", time.perf_counter() - began,
                                                     first_line, log_path(job))
            bar.update(1)
