"""The kNN prior on first-epoch embeddings, NPC's batch-anchor variant of it, and the Dirichlet
prior parameters built from either."""

from __future__ import annotations

import numpy as np
import torch

from src.errors import UserError
from src.prior.neighbours import nearest_rows, weighted_vote

K_NEIGHBOURS = 10  # the prior's k (the paper's and NPC's KNeighborsClassifier(n_neighbors=10))


def knn_predict_proba(
    embeddings: np.ndarray, labels: np.ndarray, marked: np.ndarray, num_classes: int, k: int = K_NEIGHBOURS,
    rows: int | None = None, screen_dtype: torch.dtype = torch.float32, balance: str = "none",
) -> np.ndarray:
    """Distance-weighted kNN fitted on the unmarked examples; probabilities for the first `rows`
    examples (all by default: a prior is needed only for the rows stage 2 trains on).

    embeddings [N, D], labels [N] (noisy), marked [N] bool -> [rows, C].
    The neighbours come from `nearest_rows`, the probabilities from `weighted_vote` (sklearn's
    classifier: 1/distance weights, an exact match outweighing all others). `balance` "class"
    divides each class's vote by its share of the fitted rows (`class_balanced`).
    """
    keep = ~np.asarray(marked, dtype=bool)
    if keep.sum() < k:
        raise UserError(f"only {int(keep.sum())} examples to fit the kNN prior on, but it needs k={k}; "
                        f"lower --noise_ratio or use more data")
    embeddings = np.asarray(embeddings)
    fit = torch.as_tensor(embeddings[keep])  # [F, D] in the stored dtype (float16)
    distances, indices = nearest_rows(torch.as_tensor(embeddings[:rows]), fit, k,
                                      screen_dtype=screen_dtype)
    proba = weighted_vote(distances, indices, np.asarray(labels)[keep], num_classes)
    return class_balanced(proba, np.asarray(labels)[keep], num_classes) if balance == "class" else proba


def class_balanced(proba: np.ndarray, fit_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """[Q, C] the vote with each class's share divided by that class's share of the fitted rows
    (fit_labels [F]), renormalised: a neighbourhood's mix measured against the classes' sizes, so
    that a large class does not win a mixed neighbourhood by its size alone."""
    share = np.bincount(fit_labels, minlength=num_classes) / len(fit_labels)
    balanced = proba / np.where(share > 0, share, 1.0)
    return balanced / balanced.sum(1, keepdims=True)


def npc_anchors(probs: np.ndarray, labels: np.ndarray, batches: list[np.ndarray]) -> np.ndarray:
    """NPC's kNN training set (Bae et al., ICML 2022; `KNN_Prior.get_prior` in BaeHeeSun/NPC's
    generate_prior.py): in each training batch, for each class, the one example labelled with
    that class whose classifier probability of its label is highest (ties: the earlier row).

    probs [N, C] (the classifier's), labels [N] (noisy), batches: row indices -> bool mask [N].
    """
    probs, labels = np.asarray(probs), np.asarray(labels)
    own = probs[np.arange(len(labels)), labels]  # [N]
    anchors = np.zeros(len(labels), dtype=bool)
    for batch in batches:
        batch = np.asarray(batch)
        for cls in np.unique(labels[batch]):
            rows = batch[labels[batch] == cls]
            anchors[rows[np.argmax(own[rows])]] = True
    return anchors


def dirichlet_prior(
    knn_proba: np.ndarray, mode: str, prior_norm: float, selected_class: int | None = 1
) -> np.ndarray:
    """Dirichlet prior parameters [N, C] from the kNN's class probabilities [N, C].

    onehot: 1 + 1/C everywhere, plus prior_norm on the kNN's predicted class.
    proba:  prior_norm * p + 1 + 1/C, where p keeps only its top `selected_class` entries as they
            are (not renormalised; the rest 0), as the paper's code does; None keeps all of p.
    """
    n, num_classes = knn_proba.shape
    base = 1.0 + 1.0 / num_classes
    if mode == "onehot":
        alpha = np.full((n, num_classes), base)
        alpha[np.arange(n), knn_proba.argmax(1)] += prior_norm
        return alpha
    if mode == "proba":
        p = np.asarray(knn_proba, dtype=np.float64)
        if selected_class is not None and selected_class < num_classes:
            top = np.argsort(-p, axis=1, kind="stable")[:, :selected_class]  # [N, selected_class]
            kept = np.zeros_like(p)
            np.put_along_axis(kept, top, np.take_along_axis(p, top, 1), 1)
            p = kept
        return prior_norm * p + base
    raise ValueError(f"unknown knn mode {mode!r}")
