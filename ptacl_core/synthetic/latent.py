"""The latent heart of one synthetic subject: what both the ECG and the cine are generated from.

Normal phenotypes follow UK Biobank reference ranges (Petersen et al., JCMR 2017; 19:18): e.g. LVEDV
166 ± 32 mL in men and 124 ± 21 mL in women, LVEF 58 ± 5 % (men) and 61 ± 5 % (women). Each condition
changes both modalities:

========================  ====================================  ========================================
condition                 CMR                                   ECG
========================  ====================================  ========================================
dilated_cardiomyopathy    large spherical LV, EF 20-40 %, thin  wider QRS, lower voltage, flat T, faster
lv_hypertrophy            thick wall, high mass, small cavity   high QRS voltage, left axis, strain T
myocardial_infarction     thinned hypokinetic territory         Q waves and inverted T in the territory
conduction_delay          mildly reduced EF, late mechanics     wide (LBBB-like) QRS, discordant T
========================  ====================================  ========================================
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ptacl_core.synthetic.config import CONDITIONS, INFARCT_TERRITORIES, SynthConfig


@dataclass(frozen=True)
class SubjectLatent:
    """Ground truth of one subject. Times in seconds, volumes in mL, mass in g, angles in degrees."""

    subject_id: str
    sex: str  # "male" | "female"
    age_years: float
    height_cm: float
    weight_kg: float
    condition: str
    infarct_territory: str  # "" unless condition == myocardial_infarction
    heart_rate_bpm: float
    lv_edv_ml: float
    lv_ef: float  # fraction
    lv_mass_g: float
    rv_edv_ml: float
    rv_ef: float  # fraction
    sphericity: float  # LV short/long axis ratio at ED
    qrs_duration_s: float
    pr_interval_s: float
    qtc_s: float  # Fridericia-corrected QT
    electrical_axis_deg: float  # frontal QRS axis
    electromechanical_delay_s: float  # QRS onset -> onset of contraction
    early_filling_fraction: float  # share of filling before atrial contraction

    @property
    def bsa_m2(self) -> float:
        """Body surface area, Mosteller formula."""
        return float(np.sqrt(self.height_cm * self.weight_kg / 3600.0))

    @property
    def bmi(self) -> float:
        return self.weight_kg / (self.height_cm / 100.0) ** 2

    @property
    def rr_s(self) -> float:
        return 60.0 / self.heart_rate_bpm

    @property
    def qrs_onset_s(self) -> float:
        """QRS onset relative to the R peak (negative: before it)."""
        return -0.5 * self.qrs_duration_s

    def qt_s(self, rr_s: float) -> float:
        """QT interval (QRS onset to T end) for a beat of the given RR, Fridericia: QT = QTc * RR^(1/3)."""
        return self.qtc_s * rr_s ** (1.0 / 3.0)

    def t_end_after_r_s(self, rr_s: float | None = None) -> float:
        """End of the T wave relative to the R peak; end-systole coincides with it."""
        return self.qrs_onset_s + self.qt_s(self.rr_s if rr_s is None else rr_s)

    def to_dict(self) -> dict:
        values = asdict(self)
        values["bsa_m2"] = round(self.bsa_m2, 4)
        return values


def _choose_condition(rng: np.random.Generator, config: SynthConfig) -> str:
    names = [name for name in CONDITIONS if config.condition_weights.get(name, 0.0) > 0]
    weights = np.array([config.condition_weights[name] for name in names], dtype=float)
    return str(names[rng.choice(len(names), p=weights / weights.sum())])


def sample_latent(rng: np.random.Generator, subject_id: str, config: SynthConfig) -> SubjectLatent:
    """Draw one subject. All randomness comes from ``rng`` (seeded per subject), so subject i never
    depends on how many subjects are generated."""
    condition = _choose_condition(rng, config)
    male = bool(rng.random() < 0.5)
    age = float(np.clip(rng.normal(63.0, 7.5), 45.0, 82.0))
    height = float(rng.normal(176.0, 7.0) if male else rng.normal(163.0, 6.5))
    bmi = float(np.clip(rng.lognormal(np.log(26.5), 0.14), 18.0, 42.0))
    weight = bmi * (height / 100.0) ** 2
    bsa = np.sqrt(height * weight / 3600.0)
    size = bsa / (1.98 if male else 1.72)  # relative to the sex's mean body size

    # Normal heart, scaled to body size and age (volumes fall with age in UK Biobank).
    age_factor = 1.0 - 0.004 * (age - 60.0)
    lv_edv = (166.0 if male else 124.0) * size * age_factor * rng.lognormal(0.0, 0.14)
    lv_ef = rng.normal(0.58 if male else 0.61, 0.045)
    lv_mass = (104.0 if male else 74.0) * size * rng.lognormal(0.0, 0.13)
    rv_ratio = rng.normal(1.09 if male else 1.05, 0.06)
    rv_ef = rng.normal(0.54 if male else 0.58, 0.05)
    sphericity = rng.normal(0.34, 0.02)
    heart_rate = float(np.clip(rng.normal(66.0, 9.0), 45.0, 100.0))
    qrs = rng.normal(0.092 if male else 0.086, 0.007)
    pr = float(np.clip(rng.normal(0.160 + 0.0006 * (age - 60.0), 0.018), 0.12, 0.21))
    qtc = rng.normal(0.405 if male else 0.415, 0.014)
    axis = rng.normal(42.0 - 2.0 * (bmi - 26.0) - 0.3 * (age - 60.0), 18.0)
    emd = rng.normal(0.060, 0.008)
    early_filling = rng.normal(0.72 - 0.006 * (age - 60.0), 0.05)
    territory = ""

    if condition == "dilated_cardiomyopathy":
        lv_edv *= rng.uniform(1.45, 1.9)
        lv_ef = rng.uniform(0.20, 0.40)
        lv_mass *= rng.uniform(1.10, 1.35)
        rv_ratio *= rng.uniform(0.85, 1.0)
        rv_ef = rng.uniform(0.35, 0.50)
        sphericity = rng.normal(0.46, 0.03)
        heart_rate = float(np.clip(heart_rate + rng.uniform(5.0, 18.0), 50.0, 110.0))
        qrs = rng.uniform(0.100, 0.125)
        axis -= rng.uniform(0.0, 25.0)
        qtc += 0.02
        early_filling = rng.uniform(0.75, 0.88)  # restrictive filling
    elif condition == "lv_hypertrophy":
        lv_edv *= rng.uniform(0.85, 1.0)
        lv_ef = rng.normal(0.64, 0.04)
        lv_mass *= rng.uniform(1.45, 1.95)
        qrs += rng.uniform(0.004, 0.014)
        axis -= rng.uniform(10.0, 35.0)
        qtc += 0.015
        early_filling = rng.uniform(0.50, 0.62)  # impaired relaxation: more atrial filling
    elif condition == "myocardial_infarction":
        territory = str(INFARCT_TERRITORIES[rng.integers(len(INFARCT_TERRITORIES))])
        lv_edv *= rng.uniform(1.05, 1.30)
        lv_ef = rng.uniform(0.36, 0.50)
        lv_mass *= rng.uniform(0.95, 1.10)
        qtc += 0.01
        age = float(min(age + rng.uniform(0.0, 6.0), 82.0))
    elif condition == "conduction_delay":
        qrs = rng.uniform(0.130, 0.170)
        lv_edv *= rng.uniform(1.0, 1.2)
        lv_ef = rng.uniform(0.42, 0.54)
        axis -= rng.uniform(10.0, 40.0)
        emd += rng.uniform(0.025, 0.045)  # delayed, dyssynchronous activation of the lateral wall
        qtc += 0.03

    lv_ef = float(np.clip(lv_ef, 0.15, 0.75))
    rv_edv = lv_edv * rv_ratio if condition != "dilated_cardiomyopathy" else lv_edv * rv_ratio * 0.75
    return SubjectLatent(
        subject_id=subject_id,
        sex="male" if male else "female",
        age_years=round(age, 1),
        height_cm=round(height, 1),
        weight_kg=round(weight, 1),
        condition=condition,
        infarct_territory=territory,
        heart_rate_bpm=heart_rate,
        lv_edv_ml=float(lv_edv),
        lv_ef=lv_ef,
        lv_mass_g=float(lv_mass),
        rv_edv_ml=float(rv_edv),
        rv_ef=float(np.clip(rv_ef, 0.25, 0.72)),
        sphericity=float(np.clip(sphericity, 0.28, 0.55)),
        qrs_duration_s=float(qrs),
        pr_interval_s=pr,
        qtc_s=float(qtc),
        electrical_axis_deg=float(np.clip(axis, -60.0, 110.0)),
        electromechanical_delay_s=float(np.clip(emd, 0.035, 0.12)),
        early_filling_fraction=float(np.clip(early_filling, 0.45, 0.9)),
    )
