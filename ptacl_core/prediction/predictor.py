"""ECG-only prediction of the CMR phenotypes (``python -m ptacl_core predict --run runs/<name> ECG_FILE...``).

For a trained run: read each ECG (WFDB, DICOM, GE MUSE, HL7 aECG or UK Biobank XML), preprocess it with the run's cache config (the
exact steps and float16 storage the training data went through), embed it with the frozen ECG encoder,
and apply a ridge probe per phenotype fitted on the cache's training split. Beside each prediction: the
probe's test MAE and R², a split-conformal interval (calibrated on the validation split; its coverage on the test
split reported) and an out-of-distribution score (Mahalanobis distance from the training ECGs' embeddings, as a
percentile of the validation ECGs', with a verdict; ``evaluation.trust``). Then the nearest patients of the gallery (every cached
subject) by cosine similarity of the ECG embeddings. A file that cannot be read or preprocessed gets an
error row naming the file and the problem; the others still get their predictions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ptacl_core.evaluation.embeddings import cache_embeddings, embed_arrays
from ptacl_core.evaluation.probing import fit_ridge, regression_metrics
from ptacl_core.evaluation.retrieval import topk
from ptacl_core.evaluation.trust import DEFAULT_COVERAGE, NoveltyScore, conformal_halfwidth, empirical_coverage
from ptacl_core.io.ecg import EcgReadError, read_ecg
from ptacl_core.phenotypes import PHENOTYPES
from ptacl_core.preprocessing.cache import Cache, is_cache
from ptacl_core.preprocessing.ecg_filtering import EcgQualityError, preprocess_ecg
from ptacl_core.synthetic.cohort import LATENTS_FILE
from ptacl_core.training.runs import checkpoint_path, model_from_state, read_checkpoint


class PredictionError(RuntimeError):
    """The run or its cache cannot be used for prediction."""


@dataclass
class Predictor:
    """A run's frozen ECG encoder, one fitted probe per phenotype, their test errors, and the gallery."""

    model: object
    cache: Cache
    probes: dict
    test_errors: pd.DataFrame  # phenotype -> mae, r2, n_test
    gallery: np.ndarray  # (N, D) ECG embeddings of every cached subject
    notes: list = field(default_factory=list)  # caveats to print with the predictions
    halfwidths: dict = field(default_factory=dict)  # phenotype -> split-conformal half-width (validation residuals)
    novelty: NoveltyScore | None = None  # distance from the training embeddings, calibrated on validation
    coverage: float = DEFAULT_COVERAGE
    synthetic: bool = False  # the cache was built from the kit's synthetic cohort

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
        probes, errors, halfwidths = {}, [], {}
        for column, name in enumerate(PHENOTYPES):
            fit_rows = train[np.isfinite(phenotypes[train, column])]
            val_rows = val[np.isfinite(phenotypes[val, column])]
            test_rows = test[np.isfinite(phenotypes[test, column])]
            if len(fit_rows) < 3:
                continue
            probes[name] = fit_ridge(gallery[fit_rows], phenotypes[fit_rows, column])
            predicted_test = probes[name].predict(gallery[test_rows]) if len(test_rows) else np.array([])
            scores = (regression_metrics(phenotypes[test_rows, column], predicted_test)
                      if len(test_rows) >= 3 else {"mae": np.nan, "r2": np.nan})
            halfwidths[name] = (conformal_halfwidth(phenotypes[val_rows, column] - probes[name].predict(gallery[val_rows]),
                                                    coverage) if len(val_rows) else float("inf"))
            errors.append({"phenotype": name, "test_mae": scores["mae"], "test_r2": scores["r2"], "n_test": len(test_rows),
                           "interval_halfwidth": halfwidths[name],
                           "test_coverage": empirical_coverage(phenotypes[test_rows, column], predicted_test, halfwidths[name])
                           if len(test_rows) else np.nan})
        if not probes:
            raise PredictionError(f"{cache_dir}: no phenotype has training labels to fit a probe on")
        novelty = NoveltyScore.fit(gallery[train], gallery[val]) if len(train) >= 2 and len(val) >= 2 else None
        if novelty is None:
            notes.append("the cache has too few training or validation subjects to calibrate the out-of-distribution score")
        synthetic = bool(opened.cohort) and (Path(opened.cohort) / LATENTS_FILE).exists()  # the generator writes its latents
        return cls(model, opened, probes, pd.DataFrame(errors).set_index("phenotype"), gallery, notes, halfwidths,
                   novelty, coverage, synthetic)

    def embed_file(self, path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
        """(D,) embedding of one ECG file and its quality flags; EcgReadError / EcgQualityError when unusable."""
        ecg = read_ecg(path)
        try:
            processed = preprocess_ecg(ecg.signal, ecg.fs, self.cache.config.ecg)
        except EcgQualityError as error:
            raise EcgQualityError(f"{path}: {error}") from error
        except Exception as error:  # anything unforeseen is this file's failure, named, not the batch's
            raise EcgReadError(path, f"preprocessing failed ({type(error).__name__}: {error})") from error
        stored = processed.signal.astype(np.float16)[None]  # the cache stores float16: do the same
        return embed_arrays(self.model, stored, np.array([0]), "ecg")[0], processed.flags

    def predict(self, files: list[Path | str], top: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
        """One row per file (predictions, or the error) and the ``top`` nearest gallery patients per file."""
        if top < 1:
            raise ValueError(f"top must be at least 1, got {top}")
        rows, neighbours = [], []
        index = self.cache.index
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
            for name, probe in self.probes.items():
                value = float(probe.predict(embedding[None])[0])
                row[name] = value
                row[f"{name}_low"] = value - self.halfwidths.get(name, float("inf"))
                row[f"{name}_high"] = value + self.halfwidths.get(name, float("inf"))
                row[f"{name}_test_mae"] = float(self.test_errors.loc[name, "test_mae"])
            rows.append(row)
            retrieved, similarity = topk(embedding[None], self.gallery, min(top, len(self.gallery)))
            for rank, (position, score) in enumerate(zip(retrieved[0], similarity[0], strict=True), start=1):
                subject = index.iloc[position]
                neighbours.append({"file": str(path), "rank": rank, "subject_id": subject.subject_id, "split": subject.split,
                                   "cosine_similarity": float(score),
                                   **{name: subject[name] for name in PHENOTYPES if name in index},
                                   **({"condition": subject["condition"]} if "condition" in index else {})})
        return pd.DataFrame(rows), pd.DataFrame(neighbours)
