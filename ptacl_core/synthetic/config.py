"""Settings of the synthetic paired cohort (one typed config; saved in ``cohort.json``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ptacl_core.io.cohort_tables import SPLIT_FRACTIONS

CONDITIONS: tuple[str, ...] = (
    "normal",
    "dilated_cardiomyopathy",
    "lv_hypertrophy",
    "myocardial_infarction",
    "conduction_delay",
)
INFARCT_TERRITORIES: tuple[str, ...] = ("anterior", "inferior", "lateral")
# physiological: ECG timing follows the heart the cine shows; none: the null-control twin (METHOD.md §6)
COUPLINGS: tuple[str, ...] = ("physiological", "none")


@dataclass(frozen=True)
class SynthConfig:
    """What the generator writes.

    ECG: ``ecg_duration_s`` seconds at ``ecg_fs`` Hz, 12 leads in mV, WFDB format 16 (1 µV per count).
    Cine: ``image_size`` x ``image_size`` pixels of ``pixel_mm`` mm, ``n_slices`` short-axis slices from base
    to apex, ``n_frames`` frames over one cardiac cycle from the R-wave trigger.
    """

    ecg_fs: int = 500
    ecg_duration_s: float = 10.0
    mains_hz: float = 50.0  # UK Biobank: 50 Hz mains
    image_size: int = 80
    pixel_mm: float = 2.0
    n_slices: int = 3
    n_frames: int = 50
    condition_weights: dict[str, float] = field(
        default_factory=lambda: {
            "normal": 0.5,
            "dilated_cardiomyopathy": 0.125,
            "lv_hypertrophy": 0.125,
            "myocardial_infarction": 0.125,
            "conduction_delay": 0.125,
        }
    )
    split_fractions: tuple[float, float, float] = SPLIT_FRACTIONS
    coupling: str = "physiological"

    def __post_init__(self) -> None:
        if self.n_slices < 3:
            raise ValueError(f"n_slices must be at least 3 (base, mid, apex), got {self.n_slices}")
        if self.n_frames < 10:
            raise ValueError(f"n_frames must be at least 10, got {self.n_frames}")
        if self.image_size < 64:
            raise ValueError(f"image_size must be at least 64 pixels to hold the heart, got {self.image_size}")
        unknown = set(self.condition_weights) - set(CONDITIONS)
        if unknown:
            raise ValueError(f"unknown condition(s) {sorted(unknown)}; known: {CONDITIONS}")
        if self.coupling not in COUPLINGS:
            raise ValueError(f"coupling must be one of {COUPLINGS}, got {self.coupling!r}")
        if abs(sum(self.split_fractions) - 1.0) > 1e-6:
            raise ValueError(f"split_fractions must sum to 1, got {self.split_fractions}")

    def to_dict(self) -> dict:
        values = asdict(self)
        values["split_fractions"] = list(self.split_fractions)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> SynthConfig:
        values = dict(values)
        if "split_fractions" in values:
            values["split_fractions"] = tuple(values["split_fractions"])
        return cls(**values)
