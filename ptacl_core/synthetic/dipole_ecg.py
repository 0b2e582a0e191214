"""Synthetic 12-lead ECG from a dipole (vectorcardiogram) model.

The heart's electrical activity is a 3-D dipole d(t) in Frank coordinates (x: to the subject's left,
y: to the feet, z: to the back). Each wave (P, septal Q, main R, terminal S, T) is a Gaussian pulse in
time along its own direction; the dipole is projected to the 8 independent leads (I, II, V1-V6) with
Dower's transform from Frank XYZ to the 12-lead ECG (Dower et al., J Electrocardiol 1988) and the other four limb leads follow from
Einthoven's and Goldberger's relations. Amplitude, axis and duration come from the latent heart (mass ->
QRS voltage, body size -> attenuation, infarct -> Q waves and T inversion in its territory, conduction
delay -> wide notched QRS), then baseline wander, 50 Hz mains and noise are added.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ptacl_core.preprocessing.ecg_measures import energy_centroid, qrs_energy
from ptacl_core.synthetic.latent import SubjectLatent

# Frank X, Y, Z -> I, II, V1..V6 (Dower's XYZ-to-12-lead transform coefficients).
DOWER_XYZ_TO_8 = np.array(
    [
        [0.632, -0.235, 0.059],  # I
        [0.235, 1.066, -0.132],  # II
        [-0.515, 0.157, -0.917],  # V1
        [0.044, 0.164, -1.387],  # V2
        [0.882, 0.098, -1.277],  # V3
        [1.213, 0.127, -0.601],  # V4
        [1.125, 0.127, -0.086],  # V5
        [0.831, 0.076, 0.230],  # V6
    ]
)

# Direction away from an infarcted territory (the dipole loses the forces of dead myocardium).
_AWAY_FROM_TERRITORY = {
    "anterior": np.array([0.0, 0.0, 1.0]),
    "inferior": np.array([0.0, -1.0, 0.0]),
    "lateral": np.array([-1.0, 0.0, 0.2]),
}


@dataclass(frozen=True)
class SyntheticEcg:
    """signal: (12, L) mV in LEAD_NAMES order, quantised to 1 µV; rpeaks: R-peak sample indices;
    t_end: T-wave end sample of each of those beats (may exceed L for the last beat)."""

    signal: np.ndarray
    fs: int
    rpeaks: np.ndarray
    t_end: np.ndarray


def _unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=float)
    return vector / np.linalg.norm(vector)


def _frontal(axis_deg: float, posterior: float) -> np.ndarray:
    angle = np.deg2rad(axis_deg)
    return _unit([np.cos(angle), np.sin(angle), posterior])


def beat_waves(latent: SubjectLatent, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The waves of one beat at the mean RR.

    Returns (offset_s (C,), sigma_s (C,), vectors (C, 3) in mV, is_t_wave (C,) bool); offsets are relative
    to the R peak. T-wave offsets are later shifted per beat with the beat's QT.
    """
    qrs = latent.qrs_duration_s
    onset = latent.qrs_onset_s
    size_attenuation = (26.0 / latent.bmi) ** 0.5
    age_attenuation = 1.0 - 0.005 * (latent.age_years - 60.0)
    voltage = 1.35 * (latent.lv_mass_g / 100.0) ** 1.1 * size_attenuation * age_attenuation * rng.lognormal(0.0, 0.1)
    axis = latent.electrical_axis_deg
    # The QRS loop turns counter-clockwise in the horizontal plane: left-anterior, then left-posterior.
    main_early, main_late = _frontal(axis, -0.25), _frontal(axis - 10.0, 1.0)
    t_direction = _frontal(0.6 * axis + 15.0, -0.35)
    t_amplitude = 0.30 * np.sqrt(voltage / 1.35) * rng.lognormal(0.0, 0.15)

    waves: list[tuple[float, float, np.ndarray]] = []
    p_duration = latent.p_duration_s
    waves.append((onset - latent.pr_interval_s + 0.5 * p_duration, p_duration / 5.0, 0.13 * _frontal(55.0, -0.2)))

    condition = latent.condition
    if condition == "conduction_delay":
        # LBBB-like: septum activated from the left (no septal q), broad notched leftward-posterior R.
        waves.append((onset + 0.12 * qrs, 0.08 * qrs, 0.10 * voltage * _unit([0.6, 0.0, 0.3])))
        waves.append((onset + 0.30 * qrs, 0.10 * qrs, 0.75 * voltage * _frontal(axis, 0.7)))
        waves.append((onset + 0.56 * qrs, 0.13 * qrs, 0.85 * voltage * _frontal(axis - 10.0, 0.9)))
        t_direction = _unit(-_frontal(axis, 0.8) + np.array([0.0, 0.2, 0.0]))  # discordant T
        t_amplitude *= 1.3
    else:
        if condition == "lv_hypertrophy":
            main_late = _frontal(axis - 10.0, 1.4)
            t_direction = _unit(-0.8 * main_late + np.array([0.0, 0.3, 0.0]))  # strain pattern
        elif condition == "dilated_cardiomyopathy":
            voltage *= 0.8
            t_amplitude *= 0.45
        septal = 0.12 * voltage * _unit([-0.6, 0.2, -0.7])
        if condition == "myocardial_infarction":
            away = _AWAY_FROM_TERRITORY[latent.infarct_territory]
            # pathological Q in the territory's leads, deeper the larger the infarct (a QRS-score relation)
            septal = septal + (0.15 + 1.2 * latent.infarct_size) * voltage * away
            tilt = 0.2 + 1.0 * latent.infarct_size
            main_early, main_late = _unit(main_early + tilt * away), _unit(main_late + tilt * away)
            t_direction = _unit(0.3 * t_direction + away)
            t_amplitude *= 0.8
        waves.append((onset + 0.16 * qrs, 0.07 * qrs, septal))
        waves.append((onset + 0.40 * qrs, 0.09 * qrs, 0.75 * voltage * main_early))
        waves.append((onset + 0.58 * qrs, 0.09 * qrs, 0.85 * voltage * main_late))
        waves.append((onset + 0.80 * qrs, 0.08 * qrs, 0.33 * voltage * _unit([-0.4, -0.5, 0.75])))

    # T wave: steeper down-slope than up-slope; its tangent-method end is peak + 2 sigma.
    t_sigma = rng.uniform(0.042, 0.055)
    t_peak = latent.t_end_after_r_s() - 2.0 * t_sigma
    n_qrs_waves = len(waves)
    waves.append((t_peak, t_sigma, t_amplitude * t_direction))
    waves.append((t_peak - 1.3 * t_sigma, 1.2 * t_sigma, 0.35 * t_amplitude * t_direction))

    offsets = np.array([w[0] for w in waves])
    sigmas = np.array([w[1] for w in waves])
    vectors = np.stack([w[2] for w in waves])
    is_t_wave = np.arange(len(waves)) >= n_qrs_waves
    return offsets, sigmas, vectors, is_t_wave


def fiducial_offset(latent: SubjectLatent, fs: int = 500) -> float:
    """Where the kit's R-peak fiducial (the multi-lead QRS-energy centroid of ``ecg_measures.detect_rpeaks``)
    falls on this subject's noiseless beat, in seconds after the QRS midpoint. Placing the R peak (the cine's
    trigger) there lets the kit's detector find the trigger whatever the QRS shape (a wide LBBB complex has
    most of its 5-25 Hz energy early)."""
    centred = replace(latent, trigger_offset_s=0.0)  # QRS midpoint at t = 0
    # a fixed draw of the random amplitudes (a global scale cancels in a centroid; the per-lead gains of the
    # written ECG move it by ~1 ms, which the detector test bounds)
    offsets, sigmas, vectors, is_t_wave = beat_waves(centred, np.random.default_rng(0))
    qrs = ~is_t_wave
    qrs[0] = False  # the P wave: only the QRS complex makes the fiducial (and the twins' hearts share it)
    half = int(fs)  # a 2 s window around the beat
    dipole = _sum_of_pulses(offsets[qrs] + 1.0, sigmas[qrs], vectors[qrs], fs, 2 * half)
    eight = DOWER_XYZ_TO_8 @ dipole
    lead_i, lead_ii = eight[0], eight[1]
    limb = np.stack([lead_i, lead_ii, lead_ii - lead_i, -(lead_i + lead_ii) / 2, lead_i - lead_ii / 2, lead_ii - lead_i / 2])
    energy = qrs_energy(np.concatenate([limb, eight[2:]]), fs)
    around = slice(half - int(0.15 * fs), half + int(0.15 * fs))
    start = around.start + int(np.argmax(energy[around]))
    return (energy_centroid(energy, start, fs) - half) / fs


def beat_times(latent: SubjectLatent, rng: np.random.Generator, duration_s: float) -> np.ndarray:
    """R-peak times (s) from before the strip to after it, with respiratory sinus arrhythmia."""
    rr_mean = latent.rr_s
    respiration_hz = rng.uniform(0.2, 0.3)
    phase = rng.uniform(0.0, 2.0 * np.pi)
    times = [rng.uniform(-rr_mean, 0.0) - rr_mean]
    while times[-1] < duration_s + 1.5:
        t = times[-1]
        rr = rr_mean * (1.0 + 0.03 * np.sin(2.0 * np.pi * respiration_hz * t + phase) + rng.normal(0.0, 0.01))
        times.append(t + rr)
    # Rescale the intervals so the strip's mean RR is the latent one (heart rate is a label).
    times = np.array(times)
    inside = (times >= 0.0) & (times < duration_s)
    beats_inside = times[inside]
    if len(beats_inside) >= 2:
        scale = rr_mean / np.mean(np.diff(beats_inside))
        times = beats_inside[0] + (times - beats_inside[0]) * scale
    return times


def _sum_of_pulses(centres_s: np.ndarray, sigmas_s: np.ndarray, amplitudes: np.ndarray, fs: float, n_samples: int) -> np.ndarray:
    """sum_k amplitudes[k] * exp(-(t - centre_k)^2 / (2 sigma_k^2)) on t = arange(n_samples) / fs.

    centres_s, sigmas_s: (K,); amplitudes: (K, 3). Returns (3, n_samples). Each pulse is evaluated only
    within +-5 sigma of its centre (beyond, it is below 4e-6 of its peak) and scattered with bincount:
    ~10x cheaper than the dense (K, L) product, and no BLAS call (whose threads oversubscribe the
    generator's worker processes).
    """
    half_window = int(np.ceil(5.0 * sigmas_s.max() * fs)) if len(sigmas_s) else 0
    offsets = np.arange(-half_window, half_window + 1)
    index = np.rint(centres_s * fs).astype(np.int64)[:, None] + offsets[None, :]  # (K, W)
    values = np.exp(-0.5 * ((index / fs - centres_s[:, None]) / sigmas_s[:, None]) ** 2)
    inside = (index >= 0) & (index < n_samples)
    index, values = index[inside], values[inside]
    rows = np.nonzero(inside)[0]
    return np.stack([np.bincount(index, weights=values * amplitudes[rows, axis], minlength=n_samples) for axis in range(3)])


def synthesize_ecg(latent: SubjectLatent, rng: np.random.Generator, fs: int, duration_s: float, mains_hz: float) -> SyntheticEcg:
    """Generate the 10 s 12-lead ECG of one subject."""
    n_samples = int(round(duration_s * fs))
    t = np.arange(n_samples) / fs
    offsets, sigmas, vectors, is_t_wave = beat_waves(latent, rng)
    r_times = beat_times(latent, rng, duration_s)
    previous_rr = np.diff(r_times, prepend=r_times[0] - latent.rr_s)
    # QT adapts to the preceding RR (Fridericia): shift the T wave of each beat.
    qt_shift = latent.qtc_s * (previous_rr ** (1 / 3) - latent.rr_s ** (1 / 3))
    respiration = 1.0 + 0.04 * np.sin(2.0 * np.pi * 0.25 * r_times + rng.uniform(0, 2 * np.pi))

    centres = r_times[:, None] + offsets[None, :] + qt_shift[:, None] * is_t_wave[None, :]  # (B, C)
    amplitudes = respiration[:, None, None] * vectors[None, :, :]  # (B, C, 3)
    keep = (centres > -0.5) & (centres < duration_s + 0.5)
    centres, amplitudes = centres[keep], amplitudes[keep]
    widths = np.broadcast_to(sigmas, keep.shape)[keep]
    dipole = _sum_of_pulses(centres, widths, amplitudes, fs, n_samples)  # (3, L)

    lead_matrix = DOWER_XYZ_TO_8 * rng.normal(1.0, 0.08, size=DOWER_XYZ_TO_8.shape[0])[:, None]
    eight = lead_matrix @ dipole  # I, II, V1..V6
    lead_i, lead_ii = eight[0], eight[1]
    limb = np.stack([lead_i, lead_ii, lead_ii - lead_i, -(lead_i + lead_ii) / 2, lead_i - lead_ii / 2, lead_ii - lead_i / 2])
    signal = np.concatenate([limb, eight[2:]])  # (12, L)

    # Recording artefacts: baseline wander (respiration, electrode drift), mains hum, broadband noise.
    n_leads = signal.shape[0]
    wander_hz = rng.uniform(0.05, 0.4, size=(n_leads, 2))
    wander_amp = rng.uniform(0.01, 0.08, size=(n_leads, 2))
    wander_phase = rng.uniform(0, 2 * np.pi, size=(n_leads, 2))
    for k in range(2):
        signal += wander_amp[:, k:k + 1] * np.sin(2 * np.pi * wander_hz[:, k:k + 1] * t + wander_phase[:, k:k + 1])
    mains = rng.uniform(0.002, 0.012, size=(n_leads, 1)) * np.sin(2 * np.pi * mains_hz * t + rng.uniform(0, 2 * np.pi))
    signal += mains + rng.normal(0.0, rng.uniform(0.004, 0.012), size=signal.shape)
    signal = np.round(signal * 1000.0) / 1000.0  # the file stores whole µV

    inside = (r_times >= 0.0) & (r_times < duration_s)
    rpeaks = np.round(r_times[inside] * fs).astype(np.int64)
    t_end_times = r_times[inside] + latent.t_end_after_r_s() + qt_shift[inside]
    return SyntheticEcg(signal=signal.astype(np.float32), fs=fs, rpeaks=rpeaks, t_end=np.round(t_end_times * fs).astype(np.int64))
