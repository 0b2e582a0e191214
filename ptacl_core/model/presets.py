"""Size presets in one table: each model preset (``ptacl_core.model.encoders.MODEL_PRESETS``) with the preprocessing
preset (``ptacl_core.preprocessing.config.PRESETS``) whose cache it is built for. Notebooks, the trainer and
the comparison look the pair up here instead of joining names by hand."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    name: str  # the model preset
    preprocessing: str  # the preprocessing preset of its cache
    hardware: str
    num_bins: int  # K phase bins: the largest K whose bins (RR / K) are a token wide for >= 95 % of the default cohort


PRESETS: dict[str, Preset] = {p.name: p for p in (
    # 100 ms ECG tokens; the default cohort's median RR 0.90 s: bins of 128 ms, 3.5 % of patients below 100 ms
    Preset("tiny", preprocessing="tiny", hardware="CPU, minutes (250 Hz x 10 s, 24 frames of 48 px)", num_bins=7),
    Preset("tiny_resnet", preprocessing="tiny", hardware="CPU, minutes: tiny, with a 1-D ResNet ECG encoder", num_bins=7),
    # 40 ms ECG tokens: bins of 56 ms at the median RR, ~1 % of patients below 40 ms
    Preset("paper", preprocessing="default", hardware="GPU, ViT-B class (500 Hz x 10 s, 50 frames of 64 px)", num_bins=16),
)}


def preset(name: str) -> Preset:
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {sorted(PRESETS)}")
    return PRESETS[name]


def preprocessing_preset(name: str) -> str:
    """The preprocessing preset a model preset's cache is built with."""
    return preset(name).preprocessing


def shared_preprocessing(names) -> str:
    """The one preprocessing preset of the model presets ``names`` (their runs can share a cache, so encoders are
    compared on the same subjects, splits and signals); a ValueError naming them when they need different caches."""
    caches = {name: preprocessing_preset(name) for name in names}
    if len(set(caches.values())) != 1:
        raise ValueError(f"presets {caches} train on caches of different preprocessing: encoders must be compared on "
                         "one cache (the same subjects, splits and signals)")
    return next(iter(caches.values()))
