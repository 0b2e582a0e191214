"""ECG-only prediction of the CMR phenotypes (``python -m ptacl_core predict --run runs/<name> ECG_FILE...``).

For a trained run: read each ECG (WFDB, DICOM, GE MUSE, HL7 aECG or UK Biobank XML), preprocess it with the run's cache config (the
exact steps and float16 storage the training data went through), embed it with the frozen ECG encoder,
and apply a ridge probe per phenotype fitted on the cache's training split (as plain arrays: ``heads.LinearHead``). Beside each prediction: the
probe's test MAE and R², a split-conformal interval (calibrated on the validation split; its coverage on the test
split reported) and an out-of-distribution score (Mahalanobis distance from the training ECGs' embeddings, as a
percentile of the validation ECGs', with a verdict; ``evaluation.trust``). Then the nearest patients of the gallery (every cached
subject) by cosine similarity of the ECG embeddings. A file that cannot be read or preprocessed gets an
error row naming the file and the problem; the others still get their predictions.

A model bundle (``bundle``: ``python -m ptacl_core export``) holds what this needs but the gallery: ``Predictor``'s
``from_bundle`` gives the same predictions, intervals and novelty scores as ``from_run``, without nearest patients
(a gallery is participant-level data and never leaves with a model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ptacl_core.evaluation.embeddings import cache_embeddings
from ptacl_core.evaluation.probing import bootstrap_metrics, fit_ridge, regression_metrics
from ptacl_core.evaluation.retrieval import topk
from ptacl_core.evaluation.statistics import bootstrap_indices, interval
from ptacl_core.evaluation.trust import DEFAULT_COVERAGE, NoveltyScore, conformal_halfwidth, empirical_coverage
from ptacl_core.io.ecg import EcgReadError, read_ecg
from ptacl_core.phenotypes import PHENOTYPES
from ptacl_core.prediction.heads import LinearHead
from ptacl_core.preprocessing.cache import Cache, is_cache
from ptacl_core.preprocessing.config import EcgConfig
from ptacl_core.preprocessing.ecg_filtering import EcgQualityError, preprocess_ecg
from ptacl_core.synthetic.cohort import LATENTS_FILE
from ptacl_core.training.runs import checkpoint_path, model_from_state, read_checkpoint, run_folder


class PredictionError(RuntimeError):
    """The run, bundle or cache cannot be used for prediction."""


class TorchEmbedder:
    """(B, 12, L) float32 preprocessed ECGs -> (B, D) float32 pooled embeddings of a frozen ECG encoder."""

    def __init__(self, encoder: torch.nn.Module):
        self.encoder = encoder.eval()

    @torch.no_grad()
    def __call__(self, ecgs: np.ndarray) -> np.ndarray:
        _, pooled = self.encoder(torch.from_numpy(np.asarray(ecgs, dtype=np.float32)))
        return pooled.float().numpy()


@dataclass
class Gallery:
    """The patients ``predict --run`` names as nearest: (N, D) ECG embeddings and the cache's index rows."""

    embeddings: np.ndarray
    index: pd.DataFrame


@dataclass
class Predictor:
    """A frozen ECG encoder (``embed``), one linear head per phenotype, their test errors, the conformal half-widths
    and novelty score that qualify each prediction, and (from a run only) the gallery of nearest patients."""

    embed: object  # (B, 12, L) float32 -> (B, D): TorchEmbedder, or bundle.OnnxEmbedder
    ecg_config: EcgConfig  # the preprocessing the encoder was trained on
    heads: dict  # phenotype -> LinearHead
    test_errors: pd.DataFrame  # phenotype -> test_mae, test_r2 (with 95 % bootstrap intervals), n_test, ...
    gallery: Gallery | None = None
    notes: list = field(default_factory=list)  # caveats to print with the predictions
    halfwidths: dict = field(default_factory=dict)  # phenotype -> split-conformal half-width (validation residuals)
    novelty: NoveltyScore | None = None  # distance from the training embeddings, calibrated on validation
    coverage: float = DEFAULT_COVERAGE
    synthetic: bool = False  # trained on the kit's synthetic cohort
    provenance: dict = field(default_factory=dict)  # what the model was trained on (``bundle`` writes it)
    cache: Cache | None = None  # the cache the heads were fitted on (from a run only)

    @classmethod
    def from_run(cls, run: Path | str, cache: Path | str | None = None, store: Path | str | None = None,
                 coverage: float = DEFAULT_COVERAGE) -> Predictor:
        """The predictor of a run folder (or checkpoint file). The checkpoint's stored config is checked (sizes,
        ranges: ``ModelConfig``) before its model is built; any problem is a ``PredictionError`` naming the file."""
        if not 0 < coverage < 1:  # before the gallery is embedded, not after
            raise PredictionError(f"coverage must lie in (0, 1), got {coverage}")
        run = Path(run)
        checkpoint = checkpoint_path(run)
        if not checkpoint.exists():
            raise PredictionError(f"{run}: no checkpoint (expected {checkpoint}); train the run first")
        try:
            state = read_checkpoint(checkpoint)
            model, config = model_from_state(state)
        except Exception as error:  # a truncated or foreign file: say which, not a traceback
            raise PredictionError(f"{checkpoint}: not a loadable checkpoint ({type(error).__name__}: {error})") from error
        cache_dir = Path(cache) if cache else Path(config.cache)
        if not is_cache(cache_dir):
            raise PredictionError(f"{run}: its training cache {cache_dir} is not there; pass --cache with a cache "
                                  "built with the same preprocessing")
        try:
            opened = Cache.open(cache_dir)
        except (OSError, ValueError) as error:
            raise PredictionError(f"{cache_dir}: cannot open the cache ({error})") from error
        trained_on = state.get("data_fingerprint")
        notes = []
        if trained_on and trained_on != opened.fingerprint:
            notes.append(f"the run was trained on another cache (fingerprint {trained_on[:12]}, this one {opened.fingerprint[:12]}): "
                         "the probe's test errors are honest only if none of its training subjects is in this cache's test split")
        gallery = cache_embeddings(model, opened, "ecg", store)
        phenotypes, splits = opened.phenotypes(), opened.index.split.to_numpy()
        train, val, test = (np.flatnonzero(splits == name) for name in ("train", "val", "test"))
        heads, errors, halfwidths = {}, [], {}
        for column, name in enumerate(PHENOTYPES):
            fit_rows = train[np.isfinite(phenotypes[train, column])]
            val_rows = val[np.isfinite(phenotypes[val, column])]
            test_rows = test[np.isfinite(phenotypes[test, column])]
            if len(fit_rows) < 3:
                continue
            heads[name] = head = LinearHead.from_pipeline(fit_ridge(gallery[fit_rows], phenotypes[fit_rows, column]))
            truth, predicted_test = phenotypes[test_rows, column], head.predict(gallery[test_rows])
            halfwidths[name] = (conformal_halfwidth(phenotypes[val_rows, column] - head.predict(gallery[val_rows]),
                                                    coverage) if len(val_rows) else float("inf"))
            errors.append({"phenotype": name, **test_scores(truth, predicted_test), "n_test": len(test_rows),
                           "interval_halfwidth": halfwidths[name],
                           "test_coverage": empirical_coverage(truth, predicted_test, halfwidths[name])
                           if len(test_rows) else np.nan, "ridge_alpha": head.alpha})
        if not heads:
            raise PredictionError(f"{cache_dir}: no phenotype has training labels to fit a probe on")
        novelty = NoveltyScore.fit(gallery[train], gallery[val]) if len(train) >= 2 and len(val) >= 2 else None
        if novelty is None:
            notes.append("the cache has too few training or validation subjects to calibrate the out-of-distribution score")
        synthetic = bool(opened.cohort) and (Path(opened.cohort) / LATENTS_FILE).exists()  # the generator writes its latents
        provenance = {"run": run_folder(run).name, "method": config.method, "preset": config.preset, "seed": config.seed,
                      "epochs": int(state.get("epoch", 0)), "data_fingerprint": opened.fingerprint,
                      "trained_on_fingerprint": trained_on or "", "cache": opened.folder.name,
                      "n_subjects": {"train": len(train), "val": len(val), "test": len(test)}}
        return cls(TorchEmbedder(model.ecg_encoder), opened.config.ecg, heads,
                   pd.DataFrame(errors).set_index("phenotype"), Gallery(gallery, opened.index), notes, halfwidths,
                   novelty, coverage, synthetic, provenance, opened)

    @classmethod
    def from_bundle(cls, folder: Path | str, onnx: bool = False) -> Predictor:
        """The predictor of a model bundle (``export``): the ECG encoder from ``model.safetensors`` (or, with ``onnx``,
        the graph in ``model.onnx`` run by onnxruntime); no gallery. A ``PredictionError`` names a bad bundle."""
        from ptacl_core.prediction.bundle import load_bundle  # the bundle module imports this one

        return load_bundle(folder, onnx=onnx)

    def embed_file(self, path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
        """(D,) embedding of one ECG file and its quality flags; EcgReadError / EcgQualityError when unusable."""
        ecg, flags = self.preprocessed(path)
        return self.embed(ecg)[0], flags

    def preprocessed(self, path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
        """(1, 12, L) float32 of one ECG file as the encoder sees it (preprocessed with the training cache's config,
        rounded through float16 as the cache stores it) and its quality flags; EcgReadError / EcgQualityError."""
        ecg = read_ecg(path)
        try:
            processed = preprocess_ecg(ecg.signal, ecg.fs, self.ecg_config)
        except EcgQualityError as error:
            raise EcgQualityError(f"{path}: {error}") from error
        except Exception as error:  # anything unforeseen is this file's failure, named, not the batch's
            raise EcgReadError(path, f"preprocessing failed ({type(error).__name__}: {error})") from error
        stored = processed.signal.astype(np.float16)[None]  # the cache stores float16: do the same
        return stored.astype(np.float32), processed.flags

    def predict(self, files: list[Path | str], top: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
        """One row per file (predictions, or the error) and the ``top`` nearest gallery patients per file (none
        without a gallery)."""
        if top < 1:
            raise ValueError(f"top must be at least 1, got {top}")
        rows, neighbours = [], []
        for file in files:
            path = Path(file)
            try:
                embedding, flags = self.embed_file(path)
            except Exception as error:  # every failure is one file's row; the others still get predictions
                message = str(error) if isinstance(error, (EcgReadError, EcgQualityError)) else f"{path}: {type(error).__name__}: {error}"
                rows.append({"file": str(path), "status": "error", "error": message})
                continue
            row = {"file": str(path), "status": "ok", "error": "", "flags": ";".join(flags)}
            if self.novelty is not None:
                distance, percentile = self.novelty.score(embedding[None])
                row.update({"ood_distance": float(distance[0]), "ood_percentile": float(percentile[0]),
                            "ood_verdict": self.novelty.verdict(float(distance[0]))})
            for name, head in self.heads.items():
                value = float(head.predict(embedding[None])[0])
                row[name] = value
                row[f"{name}_low"] = value - self.halfwidths.get(name, float("inf"))
                row[f"{name}_high"] = value + self.halfwidths.get(name, float("inf"))
                row[f"{name}_test_mae"] = float(self.test_errors.loc[name, "test_mae"])
            rows.append(row)
            if self.gallery is None:
                continue
            index = self.gallery.index
            retrieved, similarity = topk(embedding[None], self.gallery.embeddings, min(top, len(self.gallery.embeddings)))
            for rank, (position, score) in enumerate(zip(retrieved[0], similarity[0], strict=True), start=1):
                subject = index.iloc[position]
                neighbours.append({"file": str(path), "rank": rank, "subject_id": subject.subject_id, "split": subject.split,
                                   "cosine_similarity": float(score),
                                   **{name: subject[name] for name in PHENOTYPES if name in index},
                                   **({"condition": subject["condition"]} if "condition" in index else {})})
        return pd.DataFrame(rows), pd.DataFrame(neighbours, columns=None if neighbours else NEIGHBOUR_COLUMNS)


NEIGHBOUR_COLUMNS = ("file", "rank", "subject_id", "split", "cosine_similarity")  # of an empty neighbours table
TEST_INTERVAL_RESAMPLES = 1000  # bootstrap resamples of the test subjects for the probe's test-metric intervals


def test_scores(truth: np.ndarray, predicted: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Test MAE and R² of one phenotype with 95 % percentile-bootstrap intervals over the test subjects (NaN below
    3 subjects)."""
    if len(truth) < 3:
        return {key: np.nan for key in ("test_mae", "test_mae_low", "test_mae_high", "test_r2", "test_r2_low", "test_r2_high")}
    scores = regression_metrics(truth, predicted)
    resampled = bootstrap_metrics(truth, predicted, bootstrap_indices(len(truth), TEST_INTERVAL_RESAMPLES, seed))
    (mae_low, mae_high), (r2_low, r2_high) = interval(resampled["mae"]), interval(resampled["r2"])
    return {"test_mae": scores["mae"], "test_mae_low": mae_low, "test_mae_high": mae_high, "test_r2": scores["r2"],
            "test_r2_low": r2_low, "test_r2_high": r2_high}
