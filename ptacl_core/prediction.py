"""ECG-only prediction of the CMR phenotypes (``python -m ptacl_core predict --run runs/<name> ECG_FILE...``).

For a trained run: read each ECG (WFDB or UK Biobank XML), preprocess it with the run's cache config (the
exact steps and float16 storage the training data went through), embed it with the frozen ECG encoder,
and apply a ridge probe per phenotype fitted on the cache's training split. Beside each prediction: the
probe's test MAE and R² (its honest error bar). Then the nearest patients of the gallery (every cached
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
from ptacl_core.io.ecg import EcgReadError, read_ecg
from ptacl_core.phenotypes import PHENOTYPES, UNITS
from ptacl_core.preprocessing.cache import Cache
from ptacl_core.preprocessing.ecg import EcgQualityError, preprocess_ecg
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

    @classmethod
    def from_run(cls, run: Path | str, cache: Path | str | None = None, store: Path | str | None = None) -> Predictor:
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
        if not (cache_dir / "cache.json").exists():
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
        train, test = np.flatnonzero(splits == "train"), np.flatnonzero(splits == "test")
        probes, errors = {}, []
        for column, name in enumerate(PHENOTYPES):
            fit_rows = train[np.isfinite(phenotypes[train, column])]
            test_rows = test[np.isfinite(phenotypes[test, column])]
            if len(fit_rows) < 3:
                continue
            probes[name] = fit_ridge(gallery[fit_rows], phenotypes[fit_rows, column])
            scores = (regression_metrics(phenotypes[test_rows, column], probes[name].predict(gallery[test_rows]))
                      if len(test_rows) >= 3 else {"mae": np.nan, "r2": np.nan})
            errors.append({"phenotype": name, "test_mae": scores["mae"], "test_r2": scores["r2"], "n_test": len(test_rows)})
        if not probes:
            raise PredictionError(f"{cache_dir}: no phenotype has training labels to fit a probe on")
        return cls(model, opened, probes, pd.DataFrame(errors).set_index("phenotype"), gallery, notes)

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
            for name, probe in self.probes.items():
                row[name] = float(probe.predict(embedding[None])[0])
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


def format_report(predictions: pd.DataFrame, neighbours: pd.DataFrame, test_errors: pd.DataFrame) -> str:
    """Human-readable text of ``Predictor.predict``'s tables."""
    lines = []
    for row in predictions.to_dict("records"):
        lines.append(f"== {row['file']}")
        if row["status"] != "ok":
            lines.append(f"   ERROR: {row['error']}")
            continue
        if isinstance(row.get("flags"), str) and row["flags"]:
            lines.append(f"   quality flags: {row['flags']}")
        for name in test_errors.index:
            lines.append(f"   {name:<11} {row[name]:8.1f} {UNITS[name]:<5} (probe test MAE {test_errors.loc[name, 'test_mae']:.1f},"
                         f" R² {test_errors.loc[name, 'test_r2']:.2f})")
        near = neighbours[neighbours.file == row["file"]]
        for match in near.to_dict("records"):
            described = ", ".join(f"{n.split('_')[0]} {match[n]:.0f}" for n in ("LVEF_pct", "LVEDV_mL", "LVM_g") if n in match)
            condition = f", {match['condition']}" if "condition" in match else ""
            lines.append(f"   nearest #{match['rank']}: {match['subject_id']} (cosine {match['cosine_similarity']:.3f}; "
                         f"{described}{condition})")
    return "\n".join(lines)
