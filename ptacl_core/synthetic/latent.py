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

Within each condition, function reaches the ECG through timing, continuously, as in patients (METHOD.md §6):

- systolic time intervals: QS2 (QRS onset to aortic closure = end-systole) falls with heart rate by sex as in
  Weissler et al. (Circulation 1968; 37:149); it splits into the pre-ejection period (PEP) and LV ejection time
  (LVET) with PEP/LVET rising as EF falls with Garrard et al.'s slope (Circulation 1970; 42:455:
  EF = 1.125 - 1.25 PEP/LVET), around Weissler's normal ratio;
- electrical vs mechanical systole: QT is a fraction of QS2 that grows as EF falls, so QT outlasts QS2 in
  failing hearts (Boudoulas et al., Circulation 1981; 64:1064), and the wide QRS of LBBB adds to QT;
- QRS duration / LBBB: a wider QRS means later, dyssynchronous activation, a longer PEP and a lower EF
  (Strauss et al., Am J Cardiol 2011; 107:927); dilated cardiomyopathy widens the QRS with its severity;
- infarct size (a fraction of the LV) sets both the EF loss and the pathological Q waves (Palmeri et al.,
  Am J Cardiol 1982; 49:1; Selvester QRS score), and the size of the hypokinetic sector in the cine;
- P-wave duration follows atrial load, i.e. the atrial share of LV filling;
- stroke volume falls with heart rate at rest (a smaller end-diastolic volume).

``coupling="none"`` (the null-control twin) keeps every subject's heart, cine and phenotypes and the same
marginal distributions, but draws the ECG's timing (QRS duration, QT, P duration) from an independent second
draw of the subject's function (same condition, sex, age and heart rate), and the PR interval with it:
mechanical timing (ejection, end-systole, atrial contraction) is then decoupled from ECG timing beyond heart rate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from ptacl_core.synthetic.config import CONDITIONS, COUPLINGS, INFARCT_TERRITORIES, SynthConfig

# Weissler et al. 1968: systolic time intervals (ms) = intercept + slope x heart rate (bpm), by sex.
WEISSLER_MS = {
    "male": {"QS2": (546.0, -2.1), "LVET": (413.0, -1.7), "PEP": (131.0, -0.4)},
    "female": {"QS2": (549.0, -2.0), "LVET": (418.0, -1.6), "PEP": (133.0, -0.4)},
}
GARRARD_SLOPE = 1.0 / 1.25  # d(PEP/LVET) / d(-EF), from EF = 1.125 - 1.25 PEP/LVET
NORMAL_EF = {"male": 0.58, "female": 0.61}
QT_OVER_QS2_NORMAL = 0.96  # QT ends just before aortic closure in a healthy heart


def weissler_ms(sex: str, interval: str, heart_rate_bpm: float) -> float:
    """The published regression of a systolic time interval ("QS2", "LVET", "PEP") on heart rate, ms."""
    intercept, slope = WEISSLER_MS[sex][interval]
    return intercept + slope * heart_rate_bpm


@dataclass(frozen=True)
class SubjectLatent:
    """Ground truth of one subject. Times in seconds, volumes in mL, mass in g, angles in degrees.

    ECG timing (what the ECG is drawn from): qrs_duration_s, pr_interval_s, qtc_s, p_duration_s,
    trigger_offset_s. Mechanical timing (what the cine is drawn from, relative to the trigger = the R peak the
    kit detects): mechanical_qrs_onset_s, pep_s, lvet_s. With coupling "physiological" both come from one heart;
    with "none" the ECG timing comes from an independent draw.
    """

    subject_id: str
    sex: str  # "male" | "female"
    age_years: float
    height_cm: float
    weight_kg: float
    condition: str
    infarct_territory: str  # "" unless condition == myocardial_infarction
    infarct_size: float  # fraction of the LV, 0 unless myocardial_infarction
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
    p_duration_s: float
    electrical_axis_deg: float  # frontal QRS axis
    pep_s: float  # pre-ejection period: QRS onset -> start of ejection
    lvet_s: float  # LV ejection time: start of ejection -> end-systole
    early_filling_fraction: float  # share of filling before atrial contraction
    mechanical_qrs_duration_s: float  # the QRS of the heart the cine shows (= qrs_duration_s when coupled)
    mechanical_pr_s: float  # its atrioventricular delay: atrial contraction timing (= pr_interval_s when coupled)
    coupling: str = "physiological"
    trigger_offset_s: float = 0.0  # the ECG's R-peak fiducial (QRS-energy centroid) after the QRS midpoint
    mechanical_trigger_offset_s: float = 0.0  # the same for the mechanical QRS

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
        """The ECG's QRS onset relative to the R peak (the trigger; negative: before it)."""
        return -0.5 * self.qrs_duration_s - self.trigger_offset_s

    @property
    def mechanical_qrs_onset_s(self) -> float:
        """Onset of ventricular activation of the heart the cine shows, relative to the trigger."""
        return -0.5 * self.mechanical_qrs_duration_s - self.mechanical_trigger_offset_s

    @property
    def qs2_s(self) -> float:
        """Electromechanical systole: QRS onset to aortic closure (end-systole)."""
        return self.pep_s + self.lvet_s

    @property
    def ejection_start_s(self) -> float:
        """Start of ejection after the trigger."""
        return self.mechanical_qrs_onset_s + self.pep_s

    @property
    def end_systole_s(self) -> float:
        """End-systole (aortic closure) after the trigger."""
        return self.mechanical_qrs_onset_s + self.qs2_s

    def qt_s(self, rr_s: float) -> float:
        """QT interval (QRS onset to T end) for a beat of the given RR, Fridericia: QT = QTc * RR^(1/3)."""
        return self.qtc_s * rr_s ** (1.0 / 3.0)

    def t_end_after_r_s(self, rr_s: float | None = None) -> float:
        """End of the T wave relative to the R peak."""
        return self.qrs_onset_s + self.qt_s(self.rr_s if rr_s is None else rr_s)

    def to_dict(self) -> dict:
        values = asdict(self)
        values["bsa_m2"] = round(self.bsa_m2, 4)
        return values


def _choose_condition(rng: np.random.Generator, config: SynthConfig) -> str:
    names = [name for name in CONDITIONS if config.condition_weights.get(name, 0.0) > 0]
    weights = np.array([config.condition_weights[name] for name in names], dtype=float)
    return str(names[rng.choice(len(names), p=weights / weights.sum())])


@dataclass(frozen=True)
class _Function:
    """One draw of a heart's function given its condition, sex, age and heart rate, and the ECG timing it
    implies. Two independent draws of it give the null-control twin."""

    lv_ef: float
    edv_factor: float
    mass_factor: float
    qrs_s: float
    qtc_s: float
    p_duration_s: float
    pr_s: float
    early_filling: float
    pep_s: float
    lvet_s: float
    infarct_size: float
    sphericity_shift: float
    rv_ef: float | None


def _draw_function(rng: np.random.Generator, condition: str, male: bool, age: float, heart_rate: float) -> _Function:
    sex = "male" if male else "female"
    lv_ef = rng.normal(NORMAL_EF[sex], 0.045)
    edv_factor, mass_factor, sphericity_shift, rv_ef = 1.0, 1.0, 0.0, None
    qrs = rng.normal(0.092 if male else 0.086, 0.007)
    early_filling = rng.normal(0.72 - 0.006 * (age - 60.0), 0.05)
    infarct_size = 0.0
    qt_extra = 0.0
    pr = float(np.clip(rng.normal(0.160 + 0.0006 * (age - 60.0), 0.018), 0.12, 0.21))
    if condition == "dilated_cardiomyopathy":
        severity = rng.uniform(0.0, 1.0)
        lv_ef = 0.40 - 0.20 * severity + rng.normal(0.0, 0.02)
        edv_factor = 1.45 + 0.45 * severity + rng.normal(0.0, 0.05)
        mass_factor = rng.uniform(1.10, 1.35)
        sphericity_shift = 0.10 + 0.05 * severity
        rv_ef = rng.uniform(0.35, 0.50)
        qrs = 0.100 + 0.028 * severity + rng.normal(0.0, 0.004)
        early_filling = 0.75 + 0.13 * severity + rng.normal(0.0, 0.02)  # restrictive filling
    elif condition == "lv_hypertrophy":
        lv_ef = rng.normal(0.64, 0.04)
        edv_factor = rng.uniform(0.85, 1.0)
        mass_factor = rng.uniform(1.45, 1.95)
        qrs += 0.004 + 0.02 * (mass_factor - 1.45)
        early_filling = rng.uniform(0.50, 0.62)  # impaired relaxation: more atrial filling
        qt_extra = 0.015
    elif condition == "myocardial_infarction":
        infarct_size = rng.uniform(0.08, 0.35)
        lv_ef = NORMAL_EF[sex] - 0.75 * infarct_size + rng.normal(0.0, 0.025)
        edv_factor = 1.02 + 0.8 * infarct_size + rng.normal(0.0, 0.04)
        mass_factor = rng.uniform(0.95, 1.10)
    elif condition == "conduction_delay":
        qrs = rng.uniform(0.130, 0.170)
        lv_ef = 0.545 - 1.5 * (qrs - 0.130) + rng.normal(0.0, 0.025)  # wider QRS, more dyssynchrony, lower EF
        edv_factor = 1.0 + 2.0 * (qrs - 0.130) + rng.normal(0.0, 0.04)
    lv_ef = float(np.clip(lv_ef, 0.15, 0.75))
    early_filling = float(np.clip(early_filling, 0.45, 0.9))
    # Systolic time intervals: Weissler's QS2 for this heart rate and sex; the PEP/LVET split moves with EF
    # (Garrard's slope) around Weissler's normal ratio; activation delay (wide QRS) lengthens pre-ejection.
    qs2 = weissler_ms(sex, "QS2", heart_rate) / 1000.0 + rng.normal(0.0, 0.010)
    normal_ratio = weissler_ms(sex, "PEP", heart_rate) / weissler_ms(sex, "LVET", heart_rate)
    ratio = max(normal_ratio + GARRARD_SLOPE * (NORMAL_EF[sex] - lv_ef) + rng.normal(0.0, 0.02), 0.15)
    delay = max(qrs - 0.10, 0.0)
    qs2 += 0.5 * delay
    pep = qs2 * ratio / (1.0 + ratio) + 0.6 * delay
    lvet = qs2 - pep
    # Electrical systole: QT a fraction of QS2 that grows as EF falls (QT outlasts QS2 in failing hearts);
    # a wide QRS adds half its excess to QT.
    qt = qs2 * (QT_OVER_QS2_NORMAL + 0.35 * (NORMAL_EF[sex] - lv_ef) + rng.normal(0.0, 0.012)) + 0.5 * max(qrs - 0.09, 0.0) + qt_extra
    qtc = qt / (60.0 / heart_rate) ** (1.0 / 3.0)
    # Atrial load: the larger the atrial share of filling, the longer the P wave.
    p_duration = float(np.clip(0.098 + 0.12 * ((1.0 - early_filling) - 0.28) + rng.normal(0.0, 0.005), 0.07, 0.14))
    return _Function(lv_ef, float(edv_factor), float(mass_factor), float(qrs), float(qtc), p_duration, pr, early_filling,
                     float(pep), float(lvet), float(infarct_size), float(sphericity_shift), rv_ef)


def sample_latent(rng: np.random.Generator, subject_id: str, config: SynthConfig,
                  twin_rng: np.random.Generator | None = None) -> SubjectLatent:
    """Draw one subject. All randomness comes from ``rng`` (seeded per subject), so subject i never
    depends on how many subjects are generated; ``twin_rng`` (coupling "none" only) draws the ECG timing's
    independent function, so the null twin of subject i has the same heart, cine and phenotypes."""
    if config.coupling not in COUPLINGS:
        raise ValueError(f"coupling must be one of {COUPLINGS}, got {config.coupling!r}")
    condition = _choose_condition(rng, config)
    male = bool(rng.random() < 0.5)
    age = float(np.clip(rng.normal(63.0, 7.5), 45.0, 82.0))
    height = float(rng.normal(176.0, 7.0) if male else rng.normal(163.0, 6.5))
    bmi = float(np.clip(rng.lognormal(np.log(26.5), 0.14), 18.0, 42.0))
    weight = bmi * (height / 100.0) ** 2
    bsa = np.sqrt(height * weight / 3600.0)
    size = bsa / (1.98 if male else 1.72)  # relative to the sex's mean body size
    if condition == "myocardial_infarction":
        age = float(min(age + rng.uniform(0.0, 6.0), 82.0))
    heart_rate = float(np.clip(rng.normal(66.0, 9.0), 45.0, 100.0))
    if condition == "dilated_cardiomyopathy":
        heart_rate = float(np.clip(heart_rate + rng.uniform(5.0, 18.0), 50.0, 110.0))

    heart = _draw_function(rng, condition, male, age, heart_rate)
    if config.coupling == "none":
        if twin_rng is None:
            raise ValueError("coupling 'none' needs twin_rng: the ECG timing's independent draw")
        ecg_timing = _draw_function(twin_rng, condition, male, age, heart_rate)
    else:
        ecg_timing = heart

    # Normal heart, scaled to body size, age (volumes fall with age in UK Biobank) and heart rate (at rest,
    # a faster heart fills less: stroke volume falls with heart rate).
    age_factor = 1.0 - 0.004 * (age - 60.0)
    rate_factor = (heart_rate / 66.0) ** -0.2
    lv_edv = (166.0 if male else 124.0) * size * age_factor * rate_factor * rng.lognormal(0.0, 0.12) * heart.edv_factor
    lv_mass = (104.0 if male else 74.0) * size * rng.lognormal(0.0, 0.13) * heart.mass_factor
    rv_ratio = rng.normal(1.09 if male else 1.05, 0.06)
    rv_ef = rng.normal(0.54 if male else 0.58, 0.05) if heart.rv_ef is None else heart.rv_ef
    if condition == "dilated_cardiomyopathy":
        rv_ratio *= 0.75 * rng.uniform(0.85, 1.0)
    sphericity = rng.normal(0.34, 0.02) + heart.sphericity_shift
    axis = rng.normal(42.0 - 2.0 * (bmi - 26.0) - 0.3 * (age - 60.0), 18.0)
    if condition == "dilated_cardiomyopathy":
        axis -= rng.uniform(0.0, 25.0)
    elif condition == "lv_hypertrophy":
        axis -= rng.uniform(10.0, 35.0)
    elif condition == "conduction_delay":
        axis -= rng.uniform(10.0, 40.0)
    territory = str(INFARCT_TERRITORIES[rng.integers(len(INFARCT_TERRITORIES))]) if condition == "myocardial_infarction" else ""

    return SubjectLatent(
        subject_id=subject_id,
        sex="male" if male else "female",
        age_years=round(age, 1),
        height_cm=round(height, 1),
        weight_kg=round(weight, 1),
        condition=condition,
        infarct_territory=territory,
        infarct_size=heart.infarct_size,
        heart_rate_bpm=heart_rate,
        lv_edv_ml=float(lv_edv),
        lv_ef=heart.lv_ef,
        lv_mass_g=float(lv_mass),
        rv_edv_ml=float(lv_edv * rv_ratio),
        rv_ef=float(np.clip(rv_ef, 0.25, 0.72)),
        sphericity=float(np.clip(sphericity, 0.28, 0.55)),
        qrs_duration_s=ecg_timing.qrs_s,
        pr_interval_s=ecg_timing.pr_s,
        qtc_s=ecg_timing.qtc_s,
        p_duration_s=ecg_timing.p_duration_s,
        electrical_axis_deg=float(np.clip(axis, -60.0, 110.0)),
        pep_s=heart.pep_s,
        lvet_s=heart.lvet_s,
        early_filling_fraction=heart.early_filling,
        mechanical_qrs_duration_s=heart.qrs_s,
        mechanical_pr_s=heart.pr_s,
        coupling=config.coupling,
    )


def with_trigger_offsets(latent: SubjectLatent, ecg_offset_s: float, mechanical_offset_s: float) -> SubjectLatent:
    """The latent with its R-peak fiducials placed (``ptacl_core.synthetic.dipole_ecg.fiducial_offset``)."""
    return replace(latent, trigger_offset_s=float(ecg_offset_s), mechanical_trigger_offset_s=float(mechanical_offset_s))
