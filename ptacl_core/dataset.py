"""A torch Dataset over the training cache: one paired ECG + cine per item, with optional augmentation.

Each item is a dict::

    ecg         (12, L) float32            cmr     (T, S, S) float32, or (Z, T, S, S)
    rpeaks      (max_beats,) int64, -1 padded, sample indices into ``ecg`` (shifted with any crop)
    phenotypes  (10,) float32, NaN where unknown, in ``PHENOTYPES`` order
    subject_id  str
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ptacl_core.preprocessing.cache import Cache

MAX_BEATS = 48  # 10 s at 250+ bpm


@dataclass(frozen=True)
class Augmentation:
    """Random transforms applied per item (training only).

    ECG: a time crop of ``ecg_crop_s`` (R peaks shifted, those outside dropped; None keeps the whole
    strip), amplitude scaling by U(1 - s, 1 + s), Gaussian noise of ``ecg_noise`` (signal units).
    CMR: intensity scaling by U(1 - s, 1 + s), rotation up to ``cmr_rotation_deg``, translation up to
    ``cmr_shift_px``, zoom by U(1 - z, 1 + z), the same for every frame and slice.
    """

    ecg_crop_s: float | None = None
    ecg_amplitude: float = 0.1
    ecg_noise: float = 0.01
    cmr_intensity: float = 0.1
    cmr_rotation_deg: float = 10.0
    cmr_shift_px: float = 3.0
    cmr_zoom: float = 0.05


class CacheDataset(Dataset):
    """Subjects of one split (or all, ``split=None``) of a cache."""

    def __init__(self, cache: Cache | Path | str, split: str | None = "train", augmentation: Augmentation | None = None,
                 seed: int = 0):
        self.cache = cache if isinstance(cache, Cache) else Cache.open(cache)
        index = self.cache.index
        self.positions = np.arange(len(index)) if split is None else np.flatnonzero(index.split.values == split)
        if len(self.positions) == 0:
            raise ValueError(f"{self.cache.folder}: no subjects in split {split!r}")
        self.augmentation = augmentation
        self.fs = self.cache.config.ecg.fs
        self.seed = seed
        self._phenotypes = self.cache.phenotypes().astype(np.float32)
        # Per-item lookups in plain arrays, not pandas: __getitem__ is the training input hot path.
        self._rows = index.row.to_numpy(dtype=np.int64)
        self._subject_ids = index.subject_id.tolist()
        self._rpeaks = [self.cache.rpeaks(position) for position in range(len(index))]
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.positions)

    def set_epoch(self, epoch: int) -> None:
        """Augmentations are a function of (seed, epoch, item): reproducible across runs and workers."""
        self.epoch = epoch

    def __getitem__(self, item: int) -> dict:
        position = int(self.positions[item])
        row = int(self._rows[position])
        ecg = np.asarray(self.cache.ecg[row], dtype=np.float32)
        cmr = np.asarray(self.cache.cmr[row], dtype=np.float32)
        rpeaks = self._rpeaks[position]
        if self.augmentation is not None:
            rng = np.random.default_rng([self.seed, self.epoch, position])
            ecg, rpeaks = augment_ecg(ecg, rpeaks, self.fs, self.augmentation, rng)
            cmr = augment_cmr(cmr, self.augmentation, rng)
        padded = np.full(MAX_BEATS, -1, dtype=np.int64)
        padded[: min(len(rpeaks), MAX_BEATS)] = rpeaks[:MAX_BEATS]
        return {
            "ecg": torch.from_numpy(np.ascontiguousarray(ecg)),
            "cmr": torch.from_numpy(np.ascontiguousarray(cmr)),
            "rpeaks": torch.from_numpy(padded),
            "phenotypes": torch.from_numpy(self._phenotypes[position].copy()),
            "subject_id": self._subject_ids[position],
        }


def augment_ecg(ecg: np.ndarray, rpeaks: np.ndarray, fs: float, augmentation: Augmentation,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """ecg: (12, L). Returns the augmented (12, L') and R peaks in the new sample frame."""
    if augmentation.ecg_crop_s is not None:
        length = int(round(augmentation.ecg_crop_s * fs))
        if length > ecg.shape[1]:
            raise ValueError(f"ecg_crop_s {augmentation.ecg_crop_s} s exceeds the cached {ecg.shape[1] / fs} s")
        start = int(rng.integers(0, ecg.shape[1] - length + 1))
        ecg = ecg[:, start:start + length]
        rpeaks = rpeaks[(rpeaks >= start) & (rpeaks < start + length)] - start
    scale = rng.uniform(1.0 - augmentation.ecg_amplitude, 1.0 + augmentation.ecg_amplitude)
    noise = rng.normal(0.0, augmentation.ecg_noise, size=ecg.shape).astype(np.float32)
    return (ecg * scale + noise).astype(np.float32), rpeaks


def augment_cmr(cmr: np.ndarray, augmentation: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """cmr: (..., T, S, S) in [0, 1]. One random affine for all frames and slices, then intensity scaling."""
    size = cmr.shape[-1]
    angle = math.radians(rng.uniform(-augmentation.cmr_rotation_deg, augmentation.cmr_rotation_deg))
    zoom = rng.uniform(1.0 - augmentation.cmr_zoom, 1.0 + augmentation.cmr_zoom)
    shift = rng.uniform(-augmentation.cmr_shift_px, augmentation.cmr_shift_px, size=2) * 2.0 / size
    theta = torch.tensor([[math.cos(angle) / zoom, -math.sin(angle) / zoom, shift[0]],
                          [math.sin(angle) / zoom, math.cos(angle) / zoom, shift[1]]], dtype=torch.float32)
    frames = torch.from_numpy(cmr.reshape(-1, 1, size, size))
    grid = torch.nn.functional.affine_grid(theta.expand(frames.shape[0], 2, 3), list(frames.shape), align_corners=False)
    moved = torch.nn.functional.grid_sample(frames, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    scale = rng.uniform(1.0 - augmentation.cmr_intensity, 1.0 + augmentation.cmr_intensity)
    return np.clip(moved.numpy().reshape(cmr.shape) * scale, 0.0, 1.0).astype(np.float32)
