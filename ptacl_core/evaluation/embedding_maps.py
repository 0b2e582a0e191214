"""2-D maps of embeddings (notebook 05's figure, notebook 06's linked map): standardise, then t-SNE or PCA."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

MAP_METHODS = ("tsne", "pca")


def embedding_map(x: np.ndarray, how: str = "tsne", seed: int = 0) -> np.ndarray:
    """(N, D) embeddings -> (N, 2) coordinates: each dimension standardised over the N rows, then t-SNE
    (perplexity min(30, N / 4), PCA initialisation) or PCA, seeded."""
    from sklearn.manifold import TSNE  # lazy: sklearn.manifold is slow to import, only t-SNE needs it

    if how not in MAP_METHODS:
        raise ValueError(f"map method must be one of {MAP_METHODS}, got {how!r}")
    z = (x - x.mean(0)) / (x.std(0) + 1e-6)
    if how == "tsne":
        return TSNE(perplexity=min(30, max(2, len(z) // 4)), init="pca", random_state=seed).fit_transform(z)
    return PCA(n_components=2, random_state=seed).fit_transform(z)
