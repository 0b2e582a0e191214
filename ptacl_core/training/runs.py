"""The run folder: the one module that knows its layout, names and checkpoint format.

    runs/<name>/                  ``paths.runs_root()`` (PTACL_RUNS), or a config's ``runs_dir``
      .lock                       held (``fcntl.flock``) by the one process writing the run: pid, host, start
      config.json                 the resolved TrainConfig
      environment.json            git commit, package versions, data fingerprint
      metrics.csv                 one row per epoch
      tensorboard/                the same numbers for TensorBoard
      checkpoints/last.pt         written atomically every epoch: objective, optimiser, scheduler, epoch,
                                  config, kit version, data fingerprint

A run name is a folder name, never a path (``run_folder_of``). One process writes a run at a time (``lock_run``: a
second one gets a one-line ``RunBusyError`` naming the holder); every file is written to a temporary of a unique
name and moved into place (``paths.written_atomically``), so a kill or a full disk keeps the previous checkpoint and
tables; a resume cuts ``metrics.csv`` back to the epochs its checkpoint holds (``truncate_metrics``).

The comparison's runs are named ``run_name(method, preset, seed, fast)`` = ``<method>_<preset>_seed<k>[_fast]``
(what ``training.plan`` trains for notebook 02, what ``find_runs`` finds).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import socket
import time
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path

import torch

try:
    import fcntl
except ImportError:  # not on Windows: runs are not locked there
    fcntl = None

from ptacl_core import paths
from ptacl_core.model.encoders import MODEL_PRESETS, ModelConfig, PTACLModel
from ptacl_core.training.config import TrainConfig

CHECKPOINT = Path("checkpoints") / "last.pt"
CONFIG = "config.json"
ENVIRONMENT = "environment.json"
METRICS = "metrics.csv"
TENSORBOARD = "tensorboard"
LOCK = ".lock"
LEGACY_TEMPORARY = CHECKPOINT.with_suffix(".tmp")  # the one fixed temporary name of kits before issue 20

# method and preset names both hold underscores (ptacl_cross, tiny_resnet): the preset is one of the known ones,
# longest first, so "ptacl_tiny_resnet_seed0" reads as (ptacl, tiny_resnet), never (ptacl_tiny, resnet)
_PRESET_NAMES = "|".join(re.escape(name) for name in sorted(MODEL_PRESETS, key=len, reverse=True))
RUN_NAME = re.compile(rf"^(?P<method>[a-z_]+?)_(?P<preset>{_PRESET_NAMES})_seed(?P<seed>\d+)(?P<fast>_fast)?$")


def run_name(method: str, preset: str, seed: int, fast: bool = False) -> str:
    """``<method>_<preset>_seed<k>[_fast]``; ``parse_run_name`` reads it back."""
    return f"{method}_{preset}_seed{seed}" + ("_fast" if fast else "")


def default_name(method: str, seed: int) -> str:
    """The folder of a run trained without a name (``<method>_seed<k>``): never mistaken for a comparison run."""
    return f"{method}_seed{seed}"


def parse_run_name(name: str) -> dict | None:
    """{"method", "preset", "seed", "fast"} of a name ``run_name`` wrote, or None for any other folder."""
    match = RUN_NAME.match(name)
    if not match:
        return None
    return {"method": match["method"], "preset": match["preset"], "seed": int(match["seed"]), "fast": bool(match["fast"])}


def runs_dir(config_runs_dir: str | Path | None = None) -> Path:
    """A config's ``runs_dir``, or the kit's default (``paths.runs_root()``)."""
    return Path(config_runs_dir) if config_runs_dir else paths.runs_root()


def check_run_name(name: str) -> str:
    """``name`` when it names one folder: ValueError for an empty or blank name, ``.`` or ``..``, a path separator,
    an absolute path, NUL or another control character (``name=../../x`` must not write outside the runs folder)."""
    problem = None
    if not isinstance(name, str) or not name.strip():
        problem = "is empty"
    elif name in (".", ".."):
        problem = "is a relative folder, not a name"
    elif "/" in name or "\\" in name or (os.altsep and os.altsep in name) or Path(name).is_absolute():
        problem = "holds a path separator"
    elif any(ord(character) < 32 or ord(character) == 127 for character in name):
        problem = "holds a NUL or control character"
    if problem:
        raise ValueError(f"name={name!r}: a run name is one folder name, not a path; it {problem}")
    return name


def run_folder_of(config_runs_dir: str | Path | None, name: str) -> Path:
    """``<runs_dir>/<name>``: the folder of the run named ``name`` (checked by ``check_run_name``)."""
    return runs_dir(config_runs_dir) / check_run_name(name)


def checkpoint_path(run: Path | str) -> Path:
    """The checkpoint of a run folder, or ``run`` itself when it is a checkpoint file."""
    run = Path(run)
    return run / CHECKPOINT if run.is_dir() else run


def run_folder(run: Path | str) -> Path:
    """The run folder of a run folder or of its checkpoint file (``<run>/checkpoints/<file>.pt``)."""
    run = Path(run)
    return run if run.is_dir() else run.resolve().parent.parent


def save_checkpoint(state: dict, run_dir: Path) -> Path:
    """Write ``state`` to the run's checkpoint atomically: to a temporary of a unique name, moved over the old one. A
    kill mid-write leaves the previous checkpoint; a full disk too, with the temporary removed and one
    ``paths.DiskFullError`` naming the folder."""
    path = checkpoint_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with paths.written_atomically(path) as temporary, open(temporary, "wb") as handle:
        torch.save(state, handle)  # a handle: a full disk surfaces as the OSError behind torch's RuntimeError
    return path


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Remove the temporaries a killed writer left in a run folder (call it holding the run's lock); returns them."""
    stale = [p for folder in (run_dir, run_dir / CHECKPOINT.parent) if folder.is_dir() for p in folder.iterdir()
             if paths.is_temporary(p) or p == run_dir / LEGACY_TEMPORARY]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def read_checkpoint(run: Path | str, map_location="cpu", mmap: bool = False) -> dict:
    """The checkpoint dict of a run folder or ``.pt`` file."""
    # weights_only: a checkpoint holds tensors and plain types (configs, optimiser and scheduler state); a crafted
    # pickle is refused instead of run
    return torch.load(checkpoint_path(run), map_location=map_location, weights_only=True, mmap=mmap)


def model_from_state(state: dict) -> tuple[PTACLModel, TrainConfig]:
    """The PTACLModel and config held in a loaded checkpoint dict (also has "epoch", "data_fingerprint")."""
    config = TrainConfig.from_dict(state["config"])
    model = PTACLModel(config.model)
    model.load_state_dict({k.removeprefix("model."): v for k, v in state["objective"].items() if k.startswith("model.")})
    return model, config


def load_model(run: Path | str, map_location="cpu") -> tuple[PTACLModel, TrainConfig]:
    """The PTACLModel of a run (``runs/<name>`` or a ``.pt`` path) and its config."""
    return model_from_state(read_checkpoint(run, map_location))


def random_init_model(config: ModelConfig | str, seed: int) -> PTACLModel:
    """The untrained model (a ``ModelConfig`` or a preset name) as ``seed`` initialises it: the first state
    of a training run with that seed. The global RNG state is left as it was."""
    config = MODEL_PRESETS[config] if isinstance(config, str) else config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PTACLModel(config)


def read_config(run: Path | str) -> TrainConfig:
    """The resolved TrainConfig a run folder was trained with."""
    return TrainConfig.from_dict({k: v for k, v in json.loads((Path(run) / CONFIG).read_text()).items()})


def write_description(run_dir: Path, config: dict, environment: dict) -> None:
    """config.json and environment.json, each written atomically."""
    run_dir.mkdir(parents=True, exist_ok=True)
    paths.write_text_atomically(run_dir / CONFIG, json.dumps(config, indent=1))
    paths.write_text_atomically(run_dir / ENVIRONMENT, json.dumps(environment, indent=1))


def append_metrics(run_dir: Path, row: dict) -> None:
    """One epoch's row of ``metrics.csv`` (header written with the first row). A row a full disk cuts is dropped
    by the next resume (``truncate_metrics``)."""
    path = run_dir / METRICS
    new = not path.exists()
    try:
        with open(path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
    except OSError as error:
        if paths.is_disk_full(error):
            raise paths.disk_full(run_dir, METRICS, error=error) from error
        raise


def truncate_metrics(run_dir: Path, epochs: int) -> int:
    """Cut ``metrics.csv`` back to the ``epochs`` its checkpoint holds: a kill between an epoch's row and its
    checkpoint left a row that the resume writes again (and the run's time counted twice). Rows of later epochs,
    and a row cut mid-write, are removed (atomically); the kept lines stay byte for byte. Returns the rows removed."""
    path = run_dir / METRICS
    if not path.exists():
        return 0
    lines = path.read_text().splitlines(keepends=True)
    if not lines or not lines[0].endswith("\n"):  # empty, or a header cut mid-write: no row to keep
        path.unlink()
        return 0
    width = len(next(csv.reader([lines[0]])))
    kept = [line for line, epoch in ((line, _row_epoch(line, width)) for line in lines[1:])
            if epoch is not None and epoch <= epochs]
    removed = len(lines) - 1 - len(kept)
    if removed and kept:
        paths.write_text_atomically(path, "".join([lines[0], *kept]))
    elif removed:
        path.unlink()  # no epoch left: the next row writes the header again
    return removed


def _row_epoch(line: str, width: int) -> int | None:
    """The epoch of one metrics.csv line, or None for a line cut short (another width, or no newline)."""
    if not line.endswith("\n"):
        return None
    fields = next(csv.reader(io.StringIO(line)), [])
    try:
        return int(fields[0]) if len(fields) == width else None
    except (ValueError, IndexError):
        return None


# --- one writer per run ----------------------------------------------------------------------------------------

class RunBusyError(RuntimeError):
    """The run folder is locked by another process writing the same run."""


class RunLock:
    """The exclusive lock on a run folder (``fcntl.flock`` on ``<run>/.lock``), holding ``pid ... on host ...,
    since ...`` for whoever is refused. Released by ``release()``, when the object is collected, or at exit."""

    def __init__(self, folder: Path, handle):
        self.folder = folder
        self._handle = handle
        self._finalizer = weakref.finalize(self, handle.close)

    @property
    def held(self) -> bool:
        return self._finalizer.alive

    def release(self) -> None:
        self._finalizer()

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


_HELD: weakref.WeakValueDictionary[str, RunLock] = weakref.WeakValueDictionary()  # this process's locks, by folder


def lock_run(run_dir: Path) -> RunLock | None:
    """Lock the run folder for this process (creating it); ``RunBusyError`` naming the holder (pid, host, start)
    when another process holds it. Call on one process of a job only (rank 0 under torchrun: the others do not
    write). Reentrant within a process (a notebook training the same run again). Also refuses a run folder that is
    or holds symbolic links, and removes the temporaries a killed writer left. None where locks are unsupported."""
    paths.refuse_links(run_dir, option="run")
    run_dir.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(run_dir)
    held = _HELD.get(key)
    if held is not None and held.held:
        return held
    if fcntl is None:
        return None
    handle = open(os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644), "r+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = handle.read().strip() or "a process that has not written its name yet"
        handle.close()
        raise RunBusyError(f"{run_dir}: the run is being written by another process ({holder}); wait for it to "
                           "finish, or train under another name") from None
    except OSError as error:  # a filesystem without locks (some network mounts): train unlocked, as before
        handle.close()
        warnings.warn(f"{run_dir}: cannot lock the run folder ({error}); make sure no other process trains it", stacklevel=2)
        return None
    handle.truncate(0)
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n")
    handle.flush()
    lock = RunLock(run_dir, handle)
    _HELD[key] = lock
    remove_stale_temporaries(run_dir)
    return lock


def metrics_path(run_dir: Path | str) -> Path:
    return Path(run_dir) / METRICS


def tensorboard_dir(run_dir: Path | str) -> Path:
    return Path(run_dir) / TENSORBOARD


@dataclass(frozen=True)
class RunInfo:
    method: str
    seed: int
    folder: Path
    data_fingerprint: str | None = None  # of the cache it was trained on
    model_config: ModelConfig | None = None  # its architecture (the random-init baseline is built from it)


def find_runs(runs_dir: Path | str, preset: str, fast: bool = False, methods: list[str] | None = None) -> tuple[list[RunInfo], list[str]]:
    """Finished runs named ``run_name(method, preset, seed, fast)``; returns (runs, notes on the ones left out).
    Finished = the checkpoint itself holds the last epoch (metrics.csv is written just before it)."""
    runs_dir = Path(runs_dir)
    found, notes = [], []
    for folder in sorted(runs_dir.glob("*")) if runs_dir.is_dir() else []:
        name = parse_run_name(folder.name)
        if name is None or name["preset"] != preset or name["fast"] != fast:
            continue
        if methods is not None and name["method"] not in methods:
            continue
        if not checkpoint_path(folder).exists():
            notes.append(f"{folder.name}: no checkpoint yet")
            continue
        try:
            state = read_checkpoint(folder, mmap=True)
            epochs, done = state["config"]["optim"]["epochs"], state["epoch"] + 1
        except Exception as error:  # a damaged checkpoint is reported, not fatal to the comparison
            notes.append(f"{folder.name}: unreadable checkpoint ({type(error).__name__}: {error})")
            continue
        if done < epochs:
            notes.append(f"{folder.name}: unfinished ({done}/{epochs} epochs); resume it with notebook 02")
            continue
        try:
            model_config = ModelConfig.from_dict(state["config"]["model"])
        except (ValueError, TypeError, KeyError) as error:  # a tampered stored model: a note, like a damaged checkpoint
            notes.append(f"{folder.name}: its stored model config is refused ({error})")
            continue
        found.append(RunInfo(name["method"], name["seed"], folder, state.get("data_fingerprint"), model_config))
    return sorted(found, key=lambda r: (r.method, r.seed)), notes
