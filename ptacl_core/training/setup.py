"""Setting up a training run (METHOD.md §4-5): device and DDP (torchrun), the cache and its fit to the model, the
phase geometry, the method's objective and its starting weights, the datasets, AdamW with warm-up then cosine
decay, and resuming from the run's checkpoint. ``set_up(config) -> Run``: everything the epochs need. Rank 0 locks
the run folder before reading its checkpoint (``runs.lock_run``) and cuts ``metrics.csv`` back to the checkpoint's
epochs (``runs.truncate_metrics``).

The order of the steps is the order of torch's RNG draws (the model's initialisation after ``manual_seed(seed)``),
so it is part of what a run is: keep it.
"""

from __future__ import annotations

import importlib.metadata as metadata
import math
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from ptacl_core import __version__, paths
from ptacl_core.methods import METHODS
from ptacl_core.model.geometry import check_geometry, cohort_geometry, median_rr_s, phase_geometry
from ptacl_core.model.presets import preprocessing_preset
from ptacl_core.preprocessing.cache import Cache, default_cache_dir
from ptacl_core.preprocessing.config import PreprocessConfig
from ptacl_core.preprocessing.dataset import Augmentation, CacheDataset
from ptacl_core.training import runs
from ptacl_core.training.config import TrainConfig
from ptacl_core.training.objective import Objective, build_objective, local_weight, phenotype_stats

EXECUTION_KEYS = ("threads", "num_workers", "device")  # how a run executes, not what it trains
ENVIRONMENT_PACKAGES = ("torch", "numpy", "scipy", "wfdb", "nibabel", "scikit-learn")


@dataclass(frozen=True)
class Run:
    """A set-up run: where it lives, where it executes, what it trains and from which epoch."""

    config: TrainConfig
    name: str
    folder: Path
    device: torch.device
    rank: int
    world: int
    cache: Cache
    geometry: dict  # ``run_geometry``: saved in environment.json
    objective: Objective
    module: torch.nn.Module  # the objective, or its DDP wrapper under torchrun
    parameters: list[torch.nn.Parameter]  # the trained ones (gradient clipping)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    train_set: CacheDataset
    val_set: CacheDataset
    sampler: DistributedSampler | None  # under torchrun
    start_epoch: int  # 0, or the epoch after the checkpoint's
    use_bf16: bool
    lock: runs.RunLock | None = None  # rank 0's lock on the run folder (``runs.lock_run``); released with the Run

    @property
    def saved_config(self) -> dict:
        """The config as config.json and the checkpoint hold it (with the run's name)."""
        return self.config.to_dict() | {"name": self.name}


def set_up(config: TrainConfig) -> Run:
    """Device and DDP, cache, objective (seeded by ``config.seed``), data, optimiser and resume of a run."""
    name = config.name or runs.default_name(config.method, config.seed)
    folder = runs.run_folder_of(config.runs_dir, name)  # a name, never a path out of the runs folder
    device, rank, world = _device(config)
    cache = Cache.open(resolve_cache(config))
    check_compatible(config, cache)
    if device.type == "cpu" and config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    geometry = run_geometry(config, cache, where=str(cache.folder))
    objective = build_objective(config, float(cache.config.ecg.fs), phenotype_stats(cache),
                                soft_sigma=geometry["soft_sigma"]).to(device)
    initialise_encoders(objective, config)
    train_set, val_set, sampler = _datasets(config, cache, rank, world)
    steps_per_epoch = max(len(train_set) // (config.optim.batch_size * world), 1)
    parameters = [p for p in objective.parameters() if p.requires_grad]
    optimizer, scheduler = _optimiser(parameters, config, device, steps_per_epoch)
    lock = runs.lock_run(folder) if rank == 0 else None  # one writer per run; under torchrun rank 0 alone writes
    start_epoch = resume(folder, config.to_dict() | {"name": name}, objective, optimizer, scheduler, device)
    if rank == 0:
        runs.truncate_metrics(folder, start_epoch)  # rows of epochs the checkpoint does not hold are written again
    module = objective
    if world > 1:
        module = torch.nn.parallel.DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None,
                                                           find_unused_parameters=not objective.uses_every_parameter)
    use_bf16 = config.optim.amp == "bf16" or (config.optim.amp == "auto" and device.type == "cuda")
    return Run(config, name, folder, device, rank, world, cache, geometry, objective, module, parameters, optimizer,
               scheduler, train_set, val_set, sampler, start_epoch, use_bf16, lock)


def resolve_cache(config: TrainConfig) -> Path:
    """The config's cache, or (``cache=""``) the one notebook 01 builds for the default cohort and the preset."""
    if config.cache:
        return Path(config.cache)
    return default_cache_dir(paths.default_cohort_dir(), preprocessing_preset(config.preset))


# --- device and DDP -----------------------------------------------------------------------------------

def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def _device(config: TrainConfig) -> tuple[torch.device, int, int]:
    """(device, rank, world size); joins torchrun's process group (nccl on CUDA, gloo on CPU)."""
    rank, world, local_rank = _distributed()
    if config.device == "auto":
        device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(config.device)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device, rank, world


# --- the cache, the geometry, the environment -----------------------------------------------------------

def check_compatible(config: TrainConfig, cache: Cache) -> None:
    """A clear error when the cache and the model config disagree."""
    ecg_length, cmr_shape = cache.ecg.shape[-1], cache.cmr.shape[1:]
    model = config.model
    problems = []
    if ecg_length < model.ecg.patch_samples:
        problems.append(f"ECG length {ecg_length} is shorter than one patch ({model.ecg.patch_samples} samples)")
    frames, size = cmr_shape[-3], cmr_shape[-1]
    slices = cmr_shape[0] if len(cmr_shape) == 4 else 1
    if frames % model.cmr.tubelet_frames:
        problems.append(f"{frames} cine frames are not a multiple of the tubelet ({model.cmr.tubelet_frames} frames)")
    if size % model.cmr.patch_px:
        problems.append(f"{size}-pixel crops are not a multiple of the patch ({model.cmr.patch_px} px)")
    if slices != model.cmr.in_slices:
        problems.append(f"the cache has {slices} slice(s) per cine, the model expects {model.cmr.in_slices}")
    expected_fs = PreprocessConfig.preset(preprocessing_preset(config.preset)).ecg.fs
    if float(cache.config.ecg.fs) != float(expected_fs):  # the token width in ms, and so the phase geometry, follow fs
        problems.append(f"the cache's ECG is at {cache.config.ecg.fs:g} Hz, the preset's preprocessing "
                        f"({preprocessing_preset(config.preset)!r}) at {expected_fs:g} Hz")
    if problems:
        raise ValueError(f"cache {cache.folder} (preset {cache.config.to_dict()['cmr']}, ECG at {cache.config.ecg.fs} Hz) "
                         f"does not fit model preset {config.preset!r}: " + "; ".join(problems))


def run_geometry(config: TrainConfig, cache: Cache, where: str = "") -> dict:
    """The phase geometry of this run's model on the cache's training patients (``ptacl_core.model.geometry``): refuses
    (``GeometryError``) bins narrower than an ECG token for the median patient when the run trains a local term."""
    positions = np.flatnonzero(cache.index.split.to_numpy() == "train")
    rpeaks = [cache.rpeaks(int(position)) for position in positions]
    fs = float(cache.config.ecg.fs)
    values = cohort_geometry(rpeaks, fs, cache.ecg.shape[-1], config.model.ecg.patch_samples, config.loss.num_bins)
    if local_weight(config) > 0:
        check_geometry(phase_geometry(config.model.ecg.patch_samples / fs, config.loss.num_bins, median_rr_s(rpeaks, fs)),
                       where)
    return values


def environment(cache: Cache) -> dict:
    """environment.json: kit version, git commit, package versions, the cache and its data fingerprint."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=paths.project_root(),
                                timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    versions = {}
    for package in ENVIRONMENT_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"kit_version": __version__, "git_commit": commit, "packages": versions,
            "data_fingerprint": cache.fingerprint, "cache": str(cache.folder)}


# --- the objective's starting weights, the data, the optimiser, resume ---------------------------------------

def initialise_encoders(objective: Objective, config: TrainConfig) -> list[str]:
    """Copy encoder weights from ``config.init_from`` (comma-separated checkpoints, e.g. the mae_ecg and mae_cmr
    runs: MMCL's recipe) into the objective. From each checkpoint only the encoders its method trained are taken
    (an ECG MAE run's cine encoder is still random). Returns the encoders loaded, e.g. ["ecg", "cmr"]."""
    sources = [s.strip() for s in config.init_from.split(",") if s.strip()]
    own = objective.state_dict()
    loaded: list[str] = []
    for source in sources:
        state = runs.read_checkpoint(source)
        method = state["config"]["method"]
        for encoder in METHODS[method].trains:
            prefix = f"model.{encoder}_encoder."
            matching = {k: v for k, v in state["objective"].items() if k.startswith(prefix)}
            mismatched = [k for k, v in matching.items() if k not in own or own[k].shape != v.shape]
            if not matching or mismatched:
                raise ValueError(f"{source}: its {encoder.upper()} encoder does not fit this model "
                                 f"({len(mismatched)} of {len(matching)} tensors differ in name or shape)")
            objective.load_state_dict(matching, strict=False)
            loaded.append(encoder)
    needed = [encoder for m in METHODS[config.method].starts_from for encoder in METHODS[m].trains]
    missing = [encoder for encoder in needed if encoder not in loaded]
    if missing:
        raise ValueError(f"method {config.method!r} starts from the runs of {list(METHODS[config.method].starts_from)}: "
                         f"init_from ({config.init_from!r}) gives no {', '.join(e.upper() for e in missing)} encoder")
    return loaded


def _datasets(config: TrainConfig, cache: Cache, rank: int, world: int
              ) -> tuple[CacheDataset, CacheDataset, DistributedSampler | None]:
    """(train set with the method's augmentation, validation set, the DDP sampler or None)."""
    method = METHODS[config.method]
    augmentation = Augmentation(ecg_amplitude=0.1 if method.amplitude_augmentation else 0.0) if config.augment else None
    train_set = CacheDataset(cache, "train", augmentation, seed=config.seed)
    val_set = CacheDataset(cache, "val", None)
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=config.seed, drop_last=True) if world > 1 else None
    return train_set, val_set, sampler


def _schedule(optimizer, warmup_steps: int, total_steps: int):
    """Linear warm-up over ``warmup_steps``, then cosine decay to 0 at ``total_steps`` (per optimiser step)."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(warmup_steps, 1)
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _optimiser(parameters: list, config: TrainConfig, device: torch.device, steps_per_epoch: int):
    """(AdamW, its schedule)."""
    # fused: one kernel for all parameters (CPU and CUDA) instead of a Python loop of small ops per parameter
    optimizer = torch.optim.AdamW(parameters, lr=config.optim.lr, weight_decay=config.optim.weight_decay,
                                  fused=device.type in ("cpu", "cuda"))
    scheduler = _schedule(optimizer, int(config.optim.warmup_epochs * steps_per_epoch), config.optim.epochs * steps_per_epoch)
    return optimizer, scheduler


def resume(folder: Path, saved_config: dict, objective: Objective, optimizer, scheduler, device) -> int:
    """Load the run's checkpoint, if any, into objective, optimiser and schedule; returns the epoch to start from.
    A checkpoint of another config (``same_run``) is refused."""
    if not runs.checkpoint_path(folder).exists():
        return 0
    state = runs.read_checkpoint(folder, map_location=device)
    if not same_run(state["config"], saved_config):
        raise ValueError(f"{folder} holds a run with another config; use another name or delete it")
    objective.load_state_dict(state["objective"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return state["epoch"] + 1


def same_run(saved: dict, wanted: dict) -> bool:
    """Whether a checkpoint's config is the wanted run's: compared after filling the saved config's missing keys
    with today's defaults (``TrainConfig.from_dict``), ignoring execution settings (``EXECUTION_KEYS``)."""
    try:
        saved = TrainConfig.from_dict(saved).to_dict()
    except (TypeError, ValueError):
        return False
    return {k: v for k, v in saved.items() if k not in EXECUTION_KEYS} == {
        k: v for k, v in wanted.items() if k not in EXECUTION_KEYS}
