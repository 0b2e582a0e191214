"""Frozen-encoder embeddings of a whole cache, cached on disk per checkpoint (METHOD.md §5).

Evaluation embeds every subject once per model and modality: the pooled, pre-projection output of the ECG
(or cine) encoder, in the cache's index order. The result is stored as ``<store>/<key>.npz`` where the key
is a hash of the model's weights (the checkpoint's content, not its path or optimiser state), the cache
fingerprint and the modality, so re-running notebooks 03-05 on the same checkpoints costs nothing, and a
retrained checkpoint can never be served stale embeddings.

The comparison's runs are found by name: ``<method>_<preset>_seed<k>[_fast]`` in the runs folder (what
notebook 02 writes); unfinished runs are listed and left out.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ptacl_core import paths
from ptacl_core.encoders import MODEL_PRESETS, PTACLModel
from ptacl_core.phenotypes import PHENOTYPES
from ptacl_core.preprocessing.cache import Cache

EMBEDDING_VERSION = 1  # bump when the extraction itself changes
MODALITIES = ("ecg", "cmr")


def weights_hash(model: torch.nn.Module) -> str:
    """SHA-256 of a model's parameters and buffers (names, shapes, dtypes and bytes), hex."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def default_store() -> Path:
    return paths.outputs_root() / "embeddings"


@torch.no_grad()
def embed_arrays(model: PTACLModel, array: np.ndarray, rows: np.ndarray, modality: str, batch_size: int = 64,
                 device: str = "cpu") -> np.ndarray:
    """Pooled pre-projection embeddings of ``array[rows]`` (an ECG (N, 12, L) or cine (N, [Z,] T, S, S) memmap).

    Returns (len(rows), D) float32. Batched, no grad, eval mode; the result does not depend on batch_size.
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    encoder = (model.ecg_encoder if modality == "ecg" else model.cmr_encoder).to(device).eval()
    out = []
    for start in range(0, len(rows), batch_size):
        batch = torch.from_numpy(np.asarray(array[rows[start:start + batch_size]], dtype=np.float32)).to(device)
        _, pooled = encoder(batch)
        out.append(pooled.float().cpu().numpy())
    dim = model.config.ecg.dim if modality == "ecg" else model.config.cmr.dim
    return np.concatenate(out) if out else np.zeros((0, dim), dtype=np.float32)


def cache_embeddings(model: PTACLModel, cache: Cache, modality: str = "ecg", store: Path | str | None = None,
                     batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """(N, D) embeddings of every subject of ``cache`` in index order, read from / written to ``store``."""
    store = Path(store) if store is not None else default_store()
    key = hashlib.sha256(f"{weights_hash(model)}|{cache.fingerprint}|{modality}|v{EMBEDDING_VERSION}".encode()).hexdigest()[:32]
    path = store / f"{key}.npz"
    ids = np.array(cache.index.subject_id.astype(str).tolist(), dtype=str)  # fixed-width: loads without pickle
    if path.exists():
        with np.load(path, allow_pickle=False) as stored:
            if np.array_equal(stored["subject_id"], ids):
                return stored["embedding"]
    array = cache.ecg if modality == "ecg" else cache.cmr
    embedding = embed_arrays(model, array, cache.index.row.to_numpy(dtype=np.int64), modality, batch_size, device)
    store.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp.npz")
    np.savez(temporary, embedding=embedding, subject_id=ids)
    os.replace(temporary, path)
    return embedding


def cache_phenotypes(cache: Cache) -> np.ndarray:
    """(N, 10) float phenotypes in ``PHENOTYPES`` order (NaN where unknown), index order."""
    index = cache.index
    return np.stack([index[c].to_numpy(dtype=float) if c in index else np.full(len(index), np.nan) for c in PHENOTYPES], 1)


# --- the runs of the comparison ----------------------------------------------------------------------------

RUN_NAME = re.compile(r"^(?P<method>[a-z_]+?)_(?P<preset>[a-z0-9]+)_seed(?P<seed>\d+)(?P<fast>_fast)?$")


@dataclass(frozen=True)
class RunInfo:
    method: str
    seed: int
    folder: Path


def find_runs(runs_dir: Path | str, preset: str, fast: bool = False, methods: list[str] | None = None) -> tuple[list[RunInfo], list[str]]:
    """Finished runs named ``<method>_<preset>_seed<k>[_fast]``; returns (runs, notes on the ones left out)."""
    runs_dir = Path(runs_dir)
    found, notes = [], []
    for folder in sorted(runs_dir.glob("*")) if runs_dir.is_dir() else []:
        match = RUN_NAME.match(folder.name)
        if not match or match["preset"] != preset or bool(match["fast"]) != fast:
            continue
        if methods is not None and match["method"] not in methods:
            continue
        checkpoint, config = folder / "checkpoints" / "last.pt", folder / "config.json"
        if not checkpoint.exists() or not config.exists():
            notes.append(f"{folder.name}: no checkpoint yet")
            continue
        epochs = json.loads(config.read_text())["optim"]["epochs"]
        done = len(pd.read_csv(folder / "metrics.csv")) if (folder / "metrics.csv").exists() else 0
        if done < epochs:
            notes.append(f"{folder.name}: unfinished ({done}/{epochs} epochs); resume it with notebook 02")
            continue
        found.append(RunInfo(match["method"], int(match["seed"]), folder))
    return sorted(found, key=lambda r: (r.method, r.seed)), notes


def random_init_model(preset: str, seed: int) -> PTACLModel:
    """The untrained model of ``preset`` as seed ``seed`` initialises it (the random-init baseline)."""
    torch.manual_seed(seed)
    return PTACLModel(MODEL_PRESETS[preset])
