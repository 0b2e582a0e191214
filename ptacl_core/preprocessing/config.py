"""One typed config for preprocessing, with presets. Saved in the cache and part of its fingerprint."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from ptacl_core.config import override, parse_overrides

ECG_NORMALISATIONS = ("none", "lead_zscore", "record_zscore")
CMR_VIEWS = ("sa_mid", "sa_three", "la_4ch")
ECG_FLAGS = ("flat_lead", "over_5mv", "implausible_amplitude", "clipped")


@dataclass(frozen=True)
class EcgConfig:
    """ECG: resample to ``fs``, keep ``duration_s``, high-pass (baseline wander), mains notch, low-pass.

    reject_flags: quality flags that exclude a subject (recorded in failures.csv); the others are kept
    and stored in the index.
    """

    fs: int = 500
    duration_s: float = 10.0
    highpass_hz: float = 0.5
    lowpass_hz: float = 100.0
    notch_hz: float | None = 50.0  # UK mains; 60.0 for North American recordings, None for none
    normalisation: str = "none"
    max_peak_to_peak_mv: float = 5.0  # above: flagged "over_5mv" (possible gain error; also severe LVH)
    implausible_peak_to_peak_mv: float = 15.0  # above: no heart does this (e.g. µV labelled as mV)
    flat_peak_to_peak_mv: float = 0.02
    reject_flags: tuple[str, ...] = ("flat_lead", "implausible_amplitude")

    def __post_init__(self) -> None:
        if self.normalisation not in ECG_NORMALISATIONS:
            raise ValueError(f"ecg.normalisation must be one of {ECG_NORMALISATIONS}, got {self.normalisation!r}")
        if self.notch_hz is not None and self.notch_hz not in (50.0, 60.0):
            raise ValueError(f"ecg.notch_hz must be 50, 60 or None, got {self.notch_hz}")
        if not 0 < self.highpass_hz < self.lowpass_hz:
            raise ValueError("ecg filter band must satisfy 0 < highpass_hz < lowpass_hz")
        unknown = set(self.reject_flags) - set(ECG_FLAGS)
        if unknown:
            raise ValueError(f"unknown ecg.reject_flags {sorted(unknown)}; known: {ECG_FLAGS}")

    @property
    def n_samples(self) -> int:
        return int(round(self.fs * self.duration_s))


@dataclass(frozen=True)
class CmrConfig:
    """Cine: choose the view, crop ``crop_mm`` around the heart, resize to ``size`` x ``size``, resample to
    ``n_frames`` frames over the cycle, scale intensities to [0, 1] between two percentiles."""

    view: str = "sa_mid"
    size: int = 64
    crop_mm: float = 128.0
    n_frames: int = 50
    intensity_percentiles: tuple[float, float] = (1.0, 99.0)

    def __post_init__(self) -> None:
        if self.view not in CMR_VIEWS:
            raise ValueError(f"cmr.view must be one of {CMR_VIEWS}, got {self.view!r}")
        if self.size < 16 or self.n_frames < 2 or self.crop_mm <= 0:
            raise ValueError("cmr.size >= 16, cmr.n_frames >= 2 and cmr.crop_mm > 0 are required")

    @property
    def n_slices(self) -> int:
        return 3 if self.view == "sa_three" else 1


@dataclass(frozen=True)
class PreprocessConfig:
    ecg: EcgConfig = field(default_factory=EcgConfig)
    cmr: CmrConfig = field(default_factory=CmrConfig)

    def to_dict(self) -> dict:
        values = asdict(self)
        values["ecg"]["reject_flags"] = list(self.ecg.reject_flags)
        values["cmr"]["intensity_percentiles"] = list(self.cmr.intensity_percentiles)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> PreprocessConfig:
        ecg = dict(values.get("ecg", {}))
        cmr = dict(values.get("cmr", {}))
        if "reject_flags" in ecg:
            ecg["reject_flags"] = tuple(ecg["reject_flags"])
        if "intensity_percentiles" in cmr:
            cmr["intensity_percentiles"] = tuple(cmr["intensity_percentiles"])
        return cls(ecg=EcgConfig(**ecg), cmr=CmrConfig(**cmr))

    @classmethod
    def preset(cls, name: str) -> PreprocessConfig:
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; presets: {sorted(PRESETS)}")
        return PRESETS[name]

    def with_overrides(self, values: Mapping[str, object] | list[str]) -> PreprocessConfig:
        """A copy with ``{"ecg.notch_hz": 60.0}`` (or ``["ecg.notch_hz=60"]``) applied (``ptacl_core.config``)."""
        return override(self, dict(values) if isinstance(values, Mapping) else parse_overrides(self, values))


PRESETS: dict[str, PreprocessConfig] = {
    # The paper-scale setting: 500 Hz, 50 frames (UK Biobank's cine), 64 x 64 mid short-axis crops.
    "default": PreprocessConfig(),
    # CPU training (tiny model preset): 250 Hz, 24 frames (tubelets of 2), 48 x 48 crops.
    "tiny": PreprocessConfig(ecg=EcgConfig(fs=250, lowpass_hz=100.0), cmr=CmrConfig(size=48, n_frames=24)),
    # Three short-axis slices (base, mid, apex) at the default resolution.
    "sa_three": PreprocessConfig(cmr=CmrConfig(view="sa_three")),
    # North American recordings: 60 Hz mains.
    "default_60hz": PreprocessConfig(ecg=EcgConfig(notch_hz=60.0)),
}
