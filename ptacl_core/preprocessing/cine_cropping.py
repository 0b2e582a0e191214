"""Cine preprocessing: (X, Y, Z, T) at any size and frame count -> (n_slices, n_frames, size, size) in [0, 1].

View selection, a heart-centred crop of ``crop_mm`` (from the labels when given, else from where the
intensity varies most over the cycle), bilinear resize, cyclic resampling of time to ``n_frames``,
percentile intensity scaling. End-diastole is frame 0 (the R-wave trigger); end-systole the frame with the
smallest LV cavity (labels) or, without labels, the darkest frame of the central blood pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ptacl_core.preprocessing.config import CmrConfig

LV_CAVITY = 1


class CmrQualityError(ValueError):
    """The cine was read but cannot be preprocessed (e.g. a view that the stack does not have)."""


@dataclass(frozen=True)
class PreprocessedCine:
    """cine: (n_slices, n_frames, size, size) float32 in [0, 1]; ed_frame, es_frame in the new frame count;
    centre_mm: crop centre in the image plane; flags: e.g. ``es_outside_window`` (see ``end_systole_frame``)."""

    cine: np.ndarray
    ed_frame: int
    es_frame: int
    centre_mm: tuple[float, float]
    flags: tuple[str, ...] = ()


# The CMR quality gate: a cine that fails one of these is one subject's failure ("cmr_quality"), with the reason.
MIN_FRAMES = 8  # a cine cycle has 20-50 frames; fewer cannot be aligned with the ECG's phases
MIN_IMAGE_PX = 32  # in-plane pixels, each side
MIN_MOTION = 1e-3  # mean temporal std / intensity range; real cines measure 0.01-0.06
ES_WINDOW = (0.1, 0.9)  # end-systole lies between these fractions of the cycle (it is ~35 % of RR)


def check_cine_quality(image: np.ndarray, slices: list[int] | None = None) -> None:
    """Refuse (``CmrQualityError`` with the reason) a cine that is blank or constant, has too few frames, is too
    small to hold a heart, or does not move. image: (X, Y, Z, T); slices: the view's slices (default all)."""
    n_x, n_y, _, n_frames = image.shape
    if n_frames < MIN_FRAMES:
        raise CmrQualityError(f"{n_frames} frame(s): a cine needs at least {MIN_FRAMES} over the cycle")
    if min(n_x, n_y) < MIN_IMAGE_PX:
        raise CmrQualityError(f"image is {n_x} x {n_y} pixels: too small to hold a heart (at least {MIN_IMAGE_PX} a side)")
    region = image if slices is None else image[:, :, slices, :]
    low, high = np.percentile(region, (1, 99))
    if not high > low:
        raise CmrQualityError(f"the image is blank or constant (1st-99th percentile {low:g}-{high:g})")
    motion = float(region.std(axis=-1).mean() / (high - low))
    if motion < MIN_MOTION:
        raise CmrQualityError(f"no motion across the {n_frames} frames (relative temporal variation {motion:.1e} "
                              f"< {MIN_MOTION:g}): a static image, not a cine")


def select_slices(image: np.ndarray, labels: np.ndarray | None, view: str) -> list[int]:
    """Slice indices for the view. Short axis: with labels, the slices holding LV cavity at ED; else all."""
    n_slices = image.shape[2]
    if view == "la_4ch":
        if n_slices != 1:
            raise CmrQualityError(f"la_4ch expects a single long-axis slice, got {n_slices} slices")
        return [0]
    candidates = list(range(n_slices))
    if labels is not None:
        ed = labels[..., 0] if labels.ndim == 4 else labels
        with_lv = [z for z in range(n_slices) if np.any(ed[:, :, z] == LV_CAVITY)]
        candidates = with_lv or candidates
    if view == "sa_mid":
        return [candidates[len(candidates) // 2]]
    if len(candidates) < 3:
        raise CmrQualityError(f"sa_three needs 3 short-axis slices, the stack has {len(candidates)}")
    return [candidates[round(q * (len(candidates) - 1))] for q in (0.2, 0.5, 0.8)]


def heart_centre_px(image: np.ndarray, labels: np.ndarray | None, slices: list[int],
                    spacing_mm: tuple[float, float] = (1.0, 1.0), blur_mm: float = 15.0) -> tuple[float, float]:
    """Crop centre (x, y) in pixels: LV cavity centroid at ED, else the peak of temporal intensity variation.

    The variation is largest on the moving walls, a ring around the cavity: a ``blur_mm`` Gaussian turns
    the ring into a blob centred on the ventricles.
    """
    if labels is not None:
        ed = labels[..., 0] if labels.ndim == 4 else labels
        mask = ed[:, :, slices] == LV_CAVITY
        if mask.any():
            x, y, _ = np.nonzero(mask)
            return float(x.mean()), float(y.mean())
    variation = image[:, :, slices, :].std(axis=-1).mean(axis=-1)  # (X, Y)
    variation = ndimage.gaussian_filter(variation, sigma=(blur_mm / spacing_mm[0], blur_mm / spacing_mm[1]))
    x, y = np.unravel_index(int(np.argmax(variation)), variation.shape)
    return float(x), float(y)


def crop_and_resize(frames: np.ndarray, centre_px: tuple[float, float], spacing_mm: tuple[float, float],
                    crop_mm: float, size: int) -> np.ndarray:
    """frames: (X, Y, T) -> (T, size, size), rows = y, columns = x; bilinear; outside the image is 0."""
    step_x, step_y = crop_mm / size / spacing_mm[0], crop_mm / size / spacing_mm[1]
    offsets = np.arange(size) - (size - 1) / 2.0
    xs = centre_px[0] + offsets * step_x
    ys = centre_px[1] + offsets * step_y
    n_frames = frames.shape[-1]
    grid_y, grid_x, grid_t = np.meshgrid(ys, xs, np.arange(n_frames), indexing="ij")  # (size, size, T)
    sampled = ndimage.map_coordinates(frames, [grid_x, grid_y, grid_t], order=1, mode="constant", cval=0.0)
    return np.moveaxis(sampled, -1, 0)  # (T, size, size)


def resample_cycle(cine: np.ndarray, n_frames: int) -> np.ndarray:
    """Linear resampling of a periodic sequence (..., T, H, W) along T to ``n_frames`` (frame 0 kept)."""
    n_source = cine.shape[-3]
    if n_source == n_frames:
        return cine
    position = np.arange(n_frames) * n_source / n_frames
    lower = np.floor(position).astype(int)
    weight = (position - lower)[:, None, None]
    return (1.0 - weight) * cine[..., lower % n_source, :, :] + weight * cine[..., (lower + 1) % n_source, :, :]


def _smallest_in_window(values: np.ndarray) -> tuple[int, bool]:
    """argmin of a per-frame curve, restricted to ``ES_WINDOW`` of the cycle; True when the unrestricted argmin
    lay outside it (an ED-like frame at either end of the cycle: the curve measured the wrong thing)."""
    n_frames = len(values)
    first = max(int(np.ceil(ES_WINDOW[0] * n_frames)), 1)
    last = min(int(np.floor(ES_WINDOW[1] * n_frames)), n_frames - 2)
    overall = int(np.argmin(values))
    inside = first + int(np.argmin(values[first:last + 1]))
    return inside, not first <= overall <= last


def end_systole_frame(image: np.ndarray, labels: np.ndarray | None, slices: list[int], centre_px,
                      spacing_mm: tuple[float, float] = (1.0, 1.0), radius_mm: float = 40.0) -> tuple[int, bool]:
    """(source frame index of end-systole, whether it was moved into the ES window).

    ES is the smallest LV cavity in the labels or, without labels, the frame with the fewest bright (blood-pool)
    pixels within ``radius_mm`` of the heart centre, searched within ``ES_WINDOW`` of the cycle: an ES in the
    first or last tenth is an ED, and on long-axis views the bright-pixel count can bottom out there (atria and
    outflow fill as the ventricle empties)."""
    if labels is not None and labels.ndim == 4 and labels.shape[-1] == image.shape[-1]:
        cavity = (labels[:, :, slices, :] == LV_CAVITY).sum(axis=(0, 1, 2)).astype(float)
        if cavity[0] > 0:
            cavity[cavity == 0] = np.inf  # unlabelled frames are not an empty cavity
            frame, moved = _smallest_in_window(cavity)
            if np.isfinite(cavity[frame]):  # else no labelled frame in the window: the image decides
                return frame, moved
    x, y = np.meshgrid(np.arange(image.shape[0]), np.arange(image.shape[1]), indexing="ij")
    near = np.hypot((x - centre_px[0]) * spacing_mm[0], (y - centre_px[1]) * spacing_mm[1]) < radius_mm
    region = image[:, :, slices, :][near]  # (pixels, slices, T)
    low, high = np.percentile(region, (5, 99))
    bright = (region > (low + high) / 2.0).sum(axis=(0, 1))
    return _smallest_in_window(bright)


def preprocess_cmr(image: np.ndarray, spacing_mm: tuple[float, float, float], config: CmrConfig,
                    labels: np.ndarray | None = None) -> PreprocessedCine:
    """image: (X, Y, Z, T); labels: optional (X, Y, Z, T) or (X, Y, Z) map with 1 = LV cavity."""
    if image.ndim != 4:
        raise CmrQualityError(f"cine must be (X, Y, Z, T), got shape {image.shape}")
    if labels is not None and (labels.shape[:3] != image.shape[:3] or (labels.ndim == 4 and labels.shape[3] not in (1, image.shape[3]))):
        raise CmrQualityError(f"labels {labels.shape} do not match the image {image.shape}")
    slices = select_slices(image, labels, config.view)
    check_cine_quality(image, slices)
    centre = heart_centre_px(image, labels, slices, spacing_mm[:2])
    crops = np.stack([crop_and_resize(image[:, :, z, :], centre, spacing_mm[:2], config.crop_mm, config.size)
                      for z in slices])  # (S, T0, size, size)
    es_source, es_moved = end_systole_frame(image, labels, slices, centre, spacing_mm[:2])
    n_source = image.shape[-1]
    crops = resample_cycle(crops, config.n_frames)
    low, high = np.percentile(crops, config.intensity_percentiles)
    scaled = np.clip((crops - low) / max(high - low, 1e-6), 0.0, 1.0).astype(np.float32)
    es_frame = int(round(es_source * config.n_frames / n_source)) % config.n_frames
    flags = ("es_outside_window",) if es_moved else ()
    return PreprocessedCine(scaled, 0, es_frame, (centre[0] * spacing_mm[0], centre[1] * spacing_mm[1]), flags)
