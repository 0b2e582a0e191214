"""The training stage's typed config: one ``TrainConfig`` (loss, optimiser, model preset) per run, saved with it.

Change it with ``TrainConfig.with_overrides`` (values or ``key=value`` strings; ``ptacl_core.config``), e.g.
``config.with_overrides({"optim.epochs": 3, "loss.lam": 0.5})``; ``preset=...`` brings that preset's model,
and later ``model.*`` overrides still apply.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from ptacl_core.config import check_choice, check_keys, check_kind, check_number, override, parse_overrides
from ptacl_core.methods import METHODS, check_trainable
from ptacl_core.model.encoders import MODEL_PRESETS, ModelConfig
from ptacl_core.model.losses import LOCAL_VARIANTS
from ptacl_core.model.presets import preset as lookup_preset

AMP_MODES = ("auto", "off", "bf16")
MAX_PHASE_BINS = 1000  # far above any geometry: a bin must stay a token wide (``ptacl_core.model.geometry``)
MAX_SEED = 2**32 - 1  # a 32-bit seed: the epochs' torch seeds (``epoch.epoch_seed``: seed * 1000 + epoch) fit 64 bits
DEVICE_NAME = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device_name(device: str) -> None:
    """A ValueError unless ``device`` names a device the trainer can run on: auto, cpu, mps, cuda or cuda:N (whether
    it is present is checked when a run starts, ``check_device``: a saved config may come from another machine)."""
    if not isinstance(device, str) or not DEVICE_NAME.match(device):
        raise ValueError(f"device must be auto, cpu, mps, cuda or cuda:<index>, got {device!r}")


def check_device(device: str) -> None:
    """A ValueError unless ``device`` (``check_device_name``) is present on this machine: cuda:7 with two GPUs, or
    cuda without one, is named before a run starts."""
    check_device_name(device)
    kind, _, index = device.partition(":")
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device={device}: no CUDA device on this machine (device=cpu or auto runs on the CPU)")
        if index and int(index) >= count:
            raise ValueError(f"device={device}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device}: no MPS device on this machine")


@dataclass(frozen=True)
class LossConfig:
    """num_bins: K phase bins (the preset's, fixed by geometry: ``ptacl_core.model.geometry``); soft_targets: circular
    Gaussian targets over neighbouring phases with sigma = soft_sigma, or (soft_sigma None) the token half-width
    over the cohort's median RR; local_variant: ``per_patient`` | ``cross_patient`` | ``sham`` (METHOD.md §4;
    the methods ``ptacl_cross`` and ``ptacl_sham`` set it)."""

    num_bins: int = 7
    temperature: float = 0.1
    alpha: float = 0.5
    lam: float = 1.0
    local_temperature: float = 0.1
    soft_targets: bool = True
    soft_sigma: float | None = None
    local_variant: str = "per_patient"
    learnable_temperature: bool = False
    mask_ratio: float = 0.75  # MAE methods

    def __post_init__(self) -> None:
        """Every field in its range: a temperature of 0 divides by zero, alpha outside [0, 1] or a negative lam
        rewards the wrong pairs, a mask ratio of 0 or 1 leaves nothing to reconstruct or nothing to see."""
        check_choice("loss.local_variant", self.local_variant, LOCAL_VARIANTS)
        check_number("loss.num_bins", self.num_bins, integer=True, minimum=2, maximum=MAX_PHASE_BINS)
        check_number("loss.temperature", self.temperature, above=0)
        check_number("loss.local_temperature", self.local_temperature, above=0)
        check_number("loss.alpha", self.alpha, minimum=0, maximum=1)
        check_number("loss.lam", self.lam, minimum=0)
        check_number("loss.mask_ratio", self.mask_ratio, above=0, below=1)
        check_kind("loss.soft_targets", self.soft_targets, bool)
        check_kind("loss.learnable_temperature", self.learnable_temperature, bool)
        if self.soft_sigma is not None:  # None: from the geometry
            check_number("loss.soft_sigma", self.soft_sigma, above=0)


@dataclass(frozen=True)
class OptimConfig:
    epochs: int = 10
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    grad_clip: float = 1.0  # max gradient norm; 0: no clipping
    amp: str = "auto"  # auto: bf16 on CUDA, off on CPU; "off"; "bf16"

    def __post_init__(self) -> None:
        """Every field in its range: an infinite or negative lr, a negative clip (which flips the gradient) or
        decay, no epoch or an empty batch would train nothing or diverge without a word."""
        check_number("optim.epochs", self.epochs, integer=True, minimum=1)
        check_number("optim.batch_size", self.batch_size, integer=True, minimum=1)
        check_number("optim.lr", self.lr, minimum=0)
        check_number("optim.weight_decay", self.weight_decay, minimum=0)
        check_number("optim.warmup_epochs", self.warmup_epochs, minimum=0)
        check_number("optim.grad_clip", self.grad_clip, minimum=0)
        check_choice("optim.amp", self.amp, AMP_MODES)


@dataclass(frozen=True)
class TrainConfig:
    """cache: the training cache folder ("" = the cache notebook 01 builds for the default cohort and this
    preset); name: the run's folder name ("" = ``run_name(method, preset, seed)``); runs_dir: where run folders
    go ("" = ``paths.runs_root()``)."""

    method: str = "ptacl"
    cache: str = ""
    name: str = ""
    runs_dir: str = ""
    preset: str = "tiny"
    model: ModelConfig = field(default_factory=lambda: MODEL_PRESETS["tiny"])
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: bool = True
    # checkpoints (e.g. the mae_ecg and mae_cmr runs, comma-separated) whose matching encoder weights start this run
    init_from: str = ""
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    threads: int = 0  # intra-op threads on a CPU (0: torch's default; 1 avoids spinning threads on a busy machine)

    def __post_init__(self) -> None:
        check_trainable(self.method)
        lookup_preset(self.preset)
        for key in ("cache", "name", "runs_dir", "init_from"):
            check_kind(key, getattr(self, key), str)
        for key, kind in (("model", ModelConfig), ("loss", LossConfig), ("optim", OptimConfig)):
            check_kind(key, getattr(self, key), kind)
        check_kind("augment", self.augment, bool)
        check_number("seed", self.seed, integer=True, minimum=0, maximum=MAX_SEED)
        check_number("num_workers", self.num_workers, integer=True, minimum=0)
        check_number("threads", self.threads, integer=True, minimum=0)
        check_device_name(self.device)

    @property
    def local_variant(self) -> str:
        """The local-loss variant this run trains: the method's (``ptacl_cross``, ``ptacl_sham``) or loss.local_variant."""
        return METHODS[self.method].local_variant or self.loss.local_variant

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """The config a dict holds (config.json, a checkpoint, a config file); keys it lacks take today's defaults,
        an unknown key or a value out of range is a ValueError naming it."""
        values = check_keys("of the run", values, cls)
        preset_name = values.get("preset", "tiny")
        model = _preset_model(preset_name)
        if "model" in values:
            base = model.to_dict()
            for key, value in check_keys("model", values["model"], ModelConfig).items():
                base[key] = {**base[key], **value} if isinstance(value, dict) and isinstance(base[key], dict) else value
            model = ModelConfig.from_dict(base)
        values["model"] = model
        loss = check_keys("loss", values.get("loss", {}), LossConfig)
        loss.setdefault("num_bins", lookup_preset(preset_name).num_bins)  # the preset's K
        values["loss"] = LossConfig(**loss)
        values["optim"] = OptimConfig(**check_keys("optim", values.get("optim", {}), OptimConfig))
        return cls(**values)

    def with_overrides(self, overrides: Mapping[str, object] | list[str]) -> TrainConfig:
        """A copy with ``{"section.key": value}`` (or ``["section.key=value", ...]``) applied."""
        values = dict(overrides) if isinstance(overrides, Mapping) else parse_overrides(self, overrides)
        config = self
        if "preset" in values:  # a new preset brings its own model and K; later model.* / loss.* overrides still apply
            name = values.pop("preset")
            config = replace(config, preset=name, model=_preset_model(name),
                             loss=replace(config.loss, num_bins=lookup_preset(name).num_bins))
        return override(config, values)


def _preset_model(name: str) -> ModelConfig:
    """The model of a preset of the preset table (a clear error for an unknown one)."""
    return MODEL_PRESETS[lookup_preset(name).name]


def load_config(path: Path | str | None, overrides: Mapping[str, object] | list[str] | None = None) -> TrainConfig:
    """A JSON config file (``configs/``; None: the defaults) with overrides applied."""
    if not path:
        return TrainConfig().with_overrides(overrides or [])
    try:
        config = TrainConfig.from_dict(json.loads(Path(path).read_text()))
    except ValueError as error:  # a bad value, an unknown key, or not JSON: one line naming the file
        raise ValueError(f"{path}: {error}") from error
    return config.with_overrides(overrides or [])
