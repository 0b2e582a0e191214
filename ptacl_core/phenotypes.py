"""CMR phenotypes: names, units, how they are measured from label masks, and reference ranges.

The ten phenotypes are those of UK Biobank's imaging-derived fields 24100-24109: LV end-diastolic,
end-systolic and stroke volumes, ejection fraction, cardiac output, mass, and the RV volumes and ejection
fraction. Volumes come from a short-axis stack by summation of disks (voxel count x voxel volume);
end-diastole is the trigger frame (frame 0), end-systole the frame with the smallest cavity; mass is the
end-diastolic myocardial volume x 1.05 g/mL.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import find_peaks

PHENOTYPES: tuple[str, ...] = (
    "LVEDV_mL", "LVESV_mL", "LVSV_mL", "LVEF_pct", "LVCO_L_min", "LVM_g",
    "RVEDV_mL", "RVESV_mL", "RVSV_mL", "RVEF_pct",
)

UNITS: dict[str, str] = {name: "%" if name.endswith("_pct") else "L/min" if name.endswith("_L_min") else name.rsplit("_", 1)[1]
                         for name in PHENOTYPES}

MYOCARDIAL_DENSITY_G_PER_ML = 1.05

# Healthy UK Biobank reference ranges, mean and SD by sex (Petersen et al., JCMR 2017; 19:18, Table 2,
# rounded). LVCO follows from LVSV and a resting heart rate of ~65 bpm.
REFERENCE_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "male": {
        "LVEDV_mL": (166, 32), "LVESV_mL": (69, 16), "LVSV_mL": (97, 19), "LVEF_pct": (58, 5),
        "LVCO_L_min": (6.3, 1.4), "LVM_g": (103, 21), "RVEDV_mL": (182, 36), "RVESV_mL": (85, 22),
        "RVSV_mL": (97, 19), "RVEF_pct": (54, 6),
    },
    "female": {
        "LVEDV_mL": (124, 21), "LVESV_mL": (49, 11), "LVSV_mL": (75, 14), "LVEF_pct": (61, 5),
        "LVCO_L_min": (4.9, 1.0), "LVM_g": (74, 14), "RVEDV_mL": (130, 24), "RVESV_mL": (55, 14),
        "RVSV_mL": (75, 13), "RVEF_pct": (58, 6),
    },
}


def label_volume_curves(labels: np.ndarray, spacing_mm: tuple[float, float, float], n_labels: int = 4) -> np.ndarray:
    """Volume (mL) of every label in every frame.

    labels: (X, Y, Z, T) integer mask with values in [0, n_labels); spacing_mm: voxel size (dx, dy, dz).
    Returns (n_labels, T) mL. One bincount over the whole stack (frame t's labels are offset by t * n_labels).
    """
    if labels.ndim != 4:
        raise ValueError(f"labels must be (X, Y, Z, T), got shape {labels.shape}")
    n_frames = labels.shape[-1]
    if labels.size and (labels.min() < 0 or labels.max() >= n_labels):
        raise ValueError(f"labels must lie in [0, {n_labels}), found [{labels.min()}, {labels.max()}]")
    frames_first = np.moveaxis(labels, -1, 0).reshape(n_frames, -1)  # a view when labels is (X,Y,Z,T) in F order
    keys = frames_first + (n_labels * np.arange(n_frames, dtype=np.int32))[:, None]
    counts = np.bincount(keys.ravel(), minlength=n_labels * n_frames).reshape(n_frames, n_labels).T
    return counts * (float(np.prod(spacing_mm)) / 1000.0)


def phenotypes_from_volumes(volumes: np.ndarray, heart_rate_bpm: float, lv_cavity: int = 1,
                            lv_myocardium: int = 2, rv_cavity: int = 3) -> dict[str, float]:
    """The ten phenotypes from per-label volume curves (n_labels, T) in mL (see ``label_volume_curves``)."""
    lv, rv = volumes[lv_cavity], volumes[rv_cavity]
    lvedv, lvesv, rvedv, rvesv = lv[0], lv.min(), rv[0], rv.min()
    if lvedv <= 0 or rvedv <= 0:
        raise ValueError("no LV or RV cavity in the end-diastolic frame")
    lvsv, rvsv = lvedv - lvesv, rvedv - rvesv
    return {
        "LVEDV_mL": lvedv, "LVESV_mL": lvesv, "LVSV_mL": lvsv, "LVEF_pct": 100.0 * lvsv / lvedv,
        "LVCO_L_min": lvsv * heart_rate_bpm / 1000.0,
        "LVM_g": volumes[lv_myocardium, 0] * MYOCARDIAL_DENSITY_G_PER_ML,
        "RVEDV_mL": rvedv, "RVESV_mL": rvesv, "RVSV_mL": rvsv, "RVEF_pct": 100.0 * rvsv / rvedv,
    }


def phenotypes_from_masks(labels: np.ndarray, spacing_mm: tuple[float, float, float], heart_rate_bpm: float,
                          lv_cavity: int = 1, lv_myocardium: int = 2, rv_cavity: int = 3) -> dict[str, float]:
    """The ten phenotypes from a short-axis label stack (X, Y, Z, T) covering the ventricles."""
    volumes = label_volume_curves(labels, spacing_mm, n_labels=max(lv_cavity, lv_myocardium, rv_cavity) + 1)
    return phenotypes_from_volumes(volumes, heart_rate_bpm, lv_cavity, lv_myocardium, rv_cavity)


# Temporal phenotypes of the LV volume curve (METHOD.md §5; as UK Biobank derives them from cines, Bai et al.,
# Nat Med 2020), and the ECG truth a synthetic cohort records beside them.
TEMPORAL_PHENOTYPES: tuple[str, ...] = (
    "LV_time_to_ES_ms", "LV_time_to_ES_pct", "LV_PER_mL_s", "LV_PFR_E_mL_s", "LV_PFR_A_mL_s", "LV_atrial_fraction_pct",
)
ECG_TRUTH: tuple[str, ...] = ("HR_bpm", "PR_ms", "QRS_ms", "QT_ms")
EVALUATED: tuple[str, ...] = (*PHENOTYPES, *TEMPORAL_PHENOTYPES)  # what evaluation probes (when a cohort has them)
UNITS.update({name: "%" if name.endswith("_pct") else name.rsplit("_", 1)[1] if not name.endswith("_mL_s") else "mL/s"
              for name in TEMPORAL_PHENOTYPES})
UNITS.update({"HR_bpm": "bpm", "PR_ms": "ms", "QRS_ms": "ms", "QT_ms": "ms"})

# Each temporal phenotype's residual after a ridge regression on the ECG's heart rate (fitted on the training split;
# ``evaluation.heart_rate``): what an embedding knows of the heart's timing beyond the rate (METHOD.md §5, the
# endpoint "temporal family R² beyond heart rate", pre-registered 2026-12-06). Probed like the others.
BEYOND_HR_SUFFIX = "_beyond_HR"
BEYOND_HEART_RATE: tuple[str, ...] = tuple(f"{name}{BEYOND_HR_SUFFIX}" for name in TEMPORAL_PHENOTYPES)
PROBED: tuple[str, ...] = (*EVALUATED, *BEYOND_HEART_RATE)  # what evaluation probes: measured, then derived
UNITS.update({f"{name}{BEYOND_HR_SUFFIX}": UNITS[name] for name in TEMPORAL_PHENOTYPES})

# How figures, tables and the explorer name a column: a short display name and its unit, one table for the kit
# (``display_name``, ``unit``, ``axis_label``). Units are written once: "LVEDV (mL)", never "LVEDV mL (mL)".
DISPLAY_NAMES: dict[str, str] = {
    "LVEDV_mL": "LVEDV", "LVESV_mL": "LVESV", "LVSV_mL": "LVSV", "LVEF_pct": "LVEF", "LVCO_L_min": "LV cardiac output",
    "LVM_g": "LV mass", "RVEDV_mL": "RVEDV", "RVESV_mL": "RVESV", "RVSV_mL": "RVSV", "RVEF_pct": "RVEF",
    "LV_time_to_ES_ms": "time to end-systole", "LV_time_to_ES_pct": "time to end-systole, share of RR",
    "LV_PER_mL_s": "peak ejection rate", "LV_PFR_E_mL_s": "early filling rate", "LV_PFR_A_mL_s": "atrial filling rate",
    "LV_atrial_fraction_pct": "atrial filling fraction",
    "HR_bpm": "heart rate", "PR_ms": "PR interval", "QRS_ms": "QRS duration", "QT_ms": "QT interval",
}


def display_name(column: str) -> str:
    """The short name a figure shows for a phenotype column ("LVEF_pct" -> "LVEF"); unknown columns lose their
    underscores."""
    if column.endswith(BEYOND_HR_SUFFIX) and column[: -len(BEYOND_HR_SUFFIX)] in DISPLAY_NAMES:
        return f"{DISPLAY_NAMES[column[: -len(BEYOND_HR_SUFFIX)]]} beyond heart rate"
    return DISPLAY_NAMES.get(column, column.replace("_", " "))


def unit(column: str) -> str:
    """The unit of a phenotype column ("LVEF_pct" -> "%"), "" when it has none."""
    return UNITS.get(column, "")


def axis_label(column: str, prefix: str = "") -> str:
    """An axis label with the unit once: ``axis_label("LVEF_pct", "CMR")`` -> "CMR LVEF (%)"."""
    name = f"{prefix} {display_name(column)}".strip()
    return f"{name} ({unit(column)})" if unit(column) else name


def temporal_phenotypes(lv_volume_ml: np.ndarray, frame_interval_ms: float, min_peak_fraction: float = 0.05) -> dict[str, float]:
    """Timing and rates of one cardiac cycle's LV volume curve.

    lv_volume_ml: (T,) mL, frame 0 at the R-wave trigger (end-diastole), frames every ``frame_interval_ms``
    over one RR interval (the cycle wraps: frame T is the next end-diastole). Rates are periodic central
    differences (mL/s); the filling waves are located on a [1, 2, 1] / 4 smoothed rate. Returns:

    - ``LV_time_to_ES_ms`` / ``_pct``: trigger to the smallest volume, ms and % of RR;
    - ``LV_PER_mL_s``: peak ejection rate (largest volume decrease per second before end-systole);
    - ``LV_PFR_E_mL_s``, ``LV_PFR_A_mL_s``: peak filling rates of early filling (the first peak of the filling
      rate after end-systole) and of the atrial kick (the last one);
    - ``LV_atrial_fraction_pct``: the atrial share of filling, (EDV - V at diastasis) / (EDV - ESV), diastasis
      being the slowest filling between the two peaks.

    With one filling peak (E and A fused, e.g. at a fast heart rate) the A-wave values are NaN.
    """
    volume = np.asarray(lv_volume_ml, dtype=float)
    if volume.ndim != 1 or len(volume) < 8:
        raise ValueError(f"an LV volume curve needs at least 8 frames, got shape {volume.shape}")
    if not np.all(np.isfinite(volume)) or volume.max() <= 0:
        raise ValueError("the LV volume curve has non-finite values or no cavity")
    if not np.isfinite(frame_interval_ms) or frame_interval_ms <= 0:
        raise ValueError(f"frame interval must be a positive number of ms, got {frame_interval_ms}")
    n = len(volume)
    seconds = frame_interval_ms / 1000.0
    rate = (np.roll(volume, -1) - np.roll(volume, 1)) / (2.0 * seconds)  # (T,) mL/s
    es = int(np.argmin(volume))
    if es == 0:
        raise ValueError("the smallest LV volume is the trigger frame: not a cycle starting at end-diastole")
    result = {"LV_time_to_ES_ms": es * frame_interval_ms, "LV_time_to_ES_pct": 100.0 * es / n,
              "LV_PER_mL_s": float(np.max(-rate[:es + 1]))}
    filling = rate[es:]  # end-systole to the last frame before the next end-diastole
    # the filling waves are found on a [1, 2, 1] / 4 smoothed rate (a mask's voxel steps make one-frame spikes)
    smooth = ((np.roll(rate, 1) + 2.0 * rate + np.roll(rate, -1)) / 4.0)[es:]
    peaks, _ = find_peaks(np.concatenate([[-np.inf], smooth, [-np.inf]]),
                          prominence=min_peak_fraction * max(float(smooth.max()), 1e-9))
    peaks = peaks - 1

    def peak_rate(index: int) -> float:  # the unsmoothed rate's largest value at the wave (+-1 frame)
        return float(filling[max(index - 1, 0):index + 2].max())

    result["LV_PFR_E_mL_s"] = peak_rate(peaks[0]) if len(peaks) else float("nan")
    if len(peaks) >= 2:
        e, a = peaks[0], peaks[-1]
        diastasis = es + e + int(np.argmin(smooth[e:a + 1]))
        stroke = volume[0] - volume[es]
        result["LV_PFR_A_mL_s"] = peak_rate(a)
        result["LV_atrial_fraction_pct"] = float(100.0 * (volume[0] - volume[diastasis]) / stroke) if stroke > 0 else float("nan")
    else:
        result["LV_PFR_A_mL_s"] = result["LV_atrial_fraction_pct"] = float("nan")
    return result
