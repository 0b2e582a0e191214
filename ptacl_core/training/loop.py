"""The training loop (METHOD.md §4-5): one loop for every method, on CPU, one GPU, or DDP via torchrun.

A killed run resumes from its checkpoint (``ptacl_core.training.runs``); shuffling, augmentation and masking
are seeded per (seed, epoch) (``epoch_seed``), so on CPU a resumed run ends with the same weights as an
uninterrupted one. AdamW, linear warm-up then cosine decay, gradient clipping, bf16 autocast on CUDA.
"""

from __future__ import annotations

import math
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from ptacl_core import __version__, paths
from ptacl_core.methods import METHODS
from ptacl_core.model.geometry import check_geometry, cohort_geometry, median_rr_s, phase_geometry
from ptacl_core.model.losses import phase_clock_margin
from ptacl_core.model.presets import preprocessing_preset
from ptacl_core.preprocessing.cache import Cache, default_cache_dir
from ptacl_core.preprocessing.dataset import Augmentation, CacheDataset, batch_loader
from ptacl_core.training import runs
from ptacl_core.training.config import TrainConfig
from ptacl_core.training.objective import Objective, phenotype_stats

EPOCH_SEED_STRIDE = 1000  # epoch e of seed s draws from seed s * 1000 + e: distinct for < 1000 epochs


def epoch_seed(seed: int, epoch: int) -> int:
    """The RNG seed of one epoch of a run (shuffling order, MAE masks): resumable, distinct per (seed, epoch)."""
    return seed * EPOCH_SEED_STRIDE + epoch


def resolve_cache(config: TrainConfig) -> Path:
    """The config's cache, or (``cache=""``) the one notebook 01 builds for the default cohort and the preset."""
    if config.cache:
        return Path(config.cache)
    return default_cache_dir(paths.default_cohort_dir(), preprocessing_preset(config.preset))


# --- distributed helpers -------------------------------------------------------------------------------

def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def _setup(config: TrainConfig) -> tuple[torch.device, int, int]:
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



# --- the cache and the run ----------------------------------------------------------------------------

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
    from ptacl_core.preprocessing.config import PreprocessConfig

    expected_fs = PreprocessConfig.preset(preprocessing_preset(config.preset)).ecg.fs
    if float(cache.config.ecg.fs) != float(expected_fs):  # the token width in ms, and so the phase geometry, follow fs
        problems.append(f"the cache's ECG is at {cache.config.ecg.fs:g} Hz, the preset's preprocessing "
                        f"({preprocessing_preset(config.preset)!r}) at {expected_fs:g} Hz")
    if problems:
        raise ValueError(f"cache {cache.folder} (preset {cache.config.to_dict()['cmr']}, ECG at {cache.config.ecg.fs} Hz) "
                         f"does not fit model preset {config.preset!r}: " + "; ".join(problems))


def _schedule(optimizer, warmup_steps: int, total_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(warmup_steps, 1)
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def environment(cache: Cache) -> dict:
    import importlib.metadata as metadata

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=paths.project_root(),
                                timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    versions = {}
    for package in ("torch", "numpy", "scipy", "wfdb", "nibabel", "scikit-learn"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"kit_version": __version__, "git_commit": commit, "packages": versions,
            "data_fingerprint": cache.fingerprint, "cache": str(cache.folder)}


def train(config: TrainConfig, progress: bool = True, stop_after_epochs: int | None = None) -> Path:
    """Train (or resume) the run ``config.name``; returns its folder. stop_after_epochs: leave after that
    many epochs of this call, as a kill would (tests of resume)."""
    from tqdm.auto import tqdm

    device, rank, world = _setup(config)
    cache = Cache.open(resolve_cache(config))
    check_compatible(config, cache)
    name = config.name or runs.default_name(config.method, config.seed)
    run_dir = runs.runs_dir(config.runs_dir) / name

    if device.type == "cpu" and config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    fs = float(cache.config.ecg.fs)
    geometry = run_geometry(config, cache, where=str(cache.folder))
    objective = Objective(config, fs, phenotype_stats(cache), soft_sigma=geometry["soft_sigma"]).to(device)
    initialise_encoders(objective, config)
    method = METHODS[config.method]
    augmentation = Augmentation(ecg_amplitude=0.1 if method.amplitude_augmentation else 0.0) if config.augment else None
    train_set = CacheDataset(cache, "train", augmentation, seed=config.seed)
    val_set = CacheDataset(cache, "val", None)
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=config.seed, drop_last=True) if world > 1 else None
    batch_size = config.optim.batch_size
    steps_per_epoch = max(len(train_set) // (batch_size * world), 1)
    parameters = [p for p in objective.parameters() if p.requires_grad]
    # fused: one kernel for all parameters (CPU and CUDA) instead of a Python loop of small ops per parameter
    optimizer = torch.optim.AdamW(parameters, lr=config.optim.lr, weight_decay=config.optim.weight_decay,
                                  fused=device.type in ("cpu", "cuda"))
    scheduler = _schedule(optimizer, int(config.optim.warmup_epochs * steps_per_epoch), config.optim.epochs * steps_per_epoch)
    start_epoch = 0
    if runs.checkpoint_path(run_dir).exists():
        state = runs.read_checkpoint(run_dir, map_location=device)
        if not same_run(state["config"], config.to_dict() | {"name": name}):
            raise ValueError(f"{run_dir} holds a run with another config; use another name or delete it")
        objective.load_state_dict(state["objective"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch = state["epoch"] + 1
    module = objective
    if world > 1:
        module = torch.nn.parallel.DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None,
                                                           find_unused_parameters=not objective.uses_every_parameter)
    use_bf16 = config.optim.amp == "bf16" or (config.optim.amp == "auto" and device.type == "cuda")

    writer = None
    if rank == 0:
        runs.write_description(run_dir, config.to_dict() | {"name": name}, environment(cache) | {"geometry": geometry})
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(runs.tensorboard_dir(run_dir)))
        except ImportError:  # tensorboard is optional: metrics.csv has everything
            writer = None

    epochs_done = 0
    for epoch in range(start_epoch, config.optim.epochs):
        if stop_after_epochs is not None and epochs_done >= stop_after_epochs:
            break
        torch.manual_seed(epoch_seed(config.seed, epoch))  # MAE masks, anything random in the step
        train_set.set_epoch(epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
            loader = batch_loader(train_set, batch_size, sampler=sampler, drop_last=True, num_workers=config.num_workers)
        else:
            generator = torch.Generator().manual_seed(epoch_seed(config.seed, epoch))
            loader = batch_loader(train_set, batch_size, shuffle=True, generator=generator, drop_last=True,
                                  num_workers=config.num_workers)
        module.train()
        totals, count, start = {"loss": 0.0}, 0, time.perf_counter()
        bar = tqdm(loader, desc=f"{name} epoch {epoch + 1}/{config.optim.epochs}", disable=not progress or rank != 0, leave=False)
        for batch in bar:
            batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss, parts = module(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.optim.grad_clip:
                torch.nn.utils.clip_grad_norm_(parameters, config.optim.grad_clip)
            optimizer.step()
            scheduler.step()
            count += 1
            totals["loss"] += float(loss.detach())
            for key, value in parts.items():
                totals[key] = totals.get(key, 0.0) + float(value)
            rate = count * batch_size * world / (time.perf_counter() - start)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", pairs_per_s=f"{rate:.0f}")
        bar.close()
        seconds = time.perf_counter() - start
        val_loss, margin = evaluate_loss(objective, val_set, batch_size, device, use_bf16, config.seed)
        if rank == 0:
            row = {"epoch": epoch + 1, "loss": totals["loss"] / max(count, 1), "val_loss": val_loss, **margin,
                   **{k: v / max(count, 1) for k, v in totals.items() if k != "loss"},
                   "lr": scheduler.get_last_lr()[0], "samples_per_s": count * batch_size * world / max(seconds, 1e-9),
                   "seconds": seconds}
            runs.append_metrics(run_dir, row)
            if writer is not None:
                for key, value in row.items():
                    if key != "epoch":
                        writer.add_scalar(key, value, epoch + 1)
                writer.flush()
            runs.save_checkpoint({"objective": objective.state_dict(), "optimizer": optimizer.state_dict(),
                                  "scheduler": scheduler.state_dict(), "epoch": epoch, "config": config.to_dict() | {"name": name},
                                  "kit_version": __version__, "data_fingerprint": cache.fingerprint}, run_dir)
            if progress:
                print(f"{name}: epoch {epoch + 1}/{config.optim.epochs} loss {row['loss']:.4f} val {val_loss:.4f} "
                      f"({row['samples_per_s']:.0f} pairs/s)", flush=True)
        epochs_done += 1
    if writer is not None:
        writer.close()
    return run_dir


EXECUTION_KEYS = ("threads", "num_workers", "device")  # how a run executes, not what it trains


def same_run(saved: dict, wanted: dict) -> bool:
    """Whether a checkpoint's config is the wanted run's: compared after filling the saved config's missing keys
    with today's defaults (``TrainConfig.from_dict``), ignoring execution settings (``EXECUTION_KEYS``)."""
    try:
        saved = TrainConfig.from_dict(saved).to_dict()
    except (TypeError, ValueError):
        return False
    return {k: v for k, v in saved.items() if k not in EXECUTION_KEYS} == {
        k: v for k, v in wanted.items() if k not in EXECUTION_KEYS}


def run_geometry(config: TrainConfig, cache: Cache, where: str = "") -> dict:
    """The phase geometry of this run's model on the cache's training patients (``ptacl_core.model.geometry``): refuses
    (``GeometryError``) bins narrower than an ECG token for the median patient when the run trains a local term."""
    positions = np.flatnonzero(cache.index.split.to_numpy() == "train")
    rpeaks = [cache.rpeaks(int(position)) for position in positions]
    fs = float(cache.config.ecg.fs)
    values = cohort_geometry(rpeaks, fs, cache.ecg.shape[-1], config.model.ecg.patch_samples, config.loss.num_bins)
    if METHODS[config.method].contrastive and config.method != "global" and config.loss.lam > 0:
        check_geometry(phase_geometry(config.model.ecg.patch_samples / fs, config.loss.num_bins, median_rr_s(rpeaks, fs)),
                       where)
    return values


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


@torch.no_grad()
def evaluate_loss(objective: Objective, dataset: CacheDataset, batch_size: int, device, use_bf16: bool, seed: int
                  ) -> tuple[float, dict]:
    """Mean loss on a split, deterministic (fixed seed for MAE masks), and for the contrastive methods the
    phase-clock margin (METHOD.md §4; ``losses.phase_clock_margin``): ``val_local_own`` / ``val_local_other``, the
    per-patient local loss of each patient against its own and another patient's CMR, and ``val_margin`` their
    difference, means over patients (the other patient: the previous one in the split's order)."""
    objective.eval()
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    total, count = 0.0, 0
    own_losses, other_losses = [], []
    contrastive = hasattr(objective, "loss")
    for batch in batch_loader(dataset, batch_size):
        if len(batch["ecg"]) < 2:
            continue
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            # eval mode: each process scores its own batch (no DDP gather). Contrastive runs are encoded once with
            # the true R peaks, which both the loss and the margin use (the sham arm's loss needs its own phases).
            if contrastive:
                features = objective.model.phase_embeddings(batch, objective.fs, objective.num_bins)
                loss = objective(batch)[0] if objective.local_variant == "sham" else objective.loss(*features)[0]
            else:
                loss, _ = objective(batch)
        if contrastive:
            own, other = phase_clock_margin(features.u_ecg.float(), features.u_cmr.float(), features.mask,
                                            objective.loss.local_loss.temperature)
            own_losses.append(own.cpu())
            other_losses.append(other.cpu())
        total += float(loss) * len(batch["ecg"])
        count += len(batch["ecg"])
    torch.random.set_rng_state(state)
    margin = {}
    if own_losses:
        own, other = torch.cat(own_losses), torch.cat(other_losses)
        both = torch.isfinite(own) & torch.isfinite(other)
        margin = {"val_local_own": float(own[both].mean()), "val_local_other": float(other[both].mean()),
                  "val_margin": float((other - own)[both].mean())}
    return total / max(count, 1), margin
