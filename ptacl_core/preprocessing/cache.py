"""The training cache: memory-mapped arrays plus an index keyed by subject_id (METHOD.md §2).

Layout of a cache folder::

    cache.json      fingerprint (manifest + phenotypes + preprocessing config + kit version), config, shapes, shard
    ecg.npy         (N, 12, L) float16, memory-mapped
    cmr.npy         (N, T, S, S) float16, or (N, Z, T, S, S) for multi-slice views
    rows.jsonl      one line per completed subject (written after its arrays are flushed): the resume log
    failures.jsonl  one line per failed subject: stage and reason
    index.csv       subject_id, row, split, rpeaks, ed_frame, es_frame, flags, phenotypes (completed subjects)
    failures.csv    subject_id, stage, reason

Rows are the manifest's subjects in subject_id order, so a subject's row never depends on which others
failed or on the order work finished. A killed build resumes from ``rows.jsonl``; a rebuild of a complete
cache is a no-op; a folder built with another fingerprint is refused.

This module is the layout, the one reader and writer of ``cache.json`` (``read_description``,
``write_description``) and the reader of a finished cache (``Cache``); ``subject`` preprocesses one subject,
``build`` builds and resumes a cache, ``merge`` joins the shards of a cluster build.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ptacl_core import __version__, paths
from ptacl_core.io.csv_cells import read_kit_csv
from ptacl_core.phenotypes import PHENOTYPES
from ptacl_core.preprocessing.config import PreprocessConfig

CACHE_FORMAT = 1
DESCRIPTION_FILE = "cache.json"  # the cache's description; read and written only through this module


class CacheMismatchError(RuntimeError):
    """A cache folder built from another manifest, config or kit version."""


def fingerprint(cohort_dir: Path, config: PreprocessConfig) -> str:
    """sha256 of the manifest and phenotype tables, the preprocessing config and the kit version."""
    digest = hashlib.sha256()
    for name in ("manifest.csv", "phenotypes.csv"):
        path = cohort_dir / name
        digest.update(path.read_bytes() if path.exists() else b"")
    digest.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    digest.update(__version__.encode())
    return digest.hexdigest()


def default_cache_dir(cohort_dir: Path | str, preset: str) -> Path:
    """``data/cache/<cohort>_<preset>_<fingerprint>``: one folder per (cohort contents, config), so a bigger
    cohort or another preset never collides with an existing cache."""
    cohort_dir = Path(cohort_dir)
    config = PreprocessConfig.preset(preset)
    return paths.data_root() / "cache" / f"{cohort_dir.name}_{preset}_{fingerprint(cohort_dir, config)[:8]}"


def description_path(folder: Path | str) -> Path:
    """``<folder>/cache.json``: where a cache folder describes itself."""
    return Path(folder) / DESCRIPTION_FILE


def is_cache(folder: Path | str) -> bool:
    """Whether ``folder`` holds a cache description (a finished, unfinished or shard cache)."""
    return description_path(folder).exists()


def read_description(folder: Path | str) -> dict:
    """The description of a cache folder (``cache.json``: format, fingerprint, kit_version, config, n_subjects,
    cohort, shard, complete); FileNotFoundError naming the folder when it holds none."""
    folder = Path(folder)
    if not is_cache(folder):
        raise FileNotFoundError(f"{folder}: not a cache (no {DESCRIPTION_FILE}); build it with `python -m ptacl_core preprocess`")
    return json.loads(description_path(folder).read_text())


def write_description(folder: Path | str, description: dict) -> None:
    """Write a cache folder's description (``cache.json``, indented JSON)."""
    description_path(folder).write_text(json.dumps(description, indent=1))


def array_shapes(config: PreprocessConfig) -> tuple[tuple[int, ...], tuple[int, ...]]:
    cmr = (config.cmr.n_frames, config.cmr.size, config.cmr.size)
    if config.cmr.n_slices > 1:
        cmr = (config.cmr.n_slices, *cmr)
    return (12, config.ecg.n_samples), cmr


def open_arrays(out: Path, n: int, config: PreprocessConfig, create: bool):
    ecg_shape, cmr_shape = array_shapes(config)
    mode = "w+" if create else "r+"
    ecg = np.lib.format.open_memmap(out / "ecg.npy", mode=mode, dtype=np.float16, shape=(n, *ecg_shape) if create else None)
    cmr = np.lib.format.open_memmap(out / "cmr.npy", mode=mode, dtype=np.float16, shape=(n, *cmr_shape) if create else None)
    return ecg, cmr


def mid_slice(cine: np.ndarray) -> np.ndarray:
    """(T, S, S) frames of one cached cine: the mid-ventricular slice of a (Z, T, S, S) multi-slice cine
    (slice Z // 2, base to apex), the cine itself when it is single-slice (T, S, S)."""
    return cine[len(cine) // 2] if cine.ndim == 4 else cine


@dataclass
class Cache:
    """A finished cache opened for reading: memory-mapped arrays and the index (one row per subject)."""

    folder: Path
    ecg: np.ndarray
    cmr: np.ndarray
    index: pd.DataFrame
    config: PreprocessConfig
    fingerprint: str
    description: dict  # cache.json as read when the cache was opened (``read_description``)

    @classmethod
    def open(cls, folder: Path | str, expected_config: PreprocessConfig | None = None) -> Cache:
        folder = Path(folder)
        description = read_description(folder)
        if not description.get("complete"):
            raise CacheMismatchError(f"{folder}: the build did not finish; run the same preprocess command again to resume")
        config = PreprocessConfig.from_dict(description["config"])
        if expected_config is not None and expected_config.to_dict() != config.to_dict():
            raise CacheMismatchError(f"{folder}: built with preprocessing {config.to_dict()}, expected {expected_config.to_dict()}")
        index = read_kit_csv(folder / "index.csv", id_columns=("subject_id", "flags"))  # flags: "" is none
        return cls(folder, np.load(folder / "ecg.npy", mmap_mode="r"), np.load(folder / "cmr.npy", mmap_mode="r"),
                   index, config, description["fingerprint"], description)

    @property
    def cohort(self) -> str:
        """The cohort folder the cache was built from (absolute, as the build recorded it; "" when not recorded)."""
        return self.description.get("cohort") or ""

    def rpeaks(self, position: int) -> np.ndarray:
        text = self.index.rpeaks.iloc[position]
        return np.array([int(v) for v in str(text).split()], dtype=np.int64) if isinstance(text, str) else np.array([], dtype=np.int64)

    def phenotypes(self, names: tuple[str, ...] = PHENOTYPES) -> np.ndarray:
        """(N, len(names)) float phenotypes in ``names`` order (default the ten ``PHENOTYPES``; NaN where
        unknown or absent), in index order."""
        index = self.index
        return np.stack([index[c].to_numpy(dtype=float) if c in index else np.full(len(index), np.nan) for c in names], 1)
