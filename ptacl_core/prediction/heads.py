"""A fitted probe as plain arrays: what ``predict`` applies to an ECG embedding, whether the probe was just fitted
on a run's cache (``predict --run``) or loaded from a model bundle (``predict --bundle``) or an ONNX graph.

A probe of ``evaluation.probing.fit_ridge`` standardises the embedding and applies a ridge regression:
``phenotype = ((embedding - mean) / scale) @ coef + intercept``. Both prediction paths compute exactly this, in
float64, from the same arrays, so a bundle reproduces ``predict --run`` to the last bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.pipeline import Pipeline

HEAD_ARRAYS = ("mean", "scale", "coef", "intercept")


@dataclass(frozen=True)
class LinearHead:
    """mean, scale, coef: (D,) float64; intercept: () float64; alpha: the ridge penalty chosen on train (reported)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    alpha: float = float("nan")

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline) -> LinearHead:
        """The arrays of a fitted ``StandardScaler`` -> ``RidgeCV`` pipeline with one target."""
        scaler, ridge = pipeline[0], pipeline[-1]
        coef = np.asarray(ridge.coef_, dtype=np.float64)
        if coef.ndim != 1:
            raise ValueError(f"a head predicts one phenotype; this ridge has coefficients of shape {coef.shape}")
        return cls(np.asarray(scaler.mean_, dtype=np.float64), np.asarray(scaler.scale_, dtype=np.float64), coef,
                   np.asarray(ridge.intercept_, dtype=np.float64).reshape(()), float(getattr(ridge, "alpha_", np.nan)))

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], dim: int, name: str, alpha: float = float("nan")) -> LinearHead:
        """A head from stored arrays (a bundle's), each shape checked against the embedding size ``dim``."""
        expected = {"mean": (dim,), "scale": (dim,), "coef": (dim,), "intercept": ()}
        for key, shape in expected.items():
            if key not in arrays:
                raise ValueError(f"head {name}: no {key!r} array")
            if tuple(arrays[key].shape) != shape:
                raise ValueError(f"head {name}: {key} has shape {tuple(arrays[key].shape)}, expected {shape}")
            if not np.all(np.isfinite(arrays[key])):
                raise ValueError(f"head {name}: {key} holds non-finite values")
        if np.any(arrays["scale"] <= 0):
            raise ValueError(f"head {name}: scale must be positive")
        return cls(*(np.asarray(arrays[key], dtype=np.float64) for key in HEAD_ARRAYS), alpha=alpha)

    def arrays(self) -> dict[str, np.ndarray]:
        return {key: getattr(self, key) for key in HEAD_ARRAYS}

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        """(N,) float64 predictions of (N, D) embeddings."""
        standardised = (np.asarray(embeddings, dtype=np.float64) - self.mean) / self.scale
        return standardised @ self.coef + self.intercept
