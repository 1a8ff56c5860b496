"""The kNN prior on first-epoch embeddings, and the Dirichlet prior parameters built from it."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.neighbors import KNeighborsClassifier

from src.errors import UserError
from src.utils.neighbours import nearest_rows


def knn_predict_proba(
    embeddings: np.ndarray, labels: np.ndarray, marked: np.ndarray, num_classes: int, k: int = 10,
    rows: int | None = None,
) -> np.ndarray:
    """Distance-weighted kNN fitted on the unmarked examples; probabilities for the first `rows`
    examples (all by default: a prior is needed only for the rows stage 2 trains on).

    embeddings [N, D], labels [N] (noisy), marked [N] bool -> [rows, C].
    The neighbour search is `nearest_rows`; scikit-learn's KNeighborsClassifier takes the
    neighbours as a sparse distance graph ("precomputed") and does the rest: the 1/distance
    weights (an exact match outweighs all others) and the class probabilities.
    """
    keep = ~np.asarray(marked, dtype=bool)
    if keep.sum() < k:
        raise UserError(f"only {int(keep.sum())} unmarked examples, but the kNN prior needs k={k}; "
                        f"lower --noise_ratio or use more data")
    fit = torch.as_tensor(np.asarray(embeddings)[keep])  # [F, D] in the stored dtype (float16)
    query = torch.as_tensor(np.asarray(embeddings)[:rows])  # a view
    distances, indices = nearest_rows(query, fit, k)
    graph = sp.csr_matrix((distances.ravel(), indices.ravel(), np.arange(0, distances.size + 1, k)),
                          shape=(len(query), len(fit)))  # explicit zeros (exact matches) stay neighbours
    knn = KNeighborsClassifier(n_neighbors=k, weights="distance", metric="precomputed")
    # with a precomputed query graph only the number of fitted rows is read from the fit matrix
    knn.fit(sp.eye(len(fit), format="csr"), labels[keep])
    proba = np.zeros((len(query), num_classes))
    proba[:, knn.classes_] = knn.predict_proba(graph)
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
