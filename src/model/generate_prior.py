"""The kNN prior on first-epoch embeddings, and the Dirichlet prior parameters built from it."""

from __future__ import annotations

import numpy as np
import torch

from src.errors import UserError
from src.utils.neighbours import nearest_rows, weighted_vote


def knn_predict_proba(
    embeddings: np.ndarray, labels: np.ndarray, marked: np.ndarray, num_classes: int, k: int = 10,
    rows: int | None = None,
) -> np.ndarray:
    """Distance-weighted kNN fitted on the unmarked examples; probabilities for the first `rows`
    examples (all by default: a prior is needed only for the rows stage 2 trains on).

    embeddings [N, D], labels [N] (noisy), marked [N] bool -> [rows, C].
    The neighbours come from `nearest_rows`, the probabilities from `weighted_vote` (sklearn's
    classifier: 1/distance weights, an exact match outweighing all others).
    """
    keep = ~np.asarray(marked, dtype=bool)
    if keep.sum() < k:
        raise UserError(f"only {int(keep.sum())} unmarked examples, but the kNN prior needs k={k}; "
                        f"lower --noise_ratio or use more data")
    embeddings = np.asarray(embeddings)
    fit = torch.as_tensor(embeddings[keep])  # [F, D] in the stored dtype (float16)
    distances, indices = nearest_rows(torch.as_tensor(embeddings[:rows]), fit, k)
    return weighted_vote(distances, indices, np.asarray(labels)[keep], num_classes)


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
