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
``write_description``), the arrays (``open_arrays``: preallocated, so a full disk is one error up front, never a
SIGBUS mid-build), the checks that a folder's files agree (``load_array``, ``check_index``: a partly copied or
tampered cache is a named ``CacheDamagedError``, never a bare IndexError later) and the reader of a finished cache
(``Cache``); ``subject`` preprocesses one subject, ``build`` builds and resumes a cache, ``merge`` joins the shards of
a cluster build. Tables and ``cache.json`` are written atomically (``paths.written_atomically``).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
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
# Everything a cache folder (or a killed build's leftovers) may hold; any other file means --out is someone's folder.
CACHE_FILES = frozenset({DESCRIPTION_FILE, "ecg.npy", "cmr.npy", "index.csv", "failures.csv", "rows.jsonl", "failures.jsonl"})


class CacheMismatchError(RuntimeError):
    """A cache folder built from another manifest, config or kit version."""


class CacheDamagedError(CacheMismatchError):
    """A cache folder whose files disagree or do not read: a partial copy, a truncated array, an index whose rows
    lie beyond the arrays or repeat a subject. The message names the file."""


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


def foreign_files(folder: Path) -> list[str]:
    """Names of the files in a cache folder that are no cache file (``CACHE_FILES``) and no write in progress,
    sorted: a non-empty list means the folder is someone else's."""
    return sorted(p.name for p in folder.iterdir() if p.name not in CACHE_FILES and not paths.is_temporary(p))


def listed(names: list[str], most: int = 5) -> str:
    """The first ``most`` names, comma-separated, with ", ..." when there are more."""
    return ", ".join(names[:most]) + (", ..." if len(names) > most else "")


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
    """Write a cache folder's description (``cache.json``, indented JSON), atomically: a full disk or a kill keeps
    the previous one."""
    paths.write_text_atomically(description_path(folder), json.dumps(description, indent=1))


def array_shapes(config: PreprocessConfig) -> tuple[tuple[int, ...], tuple[int, ...]]:
    cmr = (config.cmr.n_frames, config.cmr.size, config.cmr.size)
    if config.cmr.n_slices > 1:
        cmr = (config.cmr.n_slices, *cmr)
    return (12, config.ecg.n_samples), cmr


ARRAY_FILES = ("ecg.npy", "cmr.npy")
HEADER_BYTES = 4096  # more than a .npy header takes (128 bytes for these shapes): the margin of the free-space check
CANNOT_PREALLOCATE = frozenset({errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS})  # filesystems without fallocate


def array_bytes(n: int, config: PreprocessConfig) -> int:
    """Bytes the two float16 arrays of ``n`` subjects take on disk (headers included, generously)."""
    return sum(2 * n * int(np.prod(shape)) + HEADER_BYTES for shape in array_shapes(config))


def open_arrays(out: Path, n: int, config: PreprocessConfig, create: bool):
    """(ecg, cmr) memory maps of a cache folder: created for ``n`` subjects (``create``) or opened to resume.

    Their disk space is reserved up front (free space checked before creating, then ``posix_fallocate``), so a full
    disk is one ``paths.DiskFullError`` naming the folder and the bytes needed, before any subject is processed,
    instead of a SIGBUS when a write into the map finds no block (which killed the build and orphaned its workers).
    Arrays this call created are removed again when the space cannot be reserved."""
    ecg_shape, cmr_shape = array_shapes(config)
    if create:
        replaced = sum(_allocated_bytes(out / name) for name in ARRAY_FILES)  # freed when the files are recreated
        paths.check_free_space(out, array_bytes(n, config) - replaced, f"the cache arrays of {n} subjects")
    mode = "w+" if create else "r+"
    try:
        ecg = np.lib.format.open_memmap(out / "ecg.npy", mode=mode, dtype=np.float16, shape=(n, *ecg_shape) if create else None)
        cmr = np.lib.format.open_memmap(out / "cmr.npy", mode=mode, dtype=np.float16, shape=(n, *cmr_shape) if create else None)
        for name in ARRAY_FILES:
            _preallocate(out / name)
    except OSError as error:
        if create:
            for name in ARRAY_FILES:
                (out / name).unlink(missing_ok=True)
        if paths.is_disk_full(error):
            raise paths.disk_full(out, f"the cache arrays of {n} subjects", array_bytes(n, config), error) from error
        raise
    return ecg, cmr


def _allocated_bytes(path: Path) -> int:
    try:
        return path.stat().st_blocks * 512
    except (FileNotFoundError, AttributeError):  # absent, or a platform without st_blocks
        return 0


def _preallocate(path: Path) -> None:
    """Reserve the disk blocks of a whole file (a no-op for blocks it already has; data unchanged)."""
    if not hasattr(os, "posix_fallocate"):
        return
    with open(path, "rb+") as handle:
        size = os.fstat(handle.fileno()).st_size
        try:
            os.posix_fallocate(handle.fileno(), 0, size)
        except OSError as error:
            if error.errno not in CANNOT_PREALLOCATE:  # this filesystem cannot: the free-space check stands alone
                raise


def load_array(path: Path) -> np.ndarray:
    """A cache array, memory-mapped read-only; ``CacheDamagedError`` naming the file when it is absent or does not
    read as a .npy (truncated by a partial copy, or not an array)."""
    try:
        return np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise CacheDamagedError(f"{path}: missing; the cache is incomplete (partly copied?): copy it again or rebuild it") from None
    except (ValueError, OSError, EOFError) as error:
        raise CacheDamagedError(f"{path}: not a readable array ({error}); the cache is damaged or partly copied: "
                                "copy it again or rebuild it") from None


def read_index(folder: Path) -> pd.DataFrame:
    """A cache folder's ``index.csv``; ``CacheDamagedError`` naming it when it is absent or does not parse."""
    path = Path(folder) / "index.csv"
    try:
        return read_kit_csv(path, id_columns=("subject_id", "flags"))  # flags: "" is none
    except FileNotFoundError:
        raise CacheDamagedError(f"{path}: missing; the cache is incomplete (partly copied?): copy it again or rebuild it") from None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise CacheDamagedError(f"{path}: does not read as the cache's index ({error})") from None


def check_arrays(folder: Path, ecg: np.ndarray, cmr: np.ndarray, n_subjects: int, config: PreprocessConfig) -> None:
    """``CacheDamagedError`` unless both arrays hold ``n_subjects`` rows (cache.json's count) of the config's shapes."""
    ecg_shape, cmr_shape = array_shapes(config)
    for name, array, shape in (("ecg.npy", ecg, ecg_shape), ("cmr.npy", cmr, cmr_shape)):
        if array.dtype != np.float16 or tuple(array.shape) != (n_subjects, *shape):
            raise CacheDamagedError(f"{Path(folder) / name}: holds {array.dtype} {tuple(array.shape)}, but {DESCRIPTION_FILE} "
                                    f"describes float16 {(n_subjects, *shape)}; the cache is damaged or partly copied")


def check_index(folder: Path, index: pd.DataFrame, n_rows: int) -> None:
    """``CacheDamagedError`` naming ``index.csv`` unless each of its rows names one subject (no id twice, none
    missing) and one array row in 0..n_rows-1 (no row twice)."""
    path = Path(folder) / "index.csv"
    missing = [c for c in ("subject_id", "row") if c not in index]
    if missing:
        raise CacheDamagedError(f"{path}: no {', '.join(missing)} column")
    ids = index.subject_id
    if ids.isna().any():
        raise CacheDamagedError(f"{path}: {int(ids.isna().sum())} row(s) without a subject_id")
    twice = sorted(ids[ids.duplicated()].unique())
    if twice:
        raise CacheDamagedError(f"{path}: subject(s) listed twice: {twice[:5]}")
    rows = pd.to_numeric(index.row, errors="coerce")
    bad = index.subject_id[~(rows.notna() & (rows % 1 == 0) & (rows >= 0) & (rows < n_rows))].tolist()
    if bad:
        raise CacheDamagedError(f"{path}: {len(bad)} row number(s) outside the arrays' 0..{n_rows - 1} (subjects "
                                f"{bad[:5]}); the cache is damaged or partly copied")
    if rows.duplicated().any():
        raise CacheDamagedError(f"{path}: array row(s) {sorted(int(r) for r in rows[rows.duplicated()].unique())[:5]} "
                                "given to two subjects")


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
        index = read_index(folder)
        ecg, cmr = load_array(folder / "ecg.npy"), load_array(folder / "cmr.npy")
        check_arrays(folder, ecg, cmr, int(description.get("n_subjects", len(ecg))), config)
        check_index(folder, index, len(ecg))
        return cls(folder, ecg, cmr, index, config, description["fingerprint"], description)

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
