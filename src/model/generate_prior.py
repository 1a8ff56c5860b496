"""The kNN prior on first-epoch embeddings, and the Dirichlet prior parameters built from it."""

from __future__ import annotations

import numpy as np
import sklearn
from sklearn.neighbors import KNeighborsClassifier

from src.errors import UserError


def knn_predict_proba(
    embeddings: np.ndarray, labels: np.ndarray, marked: np.ndarray, num_classes: int, k: int = 10,
    rows: int | None = None,
) -> np.ndarray:
    """Distance-weighted kNN fitted on the unmarked examples; probabilities for the first `rows`
    examples (all by default: a prior is needed only for the rows stage 2 trains on).

    embeddings [N, D], labels [N] (noisy), marked [N] bool -> [rows, C].
    """
    keep = ~np.asarray(marked, dtype=bool)
    if keep.sum() < k:
        raise UserError(f"only {int(keep.sum())} unmarked examples, but the kNN prior needs k={k}; "
                        f"lower --noise_ratio or use more data")
    knn = KNeighborsClassifier(n_neighbors=k, weights="distance")
    knn.fit(np.asarray(embeddings[keep], dtype=np.float32), labels[keep])
    query = np.asarray(embeddings[:rows], dtype=np.float32)
    proba = np.zeros((len(query), num_classes))
    with sklearn.config_context(working_memory=128):  # MB per distance chunk (default 1 GB)
        proba[:, knn.classes_] = knn.predict_proba(query)
    return proba


def dirichlet_prior(
    knn_proba: np.ndarray, mode: str, prior_norm: float, selected_class: int | None = None
) -> np.ndarray:
    """Dirichlet prior parameters [N, C].

    onehot: 1 + 1/C everywhere, plus prior_norm on the kNN's predicted class.
    proba:  prior_norm * p + 1 + 1/C, p optionally kept to its top `selected_class` entries.
    """
    n, num_classes = knn_proba.shape
    base = 1.0 + 1.0 / num_classes
    if mode == "onehot":
        alpha = np.full((n, num_classes), base)
        alpha[np.arange(n), knn_proba.argmax(1)] += prior_norm
        return alpha
    if mode == "proba":
        p = knn_proba
        if selected_class:
            cutoff = -np.sort(-p, axis=1)[:, min(selected_class, num_classes) - 1 : min(selected_class, num_classes)]
            p = np.where(p >= cutoff, p, 0.0)
            p = p / np.maximum(p.sum(1, keepdims=True), 1e-12)
        return prior_norm * p + base
    raise ValueError(f"unknown knn mode {mode!r}")
