"""The run folder: the one module that knows its layout, names and checkpoint format.

    runs/<name>/                  ``paths.runs_root()`` (PTACL_RUNS), or a config's ``runs_dir``
      config.json                 the resolved TrainConfig
      environment.json            git commit, package versions, data fingerprint
      metrics.csv                 one row per epoch
      tensorboard/                the same numbers for TensorBoard
      checkpoints/last.pt         written atomically every epoch: objective, optimiser, scheduler, epoch,
                                  config, kit version, data fingerprint

The comparison's runs are named ``run_name(method, preset, seed, fast)`` = ``<method>_<preset>_seed<k>[_fast]``
(what ``training.plan`` trains for notebook 02, what ``find_runs`` finds).
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ptacl_core import paths
from ptacl_core.model.encoders import MODEL_PRESETS, ModelConfig, PTACLModel
from ptacl_core.training.config import TrainConfig

CHECKPOINT = Path("checkpoints") / "last.pt"
CONFIG = "config.json"
ENVIRONMENT = "environment.json"
METRICS = "metrics.csv"
TENSORBOARD = "tensorboard"

RUN_NAME = re.compile(r"^(?P<method>[a-z_]+?)_(?P<preset>[a-z0-9]+)_seed(?P<seed>\d+)(?P<fast>_fast)?$")


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


def checkpoint_path(run: Path | str) -> Path:
    """The checkpoint of a run folder, or ``run`` itself when it is a checkpoint file."""
    run = Path(run)
    return run / CHECKPOINT if run.is_dir() else run


def run_folder(run: Path | str) -> Path:
    """The run folder of a run folder or of its checkpoint file (``<run>/checkpoints/<file>.pt``)."""
    run = Path(run)
    return run if run.is_dir() else run.resolve().parent.parent


def save_checkpoint(state: dict, run_dir: Path) -> Path:
    """Write ``state`` to the run's checkpoint atomically (a kill mid-write leaves the previous one)."""
    path = checkpoint_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)
    return path


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
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG).write_text(json.dumps(config, indent=1))
    (run_dir / ENVIRONMENT).write_text(json.dumps(environment, indent=1))


def append_metrics(run_dir: Path, row: dict) -> None:
    """One epoch's row of ``metrics.csv`` (header written with the first row)."""
    path = run_dir / METRICS
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


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
        model_config = ModelConfig.from_dict(state["config"]["model"])
        found.append(RunInfo(name["method"], name["seed"], folder, state.get("data_fingerprint"), model_config))
    return sorted(found, key=lambda r: (r.method, r.seed)), notes
