"""The training stage's typed config: one ``TrainConfig`` (loss, optimiser, model preset) per run, saved with it.

Change it with ``TrainConfig.with_overrides`` (values or ``key=value`` strings; ``ptacl_core.config``), e.g.
``config.with_overrides({"optim.epochs": 3, "loss.lam": 0.5})``; ``preset=...`` brings that preset's model,
and later ``model.*`` overrides still apply.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ptacl_core.config import override, parse_overrides
from ptacl_core.encoders import MODEL_PRESETS, ModelConfig
from ptacl_core.methods import check_trainable
from ptacl_core.presets import preset as lookup_preset


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
    init_from: str = ""  # a checkpoint (e.g. an MAE run) whose matching encoder weights start this run
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0

    def __post_init__(self) -> None:
        check_trainable(self.method)
        lookup_preset(self.preset)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        values = dict(values)
        model = _preset_model(values.get("preset", "tiny"))
        if "model" in values:
            base = model.to_dict()
            for key, value in values["model"].items():
                base[key] = {**base[key], **value} if isinstance(value, dict) else value
            model = ModelConfig.from_dict(base)
        values["model"] = model
        values["loss"] = LossConfig(**values.get("loss", {}))
        values["optim"] = OptimConfig(**values.get("optim", {}))
        return cls(**values)

    def with_overrides(self, overrides: Mapping[str, object] | list[str]) -> TrainConfig:
        """A copy with ``{"section.key": value}`` (or ``["section.key=value", ...]``) applied."""
        values = dict(overrides) if isinstance(overrides, Mapping) else parse_overrides(self, overrides)
        config = self
        if "preset" in values:  # a new preset brings its own model; later model.* overrides still apply
            name = values.pop("preset")
            config = replace(config, preset=name, model=_preset_model(name))
        return override(config, values)


def _preset_model(name: str) -> ModelConfig:
    """The model of a preset of the preset table (a clear error for an unknown one)."""
    return MODEL_PRESETS[lookup_preset(name).name]


def load_config(path: Path | str | None, overrides: Mapping[str, object] | list[str] | None = None) -> TrainConfig:
    """A JSON config file (``configs/``; None: the defaults) with overrides applied."""
    config = TrainConfig.from_dict(json.loads(Path(path).read_text())) if path else TrainConfig()
    return config.with_overrides(overrides or [])
