"""``ExploreData``: one cache, its cohort folder (for masks) and the finished runs, read on demand.

Per displayed subject one row of the memory-mapped cache is read; embeddings come from the notebook-03 store,
models, probes and map coordinates are computed on first use and kept in small LRU caches (a few runs at a time),
so switching back and forth between runs costs nothing and memory stays bounded on a large cohort."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ptacl_core.evaluation.inputs import EvaluationInputs
from ptacl_core.evaluation.probing import ProbeConfig
from ptacl_core.explore.compute import map_coordinates, probe_predictions
from ptacl_core.io.cmr import read_nifti_cine, read_nifti_labels
from ptacl_core.io.cohort_tables import read_table
from ptacl_core.methods import METHODS, ordered
from ptacl_core.phenotypes import EVALUATED, PHENOTYPES, label_volume_curves
from ptacl_core.preprocessing.cache import Cache, mid_slice

DEFAULT_METHOD = "ptacl"  # the run a widget opens with when it is there
DEFAULT_BINS = 8  # phase bins drawn when no run says its K
MODELS_KEPT, ARRAYS_KEPT = 3, 8  # LRU sizes: models; embeddings, predictions and maps (per kind)


def label_fractions() -> tuple[float, ...]:
    """Notebook 03's label fractions (``ProbeConfig.fractions``)."""
    return tuple(ProbeConfig().fractions)


class LRU:
    """At most ``size`` values, the least recently used dropped first."""

    def __init__(self, size: int):
        self.size, self.items = size, OrderedDict()

    def get(self, key, make):
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        value = self.items[key] = make()
        while len(self.items) > self.size:
            self.items.popitem(last=False)
        return value

    def __contains__(self, key) -> bool:
        return key in self.items

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class ExploreData:
    """One cache, its cohort folder (for masks) and the finished runs, read on demand."""

    cache: Cache
    cohort_dir: Path | None
    runs: list  # training.runs.RunInfo
    store: Path
    device: str = "cpu"
    runs_dir: Path | None = None
    _models: LRU = field(default_factory=lambda: LRU(MODELS_KEPT), repr=False)
    _embeddings: LRU = field(default_factory=lambda: LRU(ARRAYS_KEPT), repr=False)
    _predictions: LRU = field(default_factory=lambda: LRU(ARRAYS_KEPT), repr=False)
    _maps: LRU = field(default_factory=lambda: LRU(ARRAYS_KEPT), repr=False)
    _manifest: pd.DataFrame | None = field(default=None, repr=False)
    _ids: np.ndarray | None = field(default=None, repr=False)
    _positions: dict | None = field(default=None, repr=False)  # stored id -> position (its first row)
    _stripped: dict | None = field(default=None, repr=False)  # id without surrounding spaces -> positions
    _phenotypes: np.ndarray | None = field(default=None, repr=False)
    _dataset: object = field(default=None, repr=False)  # dataset.CacheDataset over every subject, built once
    _volumes: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def load(cls, cohort_dir=None, cache_dir=None, preset: str = "tiny", runs_dir=None, embeddings_dir=None,
             fast: bool = False, device: str = "cpu") -> ExploreData:
        """``of`` the folders ``EvaluationInputs.resolve`` makes of these parameters (as notebooks 03-05: the
        synthetic cohort, the cache notebook 01 built, ``runs/``, the embedding store)."""
        return cls.of(EvaluationInputs.resolve(cohort_dir, cache_dir, preset, runs_dir, embeddings_dir, fast=fast), device)

    @classmethod
    def of(cls, inputs: EvaluationInputs, device: str = "cpu") -> ExploreData:
        """The cache and the finished runs of ``inputs``; runs trained on another cache are left out
        (``runs_for_cache``, as in ``Comparison.of``)."""
        cache = inputs.open_cache()
        runs, _ = inputs.runs(cache)
        cohort = inputs.cohort_dir if (inputs.cohort_dir / "manifest.csv").exists() else None
        return cls(cache, cohort, runs, inputs.embeddings_dir, device, inputs.runs_dir)

    # subjects
    @property
    def index(self) -> pd.DataFrame:
        return self.cache.index

    @property
    def subject_ids(self) -> np.ndarray:
        if self._ids is None:
            self._ids = self.index.subject_id.astype(str).to_numpy()
        return self._ids

    @property
    def splits(self) -> np.ndarray:
        return self.index.split.astype(str).to_numpy()

    @property
    def fs(self) -> float:
        return float(self.cache.config.ecg.fs)

    def position(self, subject_id: str) -> int:
        """The subject's position in the cache index (the id as stored, or typed with other surrounding spaces:
        ``resolve``); a ValueError naming an unknown or ambiguous id."""
        if self._positions is None:
            self._positions, self._stripped = {}, {}
            for position, subject in enumerate(self.subject_ids):
                if subject not in self._positions:
                    self._positions[subject] = position
                    self._stripped.setdefault(subject.strip(), []).append(position)
        text = str(subject_id)
        position = self._positions.get(text)
        if position is not None:
            return position
        candidates = self._stripped.get(text.strip(), [])
        if len(candidates) > 1:
            stored = [self.subject_ids[c] for c in candidates]
            raise ValueError(f"subject id {text!r} is ambiguous without its surrounding spaces: the cache "
                             f"{self.cache.folder} has {stored!r}; type the id exactly")
        if not candidates:
            raise ValueError(f"unknown subject id {subject_id!r}: not in the cache {self.cache.folder}")
        return candidates[0]

    def resolve(self, subject_id: str) -> str:
        """The id as the cache stores it: ``subject_id`` itself when the cache has it, else the one stored id equal
        to it once surrounding spaces are stripped from both (ids such as ``" 0007 "`` keep their spaces; a typed
        ``"0007"`` finds it unless another id strips to the same); a ValueError naming an unknown or ambiguous id."""
        return str(self.subject_ids[self.position(subject_id)])

    def _row(self, position: int) -> int:
        return int(self.index.row.iloc[position])

    def phenotypes(self) -> np.ndarray:
        """(N, len(EVALUATED)) the cache's phenotypes (NaN where unknown), read once."""
        if self._phenotypes is None:
            self._phenotypes = self.cache.phenotypes(EVALUATED)
        return self._phenotypes

    def measured_phenotypes(self) -> list[str]:
        """The evaluated phenotypes the cache has a value of for at least one subject."""
        known = np.isfinite(self.phenotypes()).any(axis=0)
        return [name for name, measured in zip(EVALUATED, known, strict=True) if measured]

    def volumes(self) -> np.ndarray:
        """(N, len(PHENOTYPES)) the phenotypes retrieval's relevance is computed on (NaN where unknown), read once."""
        if self._volumes is None:
            self._volumes = self.cache.phenotypes(PHENOTYPES)
        return self._volumes

    def ecg(self, subject_id: str) -> tuple[np.ndarray, np.ndarray]:
        """One subject's (12, L) preprocessed ECG (mV, ``fs`` Hz) and its R peaks (samples): one memmap row."""
        position = self.position(subject_id)
        return np.asarray(self.cache.ecg[self._row(position)], np.float32), self.cache.rpeaks(position)

    def cache_cine(self, subject_id: str) -> np.ndarray:
        """(T, S, S) the cache's cine of one subject (its mid-ventricular slice when it has several): a view of one
        memmap row, nothing read until indexed."""
        frames = self.cache.cmr[self._row(self.position(subject_id))]
        return mid_slice(frames)

    def ed_frame(self, subject_id: str) -> int:
        """The end-diastolic frame of the cache's cine (index.csv ``ed_frame``; 0 when the cache has none)."""
        if "ed_frame" not in self.index:
            return 0
        value = self.index.ed_frame.iloc[self.position(subject_id)]
        return int(value) if np.isfinite(value) else 0

    def frame_timing(self, subject_id: str) -> tuple[float, bool]:
        """(interval between CACHED frames in ms, NaN when unknown; whether preprocessing derived it from the ECG
        because the cine file gives none: index.csv flag ``frame_interval_from_ecg``)."""
        position = self.position(subject_id)
        interval = float(self.index.frame_interval_ms.iloc[position]) if "frame_interval_ms" in self.index else np.nan
        flags = str(self.index["flags"].iloc[position]) if "flags" in self.index else ""
        known = interval if np.isfinite(interval) and interval > 0 else np.nan
        return known, "frame_interval_from_ecg" in flags.split(";")

    def cine(self, subject_id: str) -> dict:
        """The mid short-axis slice over the cycle: from the cohort's own cine with its masks and LV/RV volume
        curves when the cohort folder has them (``cmr_seg`` in the manifest), else the cache's cine.

        Keys: image (T, H, W), masks (T, H, W) uint8 or None, lv_ml and rv_ml (T,) or None, frame_interval_ms
        (between the frames of ``image``; NaN when unknown), interval_from_ecg, source ("cohort" or "cache").
        The interval is the cache's (checked by preprocessing, derived from the ECG for a file without timing),
        never the raw file header's."""
        subject_id = self.resolve(subject_id)  # the stored id: the cohort manifest's key
        position = self.position(subject_id)
        interval, from_ecg = self.frame_timing(subject_id)
        seg_path = self._seg_path(subject_id)
        if seg_path is not None:
            manifest = self._cohort_manifest().set_index("subject_id")
            cine = read_nifti_cine(self.cohort_dir / manifest.loc[str(subject_id), "cmr"])
            labels = read_nifti_labels(seg_path)
            if labels.shape == cine.image.shape:
                volumes = label_volume_curves(labels, cine.spacing_mm)
                middle = cine.image.shape[2] // 2
                source_frames = cine.image.shape[-1]
                if "source_frames" in self.index and np.isfinite(float(self.index.source_frames.iloc[position])):
                    source_frames = int(self.index.source_frames.iloc[position])
                # index.csv holds the interval of the cached frames, which span the same cycle as the source's
                cached_frames = self.cache.cmr.shape[-3]
                return {"image": np.moveaxis(cine.image[:, :, middle], -1, 0).transpose(0, 2, 1),
                        "masks": np.moveaxis(labels[:, :, middle], -1, 0).transpose(0, 2, 1),
                        "lv_ml": volumes[1], "rv_ml": volumes[3],
                        "frame_interval_ms": interval * cached_frames / source_frames,
                        "interval_from_ecg": from_ecg, "source": "cohort"}
        return {"image": np.asarray(self.cache_cine(subject_id), np.float32), "masks": None, "lv_ml": None,
                "rv_ml": None, "frame_interval_ms": interval, "interval_from_ecg": from_ecg, "source": "cache"}

    def batch(self, subject_id: str) -> dict:
        """One subject as the training input path gives it (``dataset.CacheDataset.batch``, no augmentation). The
        dataset (which parses every subject's R peaks once) is built on first use and kept."""
        if self._dataset is None:
            from ptacl_core.preprocessing.dataset import CacheDataset  # lazy: loads torch (explore imports without)

            self._dataset = CacheDataset(self.cache, split=None)
        return self._dataset.batch([self.position(subject_id)])

    def _cohort_manifest(self) -> pd.DataFrame:
        if self._manifest is None:
            self._manifest = read_table(self.cohort_dir / "manifest.csv")
        return self._manifest

    def _seg_path(self, subject_id: str) -> Path | None:
        if self.cohort_dir is None:
            return None
        manifest = self._cohort_manifest()
        if "cmr_seg" not in manifest:
            return None
        row = manifest[manifest.subject_id == str(subject_id)]
        if row.empty or not isinstance(row.cmr_seg.iloc[0], str):
            return None
        path = self.cohort_dir / row.cmr_seg.iloc[0]
        return path if path.exists() else None

    # runs, models, embeddings, predictions
    def methods(self, contrastive_only: bool = False) -> list[str]:
        return ordered(r.method for r in self.runs if not contrastive_only or METHODS[r.method].contrastive)

    def seeds(self, method: str) -> list[int]:
        return sorted(r.seed for r in self.runs if r.method == method)

    def run(self, method: str, seed: int):
        """The finished run of (method, seed); a FileNotFoundError naming it and the runs there are."""
        for run in self.runs:
            if run.method == method and run.seed == int(seed):
                return run
        available = ", ".join(f"{r.method} seed {r.seed}" for r in self.runs) or "none"
        raise FileNotFoundError(f"no finished run of {method!r} seed {seed} in {self.runs_dir} "
                                f"(finished runs: {available})")

    def model(self, method: str, seed: int):
        def load():
            from ptacl_core.training.runs import load_model  # lazy: loads torch (explore imports without)

            return load_model(self.run(method, seed).folder)[0].eval()

        return self._models.get((method, int(seed)), load)

    def num_bins(self, method: str, seed: int) -> int:
        from ptacl_core.training.runs import read_config  # lazy: loads torch (explore imports without)

        return int(read_config(self.run(method, seed).folder).loss.num_bins)

    def embedding(self, method: str, seed: int, space: str = "ecg") -> np.ndarray:
        """(N, D) in cache order. space: "ecg" (pooled, what probes and ECG->ECG retrieval use), "ecg_projected"
        or "cmr_projected" (the contrastive space ECG->CMR retrieval searches)."""
        if space not in ("ecg", "ecg_projected", "cmr_projected"):
            raise ValueError(f"space must be ecg, ecg_projected or cmr_projected, got {space!r}")

        def compute():
            from ptacl_core.evaluation.comparison import project  # lazy: loads torch (explore imports without)
            from ptacl_core.evaluation.embeddings import cache_embeddings  # lazy: loads torch (explore imports without)

            model = self.model(method, seed)
            modality = "cmr" if space.startswith("cmr") else "ecg"
            pooled = cache_embeddings(model, self.cache, modality, self.store, device=self.device)
            return pooled if space == "ecg" else project(model, pooled, modality)

        return self._embeddings.get((method, int(seed), space), compute)

    def training_mean(self, method: str, seed: int, space: str = "ecg") -> np.ndarray:
        """(D,) mean embedding of the training split: what ``centred_cosine`` subtracts."""
        return self.embedding(method, seed, space)[self.splits == "train"].mean(0)

    def predictions(self, method: str, seed: int, fraction: float = 1.0) -> np.ndarray:
        """(N, len(EVALUATED)) probe predictions of every subject (``probe_predictions``), cached per setting."""
        return self._predictions.get((method, int(seed), float(fraction)), lambda: probe_predictions(
            self.embedding(method, seed), self.phenotypes(), self.splits, fraction, int(seed)))

    def map(self, method: str, seed: int, how: str = "pca") -> tuple[np.ndarray, np.ndarray]:
        """``map_coordinates`` of a run's ECG embedding, computed once per (method, seed, map method)."""
        return self._maps.get((method, int(seed), how), lambda: map_coordinates(self.embedding(method, seed), how))

    def training_sd(self) -> np.ndarray:
        return np.nanstd(self.phenotypes()[self.splits == "train"], axis=0)
