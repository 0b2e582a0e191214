"""A shareable ECG-only model: ``python -m ptacl_core export --run RUN --out DIR`` and ``predict --bundle DIR``.

A bundle is a folder (Hugging Face layout) of
- ``model.safetensors``: the ECG encoder (``ecg_encoder.*``, float32), one linear head per phenotype
  (``heads.<name>.{mean,scale,coef,intercept}``, float64) and the out-of-distribution reference
  (``novelty.{mean,precision,validation_distances}``, float64); no pickle anywhere;
- ``config.json``: the encoder's architecture, the preprocessing it expects, the phenotypes with units, test
  metrics (95 % bootstrap intervals), conformal half-widths and test coverage, and provenance (run, method, preset,
  epochs, data fingerprint, split sizes; names only, no paths);
- ``README.md``: the model card (``model_card``), "demonstration only" for a synthetic-cohort model;
- ``model.onnx`` (with the onnx extra): the same predictor as one graph (``onnx_graph``), checked against PyTorch
  on validation ECGs of the training cache when it is written.

``Predictor.from_bundle`` rebuilds the predictor from these files: the same arrays through the same code as
``Predictor.from_run``, so the predictions, intervals and novelty scores are identical; a bundle has no gallery
(participant-level data), hence no nearest patients. ``export`` refuses a bundle that would carry a participant id
of the training cache (``release``).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from ptacl_core import __version__
from ptacl_core.config import check_keys
from ptacl_core.evaluation.trust import UNUSUAL_PERCENTILE, NoveltyScore
from ptacl_core.leads import LEAD_NAMES
from ptacl_core.model.encoders import EcgEncoderConfig, ecg_encoder
from ptacl_core.phenotypes import UNITS
from ptacl_core.prediction.heads import LinearHead
from ptacl_core.prediction.model_card import model_card
from ptacl_core.prediction.onnx_graph import OPSET, OnnxEmbedder, export_onnx, onnx_available, onnx_strings
from ptacl_core.prediction.predictor import PredictionError, Predictor, TorchEmbedder
from ptacl_core.prediction.release import check_release, strings_of
from ptacl_core.preprocessing.config import PreprocessConfig

FORMAT, BUNDLE_VERSION = "ptacl-ecg-bundle", 1
WEIGHTS, CONFIG, CARD, ONNX = "model.safetensors", "config.json", "README.md", "model.onnx"
BUNDLE_FILES = (WEIGHTS, CONFIG, CARD, ONNX)
MAX_CONFIG_BYTES = 1 << 20
ONNX_CHECK_ECGS = 8  # validation ECGs the exported graph is compared with PyTorch on
METRIC_COLUMNS = ("test_mae", "test_mae_low", "test_mae_high", "test_r2", "test_r2_low", "test_r2_high", "n_test",
                  "interval_halfwidth", "test_coverage", "ridge_alpha")


def _finite(value):
    """A JSON number (NaN and infinity as null: strict JSON has neither)."""
    value = float(value)
    return value if math.isfinite(value) else None


def _float(value) -> float:
    return float("nan") if value is None else float(value)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def bundle_tensors(predictor: Predictor) -> dict[str, np.ndarray]:
    """Every array of a bundle by its name in ``model.safetensors``."""
    if not isinstance(predictor.embed, TorchEmbedder):
        raise PredictionError("only a PyTorch predictor (from a run or a bundle's safetensors) can be exported")
    tensors = {f"ecg_encoder.{key}": value.detach().cpu().contiguous().numpy()
               for key, value in predictor.embed.encoder.state_dict().items()}
    for name, head in predictor.heads.items():
        tensors.update({f"heads.{name}.{key}": value for key, value in head.arrays().items()})
    if predictor.novelty is not None:
        tensors.update({"novelty.mean": predictor.novelty.mean, "novelty.precision": predictor.novelty.precision,
                        "novelty.validation_distances": predictor.novelty.validation_scores})
    return {key: np.array(value, order="C") for key, value in tensors.items()}  # (np.ascontiguousarray makes () (1,))


def bundle_config(predictor: Predictor, onnx: dict | None = None) -> dict:
    """The config.json of a bundle of ``predictor`` (JSON-ready; no paths)."""
    provenance = predictor.provenance
    encoder = predictor.embed.encoder.config
    ecg = PreprocessConfig(ecg=predictor.ecg_config).to_dict()["ecg"]
    errors = predictor.test_errors
    phenotypes = {}
    for name in predictor.heads:
        row = errors.loc[name]
        phenotypes[name] = {"unit": UNITS[name], "test_mae": _finite(row.test_mae),
                            "test_mae_interval": [_finite(row.test_mae_low), _finite(row.test_mae_high)],
                            "test_r2": _finite(row.test_r2), "test_r2_interval": [_finite(row.test_r2_low), _finite(row.test_r2_high)],
                            "n_test": int(row.n_test), "interval_halfwidth": _finite(predictor.halfwidths[name]),
                            "test_coverage": _finite(row.test_coverage), "ridge_alpha": _finite(row.ridge_alpha)}
    return {
        "format": FORMAT, "bundle_version": BUNDLE_VERSION, "kit_version": __version__,
        "task": "ECG-only estimates of cine cardiac MRI phenotypes",
        "input": {"leads": list(LEAD_NAMES), "units": "mV", "fs_hz": predictor.ecg_config.fs,
                  "n_samples": predictor.ecg_config.n_samples,
                  "layout": "(batch, 12, n_samples) float32, each value rounded through float16"},
        "preprocessing": {"ecg": ecg},
        "ecg_encoder": asdict(encoder), "embedding_dim": int(encoder.dim),
        "phenotypes": phenotypes,
        "conformal": {"coverage": predictor.coverage, "method": "split conformal: absolute validation residuals"},
        "novelty": None if predictor.novelty is None else {
            "method": "Mahalanobis distance from the training embeddings (Ledoit-Wolf covariance), as a percentile of "
                      "the validation distances", "unusual_percentile": UNUSUAL_PERCENTILE,
            "n_validation": int(len(predictor.novelty.validation_scores))},
        "training": {**{key: provenance[key] for key in ("run", "method", "preset", "seed", "epochs", "data_fingerprint",
                                                         "cache", "n_subjects")},
                     "synthetic": predictor.synthetic},
        "onnx": onnx,
        "notes": list(predictor.notes),  # caveats predict --run prints, printed by predict --bundle too
    }


def _check_out(out: Path) -> None:
    """A bundle folder: new, empty, or a bundle (whose files are replaced); nothing else is overwritten."""
    if out.is_symlink():
        raise PredictionError(f"--out {out}: a symbolic link; name a folder")
    if out.exists() and not out.is_dir():
        raise PredictionError(f"--out {out}: exists and is not a folder")
    if out.is_dir():
        other = sorted(p.name for p in out.iterdir() if p.name not in BUNDLE_FILES)
        if other:
            raise PredictionError(f"--out {out}: holds other files ({', '.join(other[:5])}); name a new or empty folder")
        links = [p.name for p in out.iterdir() if p.is_symlink() or not p.is_file()]
        if links:
            raise PredictionError(f"--out {out}: {', '.join(links)} is a link or not a file; refused")


def _onnx_check(predictor: Predictor, path: Path) -> dict:
    """The exported graph against PyTorch on up to ``ONNX_CHECK_ECGS`` validation ECGs of the training cache."""
    cache = predictor.cache
    rows = np.flatnonzero(cache.index.split.to_numpy() == "val")[:ONNX_CHECK_ECGS]
    if not len(rows):
        rows = np.arange(min(ONNX_CHECK_ECGS, len(cache.index)))
    ecgs = np.asarray(cache.ecg[cache.index.row.to_numpy()[rows]], dtype=np.float32)
    reference = predictor.embed(ecgs)
    heads = np.stack([head.predict(reference) for head in predictor.heads.values()], axis=1)
    embedding, phenotypes = OnnxEmbedder(path).run(ecgs)
    return {"file": ONNX, "opset": OPSET, "checked_on": f"{len(rows)} validation ECGs of the training cache",
            "max_abs_difference": {"embedding": float(np.abs(embedding - reference).max()),
                                   "phenotypes": float(np.abs(phenotypes - heads).max())}}


def export_bundle(run: Path | str, out: Path | str, cache: Path | str | None = None, store: Path | str | None = None,
                  coverage: float | None = None, onnx: bool = True) -> tuple[Path, dict]:
    """Write the bundle of ``run`` into ``out``; returns the folder and its config. Refused before anything is
    written: a bad run, a bundle carrying a participant id (``release.ReleaseError``), an out folder with other files."""
    out = Path(out)
    _check_out(out)
    predictor = Predictor.from_run(run, cache, store, **({} if coverage is None else {"coverage": coverage}))
    trained_on = predictor.provenance.get("trained_on_fingerprint")
    if trained_on and trained_on != predictor.provenance["data_fingerprint"]:
        raise PredictionError(f"{run}: trained on another cache (fingerprint {trained_on[:12]}) than {cache} "
                              f"({predictor.provenance['data_fingerprint'][:12]}); a bundle's heads, intervals and "
                              "participant-id check must be of the cohort the encoder learned from: export with the "
                              "run's own training cache")
    missing = onnx_available() if onnx else None
    if missing:
        raise PredictionError(f"{missing}; or export with --no-onnx")
    tensors = bundle_tensors(predictor)
    ids = predictor.cache.index.subject_id.astype(str).tolist()
    named = {"run name": predictor.provenance["run"], "cache name": predictor.provenance["cache"],
             "bundle folder name": out.name}
    metadata = {"format": "np", FORMAT: str(BUNDLE_VERSION)}

    def check(config: dict, graph: str = "") -> tuple[str, str]:  # before anything is written, and with the graph
        card = model_card(config)
        check_release(ids, named, {CONFIG: "\n".join(strings_of(config)), CARD: card, "tensor names": "\n".join(tensors),
                                   "safetensors metadata": "\n".join(strings_of(metadata)), ONNX: graph})
        return json.dumps(config, indent=2, allow_nan=False) + "\n", card

    check(bundle_config(predictor))
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".bundle-", dir=out.parent) as scratch:
        scratch = Path(scratch)
        onnx_entry, graph = None, ""
        if onnx:
            export_onnx(predictor.embed.encoder, predictor.heads, predictor.ecg_config.n_samples, scratch / ONNX,
                        {"format": FORMAT, "bundle_version": str(BUNDLE_VERSION)})
            onnx_entry, graph = _onnx_check(predictor, scratch / ONNX), "\n".join(onnx_strings(scratch / ONNX))
        config = bundle_config(predictor, onnx_entry)
        text, card = check(config, graph)
        save_file(tensors, scratch / WEIGHTS, metadata=metadata)
        os.chmod(scratch / WEIGHTS, 0o666 & ~_umask())  # safetensors writes 0600: share it like the other files
        (scratch / CONFIG).write_text(text)
        (scratch / CARD).write_text(card)
        out.mkdir(exist_ok=True)
        if not onnx:
            (out / ONNX).unlink(missing_ok=True)  # a previous bundle's graph would not match these weights
        for name in BUNDLE_FILES:
            if (scratch / name).exists():
                os.replace(scratch / name, out / name)
    return out, config


def read_config(folder: Path) -> dict:
    """A bundle's config.json, checked for its format and version."""
    path = folder / CONFIG
    if not folder.is_dir():
        raise PredictionError(f"{folder}: not a folder (a bundle is the folder `export` writes)")
    if not path.is_file():
        raise PredictionError(f"{folder}: no {CONFIG}; not a model bundle")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise PredictionError(f"{path}: {path.stat().st_size} bytes is too large for a bundle config")
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PredictionError(f"{path}: not readable JSON ({error})") from error
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise PredictionError(f"{path}: not a {FORMAT} config (format {config.get('format') if isinstance(config, dict) else None!r})")
    if config.get("bundle_version") != BUNDLE_VERSION:
        raise PredictionError(f"{path}: bundle version {config.get('bundle_version')!r}; this kit reads version {BUNDLE_VERSION}")
    return config


def load_bundle(folder: Path | str, onnx: bool = False) -> Predictor:
    """``Predictor.from_bundle``: the predictor a bundle folder holds; a ``PredictionError`` naming what is wrong."""
    folder = Path(folder)
    config = read_config(folder)
    try:
        tensors = load_file(folder / WEIGHTS)
    except (OSError, SafetensorError, ValueError) as error:
        raise PredictionError(f"{folder / WEIGHTS}: not a readable safetensors file ({error})") from error
    try:
        encoder_config = EcgEncoderConfig(**check_keys("ecg_encoder", config["ecg_encoder"], EcgEncoderConfig))
        ecg_config = PreprocessConfig.from_dict({"ecg": config["preprocessing"]["ecg"]}).ecg
        encoder = ecg_encoder(encoder_config)
        weights = {key.removeprefix("ecg_encoder."): torch.from_numpy(value) for key, value in tensors.items()
                   if key.startswith("ecg_encoder.")}
        encoder.load_state_dict(weights, strict=True)
        dim = encoder_config.dim
        heads, halfwidths, rows = {}, {}, []
        for name, entry in config["phenotypes"].items():
            if name not in UNITS:
                raise ValueError(f"unknown phenotype {name!r}")
            arrays = {key: tensors[f"heads.{name}.{key}"] for key in ("mean", "scale", "coef", "intercept")
                      if f"heads.{name}.{key}" in tensors}
            heads[name] = LinearHead.from_arrays(arrays, dim, name, _float(entry.get("ridge_alpha")))
            halfwidths[name] = float("inf") if entry["interval_halfwidth"] is None else float(entry["interval_halfwidth"])
            rows.append({"phenotype": name, "test_mae": _float(entry["test_mae"]),
                         "test_mae_low": _float(entry["test_mae_interval"][0]), "test_mae_high": _float(entry["test_mae_interval"][1]),
                         "test_r2": _float(entry["test_r2"]), "test_r2_low": _float(entry["test_r2_interval"][0]),
                         "test_r2_high": _float(entry["test_r2_interval"][1]), "n_test": int(entry["n_test"]),
                         "interval_halfwidth": halfwidths[name], "test_coverage": _float(entry["test_coverage"]),
                         "ridge_alpha": _float(entry.get("ridge_alpha"))})
        if not heads:
            raise ValueError("no phenotype heads")
        novelty = None
        if config.get("novelty") is not None:
            mean, precision = tensors["novelty.mean"], tensors["novelty.precision"]
            distances = tensors["novelty.validation_distances"]
            if mean.shape != (dim,) or precision.shape != (dim, dim) or distances.ndim != 1 or len(distances) < 2:
                raise ValueError(f"novelty arrays of shapes {mean.shape}, {precision.shape}, {distances.shape} for an "
                                 f"embedding of {dim}")
            novelty = NoveltyScore(mean, precision, np.sort(distances))
        coverage = float(config["conformal"]["coverage"])
        training = config["training"]
    except PredictionError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as error:  # a hand-edited or foreign bundle
        raise PredictionError(f"{folder}: not a usable bundle ({type(error).__name__}: {error})") from error
    embed = TorchEmbedder(encoder)
    if onnx:
        missing = onnx_available()
        if missing:
            raise PredictionError(missing)
        if not (folder / ONNX).is_file():
            raise PredictionError(f"{folder}: no {ONNX} (the bundle was exported with --no-onnx)")
        embed = OnnxEmbedder(folder / ONNX)
        if embed.phenotype_names != tuple(heads):
            raise PredictionError(f"{folder / ONNX}: its heads {embed.phenotype_names} are not config.json's {tuple(heads)}")
    notes = [*map(str, config.get("notes") or []),
             "a bundle carries no gallery of training patients: no nearest patients are listed"]
    return Predictor(embed, ecg_config, heads, pd.DataFrame(rows).set_index("phenotype"), None, notes, halfwidths,
                     novelty, coverage, bool(training.get("synthetic")), training)
