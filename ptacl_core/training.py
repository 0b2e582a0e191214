"""One trainer for every method of the comparison (METHOD.md §4-5), on CPU, one GPU, or DDP via torchrun.

Methods: ``mae_ecg``, ``mae_cmr`` (unimodal masked autoencoding), ``global`` (MMCL-like, lambda = 0),
``local`` (temporal term only), ``ptacl`` (global + lambda * local), ``supervised`` (ECG -> standardised
phenotypes, the reference).

A run folder ``runs/<name>/`` holds ``config.json`` (resolved), ``environment.json`` (git commit, package
versions, data fingerprint), ``metrics.csv``, ``tensorboard/`` and ``checkpoints/last.pt`` (written
atomically every epoch). A killed run resumes from ``last.pt``; shuffling, augmentation and masking are
seeded per (seed, epoch), so on CPU a resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from ptacl_core import __version__, paths
from ptacl_core.dataset import Augmentation, CacheDataset
from ptacl_core.encoders import MODEL_PRESETS, MaskedAutoencoder, ModelConfig, PTACLModel
from ptacl_core.losses import PTACLLoss, local_features
from ptacl_core.phenotypes import PHENOTYPES
from ptacl_core.preprocessing.cache import Cache

METHODS = ("mae_ecg", "mae_cmr", "global", "local", "ptacl", "supervised")


@dataclass(frozen=True)
class LossConfig:
    num_bins: int = 10
    temperature: float = 0.1
    alpha: float = 0.5
    lam: float = 1.0
    local_temperature: float = 0.1
    soft_sigma: float | None = None
    learnable_temperature: bool = False
    mask_ratio: float = 0.75  # MAE methods


@dataclass(frozen=True)
class OptimConfig:
    epochs: int = 10
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    grad_clip: float = 1.0
    amp: str = "auto"  # auto: bf16 on CUDA, off on CPU; "off"; "bf16"


@dataclass(frozen=True)
class TrainConfig:
    method: str = "ptacl"
    cache: str = ""
    name: str = ""
    runs_dir: str = ""
    preset: str = "tiny"
    model: ModelConfig = field(default_factory=lambda: MODEL_PRESETS["tiny"])
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: bool = True
    init_from: str = ""  # a checkpoint (e.g. an MAE run) whose matching encoder weights start this run
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        values = dict(values)
        preset = values.get("preset", "tiny")
        if preset not in MODEL_PRESETS:
            raise ValueError(f"unknown model preset {preset!r}; presets: {sorted(MODEL_PRESETS)}")
        model = MODEL_PRESETS[preset]
        if "model" in values:
            base = model.to_dict()
            for key, value in values["model"].items():
                base[key] = {**base[key], **value} if isinstance(value, dict) else value
            model = ModelConfig.from_dict(base)
        values["model"] = model
        values["loss"] = LossConfig(**values.get("loss", {}))
        values["optim"] = OptimConfig(**values.get("optim", {}))
        return cls(**values)

    def with_overrides(self, overrides: list[str]) -> TrainConfig:
        """``section.key=value`` strings (e.g. ``optim.epochs=3``, ``loss.lam=0.5``, ``method=global``)."""
        values = self.to_dict()
        for item in overrides:
            if "=" not in item:
                raise ValueError(f"override {item!r} must look like key=value")
            key, raw = item.split("=", 1)
            target = values
            *path, last = key.split(".")
            for part in path:
                if part not in target or not isinstance(target[part], dict):
                    raise ValueError(f"unknown config section {part!r} in {item!r}")
                target = target[part]
            if last not in target:
                raise ValueError(f"unknown config key {key!r}")
            target[last] = _parse(raw, target[last])
            if key == "preset":  # a new preset brings its own model; later model.* overrides still apply
                values["model"] = MODEL_PRESETS[target[last]].to_dict() if target[last] in MODEL_PRESETS else {}
        return TrainConfig.from_dict(values)


def _parse(raw: str, current):
    if raw.lower() in ("none", "null"):
        return None
    if isinstance(current, bool):
        if raw.lower() not in ("true", "false"):
            raise ValueError(f"expected true or false, got {raw!r}")
        return raw.lower() == "true"
    if isinstance(current, int) and not isinstance(current, bool):
        return int(raw)
    if isinstance(current, float) or current is None:
        try:
            return float(raw)
        except ValueError:
            return raw
    return raw


def load_config(path: Path | str | None, overrides: list[str] | None = None) -> TrainConfig:
    config = TrainConfig.from_dict(json.loads(Path(path).read_text())) if path else TrainConfig()
    return config.with_overrides(overrides or [])


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


# --- the model and the loss of each method ----------------------------------------------------------------

class Supervised(nn.Module):
    """ECG encoder + linear head -> the ten phenotypes, standardised (the supervised reference)."""

    def __init__(self, model: PTACLModel, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.ecg_encoder = model.ecg_encoder
        self.head = nn.Linear(model.config.ecg.dim, len(PHENOTYPES))
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, ecg: torch.Tensor, phenotypes: torch.Tensor) -> torch.Tensor:
        _, pooled = self.ecg_encoder(ecg)
        target = (phenotypes - self.mean) / self.std
        known = torch.isfinite(target)
        error = (self.head(pooled) - torch.nan_to_num(target)) ** 2
        return (error * known).sum() / known.sum().clamp_min(1)


class Objective(nn.Module):
    """The trained module of a method: ``forward(batch) -> (loss, parts)``."""

    def __init__(self, config: TrainConfig, fs: float, phenotype_stats: tuple[torch.Tensor, torch.Tensor]):
        super().__init__()
        self.method, self.fs = config.method, fs
        self.model = PTACLModel(config.model)
        loss = config.loss
        if config.method == "mae_ecg":
            self.mae = MaskedAutoencoder(self.model.ecg_encoder, loss.mask_ratio)
        elif config.method == "mae_cmr":
            self.mae = MaskedAutoencoder(self.model.cmr_encoder, loss.mask_ratio)
        elif config.method == "supervised":
            self.supervised = Supervised(self.model, *phenotype_stats)
        else:
            self.loss = PTACLLoss(
                num_bins=loss.num_bins, temperature=loss.temperature, alpha=loss.alpha,
                lam=0.0 if config.method == "global" else loss.lam, local_temperature=loss.local_temperature,
                soft_sigma=loss.soft_sigma, global_weight=0.0 if config.method == "local" else 1.0,
                learnable_temperature=loss.learnable_temperature,
            )

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        if self.method == "mae_ecg":
            return self.mae(batch["ecg"]), {}
        if self.method == "mae_cmr":
            return self.mae(batch["cmr"]), {}
        if self.method == "supervised":
            return self.supervised(batch["ecg"], batch["phenotypes"]), {}
        model = self.model
        ecg_tokens, ecg_pooled = model.ecg_encoder(batch["ecg"])
        cmr_tokens, cmr_pooled = model.cmr_encoder(batch["cmr"])
        times = model.ecg_encoder.token_times_s(batch["ecg"].shape[-1], self.fs, batch["ecg"].device)
        frames = batch["cmr"].shape[-3]
        return self.loss(ecg_pooled, cmr_pooled, model.ecg_head, model.cmr_head, ecg_tokens, times, batch["rpeaks"],
                         self.fs, cmr_tokens, model.config.cmr.tubelet_frames, frames)


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
    if problems:
        raise ValueError(f"cache {cache.folder} (preset {cache.config.to_dict()['cmr']}, ECG at {cache.config.ecg.fs} Hz) "
                         f"does not fit model preset {config.preset!r}: " + "; ".join(problems))


def _phenotype_stats(cache: Cache) -> tuple[torch.Tensor, torch.Tensor]:
    train = cache.index[cache.index.split == "train"]
    values = np.stack([train[c].to_numpy(dtype=float) if c in train else np.full(len(train), np.nan) for c in PHENOTYPES], 1)
    mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
    return torch.tensor(np.nan_to_num(mean), dtype=torch.float32), torch.tensor(np.nan_to_num(std, nan=1.0) + 1e-6, dtype=torch.float32)


def _schedule(optimizer, warmup_steps: int, total_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(warmup_steps, 1)
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _environment(cache: Cache) -> dict:
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


def _save_atomic(state: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)


def load_model(checkpoint: Path | str, map_location="cpu") -> tuple[PTACLModel, TrainConfig]:
    """The PTACLModel of a run's checkpoint (``runs/<name>`` or a ``.pt`` path) and its config."""
    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        checkpoint = checkpoint / "checkpoints" / "last.pt"
    return model_from_state(torch.load(checkpoint, map_location=map_location, weights_only=False))


def model_from_state(state: dict) -> tuple[PTACLModel, TrainConfig]:
    """The PTACLModel and config held in a loaded checkpoint dict (also has "epoch", "data_fingerprint")."""
    config = TrainConfig.from_dict(state["config"])
    model = PTACLModel(config.model)
    model.load_state_dict({k.removeprefix("model."): v for k, v in state["objective"].items() if k.startswith("model.")})
    return model, config


def train(config: TrainConfig, progress: bool = True, stop_after_epochs: int | None = None) -> Path:
    """Train (or resume) the run ``config.name``; returns its folder. stop_after_epochs: leave after that
    many epochs of this call, as a kill would (tests of resume)."""
    from tqdm.auto import tqdm

    device, rank, world = _setup(config)
    cache = Cache.open(config.cache)
    check_compatible(config, cache)
    name = config.name or f"{config.method}_seed{config.seed}"
    run_dir = Path(config.runs_dir) if config.runs_dir else paths.project_root() / "runs"
    run_dir = run_dir / name
    checkpoint_path = run_dir / "checkpoints" / "last.pt"

    torch.manual_seed(config.seed)
    fs = float(cache.config.ecg.fs)
    objective = Objective(config, fs, _phenotype_stats(cache)).to(device)
    if config.init_from:
        source = torch.load(config.init_from, map_location="cpu", weights_only=False)["objective"]
        own = objective.state_dict()
        matching = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape and ".encoder" in k}
        objective.load_state_dict(matching, strict=False)
    train_set = CacheDataset(cache, "train", Augmentation() if config.augment else None, seed=config.seed)
    val_set = CacheDataset(cache, "val", None)
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=config.seed, drop_last=True) if world > 1 else None
    batch_size = config.optim.batch_size
    steps_per_epoch = max(len(train_set) // (batch_size * world), 1)
    parameters = [p for p in objective.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    scheduler = _schedule(optimizer, int(config.optim.warmup_epochs * steps_per_epoch), config.optim.epochs * steps_per_epoch)
    start_epoch = 0
    if checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location=device, weights_only=False)
        if state["config"] != config.to_dict() | {"name": name}:
            raise ValueError(f"{run_dir} holds a run with another config; use another name or delete it")
        objective.load_state_dict(state["objective"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch = state["epoch"] + 1
    module = objective
    if world > 1:
        module = torch.nn.parallel.DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None,
                                                           find_unused_parameters=config.method in ("mae_ecg", "mae_cmr", "supervised"))
    use_bf16 = config.optim.amp == "bf16" or (config.optim.amp == "auto" and device.type == "cuda")

    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(config.to_dict() | {"name": name}, indent=1))
        (run_dir / "environment.json").write_text(json.dumps(_environment(cache), indent=1))
    writer = None
    if rank == 0:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(run_dir / "tensorboard"))
        except ImportError:  # tensorboard is optional: metrics.csv has everything
            writer = None

    epochs_done = 0
    for epoch in range(start_epoch, config.optim.epochs):
        if stop_after_epochs is not None and epochs_done >= stop_after_epochs:
            break
        torch.manual_seed(config.seed * 1000 + epoch)  # MAE masks, anything random in the step
        train_set.set_epoch(epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
            loader = DataLoader(train_set, batch_size=batch_size, sampler=sampler, num_workers=config.num_workers, drop_last=True)
        else:
            generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
            loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=generator,
                                num_workers=config.num_workers, drop_last=True)
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
        val_loss = evaluate_loss(objective, val_set, batch_size, device, use_bf16, config.seed)
        if rank == 0:
            row = {"epoch": epoch + 1, "loss": totals["loss"] / max(count, 1), "val_loss": val_loss,
                   **{k: v / max(count, 1) for k, v in totals.items() if k != "loss"},
                   "lr": scheduler.get_last_lr()[0], "samples_per_s": count * batch_size * world / max(seconds, 1e-9),
                   "seconds": seconds}
            _append_metrics(run_dir / "metrics.csv", row)
            if writer is not None:
                for key, value in row.items():
                    if key != "epoch":
                        writer.add_scalar(key, value, epoch + 1)
                writer.flush()
            _save_atomic({"objective": objective.state_dict(), "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict(), "epoch": epoch, "config": config.to_dict() | {"name": name},
                          "kit_version": __version__, "data_fingerprint": cache.fingerprint}, checkpoint_path)
            if progress:
                print(f"{name}: epoch {epoch + 1}/{config.optim.epochs} loss {row['loss']:.4f} val {val_loss:.4f} "
                      f"({row['samples_per_s']:.0f} pairs/s)", flush=True)
        epochs_done += 1
    if writer is not None:
        writer.close()
    return run_dir


@torch.no_grad()
def evaluate_loss(objective: Objective, dataset: CacheDataset, batch_size: int, device, use_bf16: bool, seed: int) -> float:
    """Mean loss on a split, deterministic (fixed seed for MAE masks)."""
    objective.eval()
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    total, count = 0.0, 0
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        if len(batch["ecg"]) < 2:
            continue
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16), local_features():
            loss, _ = objective(batch)
        total += float(loss) * len(batch["ecg"])
        count += len(batch["ecg"])
    torch.random.set_rng_state(state)
    return total / max(count, 1)


def _append_metrics(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)

