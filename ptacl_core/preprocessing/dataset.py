"""A torch Dataset over the training cache: one paired ECG + cine per item, with optional augmentation.

Each item is a dict::

    ecg         (12, L) float32            cmr     (T, S, S) float32, or (Z, T, S, S)
    rpeaks      (max_beats,) int64, -1 padded, sample indices into ``ecg`` (shifted with any crop)
    phenotypes  (10,) float32, NaN where unknown, in ``PHENOTYPES`` order
    subject_id  str
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

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
        """One subject (the keys of the module docstring)."""
        batch = self.batch([item])
        return {key: value[0] for key, value in batch.items()}

    def batch(self, items) -> dict:
        """A whole batch at once (the training input path): one fancy-indexed read of the cache's arrays and one
        vectorised augmentation (``augment_batch``) instead of a Python loop and a collate over items.

        items: dataset positions (B,). Returns ecg (B, 12, L), cmr (B, [Z,] T, S, S), rpeaks (B, MAX_BEATS),
        phenotypes (B, 10) tensors and subject_id (a list of B ids). The augmentation is a function of (seed,
        epoch, the batch's subjects): reproducible whatever the worker or process."""
        positions = self.positions[np.asarray(items, dtype=np.int64)]
        rows = self._rows[positions]
        ecg = torch.from_numpy(np.asarray(self.cache.ecg[rows], dtype=np.float32))
        cmr = torch.from_numpy(np.asarray(self.cache.cmr[rows], dtype=np.float32))
        rpeaks = [self._rpeaks[p] for p in positions]
        if self.augmentation is not None:
            rng = np.random.default_rng([self.seed, self.epoch, *positions.tolist()])
            ecg, cmr, rpeaks = augment_batch(ecg, cmr, rpeaks, self.fs, self.augmentation, rng)
        padded = np.full((len(positions), MAX_BEATS), -1, dtype=np.int64)
        for index, peaks in enumerate(rpeaks):
            padded[index, : min(len(peaks), MAX_BEATS)] = peaks[:MAX_BEATS]
        return {"ecg": ecg.contiguous(), "cmr": cmr.contiguous(), "rpeaks": torch.from_numpy(padded),
                "phenotypes": torch.from_numpy(self._phenotypes[positions].copy()),
                "subject_id": [self._subject_ids[p] for p in positions]}


class BatchView(Dataset):
    """A map-style view whose items are whole batches: ``DataLoader(BatchView(dataset), batch_size=None,
    sampler=BatchSampler(...))`` hands each list of positions to ``CacheDataset.batch`` (workers included)."""

    def __init__(self, dataset: CacheDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, items) -> dict:
        return self.dataset.batch(items)


def batch_loader(dataset: CacheDataset, batch_size: int, sampler=None, shuffle: bool = False, generator=None,
                 drop_last: bool = False, num_workers: int = 0):
    """A DataLoader over ``dataset`` that reads and augments whole batches (``CacheDataset.batch``); ``sampler``
    (e.g. a DistributedSampler) or ``shuffle`` with ``generator`` choose the order, as for a plain DataLoader."""
    if sampler is None:
        sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
    return DataLoader(BatchView(dataset), batch_size=None, sampler=BatchSampler(sampler, batch_size, drop_last),
                      num_workers=num_workers)


def augment_batch(ecg: torch.Tensor, cmr: torch.Tensor, rpeaks: list[np.ndarray], fs: float, augmentation: Augmentation,
                  rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray]]:
    """Augment a batch: ecg (B, 12, L), cmr (B, [Z,] T, S, S), rpeaks per subject; parameters drawn per subject from
    ``rng`` (``Augmentation``'s transforms), applied in a few tensor operations (the per-subject reference is in
    the tests)."""
    batch = ecg.shape[0]
    if augmentation.ecg_crop_s is not None:
        length = int(round(augmentation.ecg_crop_s * fs))
        if length > ecg.shape[-1]:
            raise ValueError(f"ecg_crop_s {augmentation.ecg_crop_s} s exceeds the cached {ecg.shape[-1] / fs} s")
        starts = rng.integers(0, ecg.shape[-1] - length + 1, size=batch)
        ecg = torch.stack([ecg[i, :, start:start + length] for i, start in enumerate(starts)])
        rpeaks = [peaks[(peaks >= start) & (peaks < start + length)] - start for peaks, start in zip(rpeaks, starts, strict=True)]
    scale = torch.from_numpy(rng.uniform(1.0 - augmentation.ecg_amplitude, 1.0 + augmentation.ecg_amplitude, batch))
    noise_generator = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
    noise = torch.randn(ecg.shape, generator=noise_generator) * augmentation.ecg_noise
    ecg = ecg * scale.to(ecg.dtype)[:, None, None] + noise
    cmr = transform_cmr(cmr, *cmr_parameters(augmentation, rng, batch, cmr.shape[-1]))
    return ecg, cmr, rpeaks


def cmr_parameters(augmentation: Augmentation, rng: np.random.Generator, batch: int, size: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per subject: rotation (rad), zoom, shift (as a fraction of the half-width, (B, 2)) and intensity scale."""
    angle = np.radians(rng.uniform(-augmentation.cmr_rotation_deg, augmentation.cmr_rotation_deg, batch))
    zoom = rng.uniform(1.0 - augmentation.cmr_zoom, 1.0 + augmentation.cmr_zoom, batch)
    shift = rng.uniform(-augmentation.cmr_shift_px, augmentation.cmr_shift_px, size=(batch, 2)) * 2.0 / size
    intensity = rng.uniform(1.0 - augmentation.cmr_intensity, 1.0 + augmentation.cmr_intensity, batch)
    return angle, zoom, shift, intensity


def transform_cmr(cmr: torch.Tensor, angle: np.ndarray, zoom: np.ndarray, shift: np.ndarray, intensity: np.ndarray
                  ) -> torch.Tensor:
    """One affine per subject for all its frames and slices, then intensity scaling, clipped to [0, 1].
    cmr: (B, ..., S, S); angle, zoom, intensity (B,); shift (B, 2)."""
    batch, size = cmr.shape[0], cmr.shape[-1]
    cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
    theta = torch.tensor(np.stack([np.stack([cos, -sin, shift[:, 0]], -1), np.stack([sin, cos, shift[:, 1]], -1)], 1),
                         dtype=torch.float32)  # (B, 2, 3)
    frames = cmr.reshape(batch, -1, size, size)  # frames (and slices) as channels: one grid per subject
    grid = torch.nn.functional.affine_grid(theta, list(frames.shape), align_corners=False)
    moved = torch.nn.functional.grid_sample(frames, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    scale = torch.as_tensor(intensity, dtype=moved.dtype)[:, None, None, None]
    return (moved * scale).clamp(0.0, 1.0).reshape(cmr.shape)
