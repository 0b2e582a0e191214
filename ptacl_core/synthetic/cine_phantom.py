"""Synthetic short-axis cine and its ground-truth masks.

The LV is a truncated prolate ellipsoid cut into ``n_slices`` short-axis slices from base to apex; the RV is
a crescent wrapped around the septum. Their cavities follow volume curves over one RR interval that start at
the R-wave trigger (frame 0 = end-diastole):

- isovolumic until QRS onset + the pre-ejection period (PEP);
- ejection for the LV ejection time (LVET) until end-systole at QRS onset + QS2 (Weissler's systolic time
  intervals: heart rate, sex and EF move them; see ``latent``);
- isovolumic relaxation (70 ms), early filling, diastasis, and the atrial kick in the last ~120 ms.

The myocardium keeps its volume (it thickens as the cavity shrinks). An infarct is a thinned, hypokinetic
wall sector in its territory. Masks use the UK Biobank label convention: 1 LV cavity, 2 LV myocardium,
3 RV cavity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ptacl_core.phenotypes import MYOCARDIAL_DENSITY_G_PER_ML
from ptacl_core.synthetic.latent import SubjectLatent

LABEL_LV_CAVITY, LABEL_LV_MYOCARDIUM, LABEL_RV_CAVITY = 1, 2, 3

# Angles of the territories around the LV in the image, relative to the septum (towards the RV).
_TERRITORY_ANGLE_DEG = {"anterior": -90.0, "inferior": 90.0, "lateral": 180.0}


@dataclass(frozen=True)
class SyntheticCine:
    """image: (X, Y, Z, T) int16; labels: (X, Y, Z, T) uint8; spacing_mm: (dx, dy, dz);
    frame_interval_ms: time between frames."""

    image: np.ndarray
    labels: np.ndarray
    spacing_mm: tuple[float, float, float]
    frame_interval_ms: float


def volume_curve(
    t_s: np.ndarray,
    rr_s: float,
    edv_ml: float,
    ef: float,
    ejection_start_s: float,
    end_systole_s: float,
    early_filling_fraction: float,
    atrial_start_s: float | None = None,
) -> np.ndarray:
    """Cavity volume (mL) at times ``t_s`` after the R wave, over one RR interval; V(0) = V(RR) = EDV.

    atrial_start_s: onset of atrial contraction (default RR - 120 ms); the kick ends at the next R wave.
    """
    stroke = edv_ml * ef
    t = np.asarray(t_s, dtype=float)
    ejection_start = min(ejection_start_s, end_systole_s - 0.1)
    u = np.clip((t - ejection_start) / (end_systole_s - ejection_start), 0.0, 1.0)
    ejected = 0.85 * (1.0 - (1.0 - u) ** 2) + 0.15 * u  # fast early ejection, still emptying at ES

    relaxation_s = 0.07
    atrial_start = rr_s - 0.12 if atrial_start_s is None else atrial_start_s
    atrial_start = min(max(atrial_start, end_systole_s + relaxation_s + 0.02), rr_s - 0.04)
    after = np.maximum(t - end_systole_s, 0.0)
    isovolumic = 0.03 * np.clip(after / relaxation_s, 0.0, 1.0)
    passive_end = max(atrial_start - end_systole_s - relaxation_s, 1e-3)
    passive = 1.0 - np.exp(-np.maximum(after - relaxation_s, 0.0) / 0.07)
    passive = passive / (1.0 - np.exp(-passive_end / 0.07) + 1e-12)
    passive = np.clip(passive, 0.0, 1.0)
    s = np.clip((t - atrial_start) / (rr_s - atrial_start), 0.0, 1.0)
    atrial = s * s * (3.0 - 2.0 * s)  # smoothstep
    early = early_filling_fraction - 0.03
    refilled = isovolumic + early * passive + (1.0 - early_filling_fraction) * atrial
    return np.where(t <= end_systole_s, edv_ml - stroke * ejected, edv_ml - stroke + stroke * refilled)


def cardiac_timing(latent: SubjectLatent) -> tuple[float, float]:
    """(start of ejection, end-systole), seconds after the trigger, at the mean RR: QRS onset + PEP, and
    QRS onset + QS2 (PEP + LVET)."""
    return latent.ejection_start_s, latent.end_systole_s


def _smooth_field(rng: np.random.Generator, size: int, scale_px: float) -> np.ndarray:
    """A smooth random texture in [0, 1] (Gaussian-filtered white noise through the FFT)."""
    noise = rng.standard_normal((size, size))
    frequencies = np.fft.fftfreq(size)
    kernel = np.exp(-0.5 * (frequencies[:, None] ** 2 + frequencies[None, :] ** 2) * (2 * np.pi * scale_px) ** 2)
    field = np.real(np.fft.ifft2(np.fft.fft2(noise) * kernel))
    field -= field.min()
    return field / max(field.max(), 1e-9)


def render_cine(latent: SubjectLatent, rng: np.random.Generator, image_size: int, pixel_mm: float, n_slices: int, n_frames: int) -> SyntheticCine:
    """Draw the short-axis stack over one cardiac cycle, with its label masks."""
    rr = latent.rr_s
    frame_times = np.arange(n_frames) * rr / n_frames
    ejection_start, end_systole = cardiac_timing(latent)
    # The atria contract ~70 ms after the next beat's P wave onset (which is PR before its QRS onset).
    atrial_start = rr + latent.mechanical_qrs_onset_s - latent.mechanical_pr_s + 0.07
    lv_volume = volume_curve(frame_times, rr, latent.lv_edv_ml, latent.lv_ef, ejection_start, end_systole,
                             latent.early_filling_fraction, atrial_start)
    rv_volume = volume_curve(frame_times, rr, latent.rv_edv_ml, latent.rv_ef, ejection_start + 0.01, end_systole,
                             latent.early_filling_fraction, atrial_start)

    # Geometry: EDV = 2/3 pi (rho L)^2 L for a half prolate ellipsoid of length L and sphericity rho.
    length_mm = (3.0 * latent.lv_edv_ml * 1000.0 / (2.0 * np.pi * latent.sphericity ** 2)) ** (1.0 / 3.0)
    slice_mm = length_mm / n_slices
    depth = (np.arange(n_slices) + 0.5) / n_slices
    profile = np.sqrt(1.0 - depth ** 2)  # (Z,) radius of each slice relative to the base
    disk_sum = np.pi * slice_mm * np.sum(profile ** 2)  # mm: volume = radius^2 * disk_sum
    cavity_radius = np.sqrt(lv_volume * 1000.0 / disk_sum)[:, None] * profile[None, :]  # (T, Z) mm
    wall_area = latent.lv_mass_g / MYOCARDIAL_DENSITY_G_PER_ML * 1000.0 / disk_sum * profile[None, :] ** 2  # (1, Z) mm^2/pi
    # RV crescent of half-width `span` rad around the septum; its slice area A = (pi/2) span R h + (2/3) span h^2.
    span = rng.uniform(1.2, 1.45)
    rv_area = (rv_volume * 1000.0 / (slice_mm * np.sum(profile ** 2)))[:, None] * profile[None, :] ** 2  # (T, Z) mm^2
    epi_radius_mean = np.sqrt(cavity_radius ** 2 + wall_area)
    a, b = 2.0 / 3.0 * span, np.pi / 2.0 * span * epi_radius_mean
    rv_depth = (-b + np.sqrt(b ** 2 + 4.0 * a * rv_area)) / (2.0 * a)  # (T, Z) mm

    # Pixel grid (mm) around the LV centre, which sits off the image centre. Arrays are (T, Z, Y, X), so
    # per-pixel fields (1, 1, Y, X) broadcast along the slow axes, in float32: this is the generator's hot
    # path (~1 M voxels a subject). The result is handed to NIfTI as the (X, Y, Z, T) transposed view.
    f32 = np.float32
    centre = rng.normal(0.0, 6.0, size=2) + np.array([8.0, 0.0])
    coordinates = (np.arange(image_size) - (image_size - 1) / 2.0) * pixel_mm
    y, x = np.meshgrid(coordinates - centre[1], coordinates - centre[0], indexing="ij")  # (Y, X)
    radius = np.hypot(x, y).astype(f32)
    # Septum points to the image's left, rotated with the heart's electrical axis (a shared shortcut).
    septum = np.deg2rad(180.0 + 0.4 * (latent.electrical_axis_deg - 45.0) + rng.normal(0.0, 8.0))
    theta = np.angle(np.exp(1j * (np.arctan2(y, x) - septum)))  # (Y, X) angle from the septum
    ellipticity = (1.0 + rng.uniform(0.0, 0.05) * np.cos(2.0 * (theta - rng.uniform(0, np.pi)))).astype(f32)

    endo = cavity_radius.astype(f32)[:, :, None, None] * ellipticity  # (T, Z, Y, X) mm
    wall = wall_area.astype(f32)[:, :, None, None] * ellipticity ** 2  # (1, Z, Y, X) mm^2
    if latent.condition == "myocardial_infarction":
        centre_angle = np.deg2rad(_TERRITORY_ANGLE_DEG[latent.infarct_territory])
        half_width = np.deg2rad(25.0 + 90.0 * latent.infarct_size)  # 8-35 % of the LV: 32-57 degrees
        distance = np.abs(np.angle(np.exp(1j * (theta - centre_angle))))
        sector = np.clip((half_width + 0.25 - distance) / 0.5, 0.0, 1.0).astype(f32)  # smooth edge, ~15 deg
        endo += f32(0.8) * sector * (endo[:1] - endo)  # the scar moves 20 % as much as healthy wall
        wall = wall * (f32(1.0) - f32(0.55) * sector)  # and is thinned
    epi = np.sqrt(endo * endo + wall)
    crescent = np.sqrt(np.clip(1.0 - (theta / span) ** 2, 0.0, None)).astype(f32)  # 0 outside the span
    rv_outer = epi + rv_depth.astype(f32)[:, :, None, None] * crescent

    # Signed distances (mm, positive inside) to the three boundaries; endo < epi <= rv_outer, so
    # label = 3 [inside RV outer] - [inside epi] - [inside endo] gives 1 cavity, 2 myocardium, 3 RV, 0 else.
    endo -= radius
    epi -= radius
    rv_outer -= radius
    labels = (3 * (rv_outer > 0).view(np.uint8)) - (epi > 0).view(np.uint8) - (endo > 0).view(np.uint8)

    # Image: tissue background, dark myocardium and ~3 mm RV free wall, bright blood, partial-volume edges
    # (a linear ramp over ~1 pixel), noise.
    background = 0.12 + 0.35 * _smooth_field(rng, image_size, 4.0)
    body = (x / 150.0) ** 2 + ((y + centre[1]) / 115.0) ** 2 < 1.0
    background = np.where(body, background, 0.02).astype(f32)
    blood, muscle = f32(rng.uniform(0.85, 1.0)), f32(rng.uniform(0.22, 0.32))
    gain = f32(rng.uniform(500.0, 1100.0))
    noise_sd = f32(rng.uniform(0.025, 0.05))
    edge = f32(1.0 / (1.2 * pixel_mm))
    rv_span = (crescent > 0.0).astype(f32)

    def inside(distance: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        weight = np.multiply(distance, edge, out=out)
        weight += f32(0.5)
        return np.clip(weight, f32(0.0), f32(1.0), out=weight)

    rv_free_wall = rv_outer + f32(3.0)
    muscle_weight = np.maximum(inside(epi), inside(rv_free_wall, out=rv_free_wall) * rv_span)
    rv_blood = inside(rv_outer, out=rv_outer)
    rv_blood *= rv_span
    rv_blood *= epi <= 0
    blood_weight = np.maximum(inside(endo, out=endo), rv_blood)
    image = muscle_weight
    image *= muscle - background
    image += background
    blood_weight *= blood - image
    image += blood_weight
    noise = rng.standard_normal(image.shape, dtype=f32)
    noise *= noise_sd
    image += noise
    image *= gain
    image = np.clip(np.rint(image, out=image), 0, 32767, out=image).astype(np.int16)

    return SyntheticCine(
        image=image.transpose(3, 2, 1, 0),  # (X, Y, Z, T) view, Fortran-contiguous like NIfTI on disk
        labels=labels.transpose(3, 2, 1, 0),
        spacing_mm=(pixel_mm, pixel_mm, float(round(slice_mm, 3))),
        frame_interval_ms=float(rr * 1000.0 / n_frames),
    )
