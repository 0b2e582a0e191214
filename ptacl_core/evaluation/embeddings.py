"""Frozen-encoder embeddings of a whole cache, cached on disk per checkpoint (METHOD.md §5).

Evaluation embeds every subject once per model and modality: the pooled, pre-projection output of the ECG
(or cine) encoder, in the cache's index order. The result is stored as ``<store>/<key>.npz``; the key
(``embedding_key``) hashes everything the numbers depend on: the weights (the checkpoint's content, not its
path or optimiser state), the architecture config, the encoder source, the kit version, the cache
(fingerprint, array sizes and modification times) and the modality. Re-running notebooks 03-05 on the same
checkpoints costs nothing, and a retrained checkpoint, an edited encoder or a rebuilt cache is never served
stale embeddings.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

import ptacl_core.model.encoders as encoders
from ptacl_core import __version__
from ptacl_core.evaluation.inputs import default_store
from ptacl_core.model.encoders import PTACLModel
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


def _code_hash() -> str:
    """Hash of the encoder source: an edit to the forward pass must not be served old embeddings."""
    return hashlib.sha256(Path(encoders.__file__).read_bytes()).hexdigest()[:16]


def embedding_key(model: PTACLModel, cache: Cache, modality: str) -> str:
    """What the embeddings depend on: weights, architecture config, encoder code, kit version, the cache
    (fingerprint of its inputs and config, plus the arrays' size and modification time) and the modality."""
    arrays = [cache.folder / f"{name}.npy" for name in MODALITIES]
    stats = [(p.stat().st_size, p.stat().st_mtime_ns) if p.exists() else None for p in arrays]
    parts = [weights_hash(model), json.dumps(model.config.to_dict(), sort_keys=True), _code_hash(), __version__,
             cache.fingerprint, json.dumps(stats), modality, f"v{EMBEDDING_VERSION}"]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def cache_embeddings(model: PTACLModel, cache: Cache, modality: str = "ecg", store: Path | str | None = None,
                     batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """(N, D) embeddings of every subject of ``cache`` in index order, read from / written to ``store``."""
    store = Path(store) if store is not None else default_store()
    path = store / f"{embedding_key(model, cache, modality)}.npz"
    ids = np.array(cache.index.subject_id.astype(str).tolist(), dtype=str)  # fixed-width: loads without pickle
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as stored:
                if np.array_equal(stored["subject_id"], ids):
                    return stored["embedding"]
        except (OSError, ValueError, KeyError):  # a damaged file is recomputed, not trusted
            pass
    array = cache.ecg if modality == "ecg" else cache.cmr
    embedding = embed_arrays(model, array, cache.index.row.to_numpy(dtype=np.int64), modality, batch_size, device)
    bad = ~np.isfinite(embedding).all(axis=1)
    if bad.any():
        raise ValueError(f"{modality} embeddings are not finite for {int(bad.sum())} subject(s) (e.g. {ids[bad][:3].tolist()}): "
                         "a diverged checkpoint or corrupt cache rows")
    store.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=store, suffix=".npz")
    os.close(handle)
    np.savez(temporary, embedding=embedding, subject_id=ids)
    os.replace(temporary, path)
    return embedding
