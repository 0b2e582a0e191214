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
from ptacl_core.methods import METHODS, check_trainable
from ptacl_core.model.encoders import MODEL_PRESETS, ModelConfig
from ptacl_core.model.losses import LOCAL_VARIANTS
from ptacl_core.model.presets import preset as lookup_preset


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
        if self.local_variant not in LOCAL_VARIANTS:
            raise ValueError(f"loss.local_variant must be one of {LOCAL_VARIANTS}, got {self.local_variant!r}")
        if self.num_bins < 2:
            raise ValueError(f"loss.num_bins must be at least 2, got {self.num_bins}")
        if self.soft_sigma is not None and not self.soft_sigma > 0:
            raise ValueError(f"loss.soft_sigma must be positive (or none: from the geometry), got {self.soft_sigma}")


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
    # checkpoints (e.g. the mae_ecg and mae_cmr runs, comma-separated) whose matching encoder weights start this run
    init_from: str = ""
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    threads: int = 0  # intra-op threads on a CPU (0: torch's default; 1 avoids spinning threads on a busy machine)

    def __post_init__(self) -> None:
        check_trainable(self.method)
        lookup_preset(self.preset)

    @property
    def local_variant(self) -> str:
        """The local-loss variant this run trains: the method's (``ptacl_cross``, ``ptacl_sham``) or loss.local_variant."""
        return METHODS[self.method].local_variant or self.loss.local_variant

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
        loss = dict(values.get("loss", {}))
        loss.setdefault("num_bins", lookup_preset(values.get("preset", "tiny")).num_bins)  # the preset's K
        values["loss"] = LossConfig(**loss)
        values["optim"] = OptimConfig(**values.get("optim", {}))
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
    config = TrainConfig.from_dict(json.loads(Path(path).read_text())) if path else TrainConfig()
    return config.with_overrides(overrides or [])
