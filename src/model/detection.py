"""Noise detection: how well a per-example score finds the wrongly labelled examples.

Diagnostics only: the gold labels (`wrong`) enter here and nowhere in the method. Three
detectors from one stage-1 run, all on train+validation:
- dynamics: DyGen's score (mean + std of the distance to the noisy label's centroid); flags
  the top floor(r * N), as the method's marking does;
- loss: the last-epoch cross-entropy on the noisy label; flags the top floor(r * N) too;
- confident learning (Northcutt et al., JAIR 2021): per-class thresholds and the off-diagonal
  of the confident joint; it picks its own number of flags.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


def flag_top(scores: np.ndarray, ratio: float) -> np.ndarray:
    """Boolean mask of the floor(ratio * N) largest scores (ties: the earlier index first)."""
    count = int(ratio * len(scores))
    flags = np.zeros(len(scores), dtype=bool)
    if count > 0:
        flags[np.argsort(-np.asarray(scores), kind="stable")[:count]] = True
    return flags


def cross_entropy_scores(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """-log p(noisy label | x): probs [N, C], labels [N] -> [N]."""
    picked = probs[np.arange(len(labels)), labels]
    return -np.log(np.clip(picked, 1e-12, None))


def confident_thresholds(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """t_j = mean of p_j over the examples labelled j ([C]); +inf for a class nobody carries."""
    t = np.full(num_classes, np.inf)
    for j in range(num_classes):
        rows = labels == j
        if rows.any():
            t[j] = probs[rows, j].mean()
    return t


def confident_joint(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The confident joint C[noisy, true] ([C, C] counts) and each example's y* ([N], -1: none).

    y*(x) = argmax_{l : p_l(x) >= t_l} p_l(x), over the classes whose probability reaches their
    threshold; an example with no such class is not counted (y* = -1).
    """
    t = confident_thresholds(probs, labels, num_classes)
    above = probs >= t[None, :]  # [N, C]
    masked = np.where(above, probs, -np.inf)
    y_star = np.where(above.any(1), masked.argmax(1), -1)
    joint = np.zeros((num_classes, num_classes), dtype=np.int64)
    counted = y_star >= 0
    np.add.at(joint, (labels[counted], y_star[counted]), 1)
    return joint, y_star


def confident_learning_flags(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """The paper's C_{ỹ,y*} rule: flag the examples in the off-diagonal of the confident joint.

    (cleanlab's `find_label_issues` further unflags examples whose argmax is their label; the
    paper's rule, used here, does not.)
    """
    _, y_star = confident_joint(probs, labels, num_classes)
    return (y_star >= 0) & (y_star != labels)


def margin_scores(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """max_{k != ỹ} p_k - p_ỹ: confident learning's ranking (its normalised margin, negated), [N]."""
    own = probs[np.arange(len(labels)), labels]
    others = probs.copy()
    others[np.arange(len(labels)), labels] = -np.inf
    return others.max(1) - own


def detection_metrics(flags: np.ndarray, scores: np.ndarray, wrong: np.ndarray) -> dict:
    """Precision, recall and F1 of `flags`, ROC AUC of `scores` (higher = more likely wrong)."""
    flags, wrong = np.asarray(flags, bool), np.asarray(wrong, bool)
    hits = int((flags & wrong).sum())
    precision = hits / flags.sum() if flags.any() else 0.0
    recall = hits / wrong.sum() if wrong.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    auc = float(roc_auc_score(wrong, scores)) if 0 < wrong.sum() < len(wrong) else None
    return {"flagged": int(flags.sum()), "truly_noisy": int(wrong.sum()), "precision": float(precision),
            "recall": float(recall), "f1": float(f1), "roc_auc": auc}


def detector_scores(dynamics: np.ndarray, probs: np.ndarray, labels: np.ndarray, num_classes: int,
                    ratio: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{detector: (flags [N], scores [N])} for the dynamics score, the loss, and confident learning.

    dynamics [N]: DyGen's score; probs [N, C]: the last-epoch (model-averaged) probabilities.
    """
    loss = cross_entropy_scores(probs, labels)
    return {
        "dynamics": (flag_top(dynamics, ratio), dynamics),
        "loss": (flag_top(loss, ratio), loss),
        "confident_learning": (confident_learning_flags(probs, labels, num_classes), margin_scores(probs, labels)),
    }


def clean_noisy_curves(distances: np.ndarray, wrong: np.ndarray) -> dict[str, list[float]]:
    """Per-epoch mean and std of the own-label distance over truly clean / truly wrong examples.

    distances [E, N] -> lists of length E (for the dynamics figure).
    """
    out = {}
    for name, rows in (("clean", ~wrong), ("noisy", wrong)):
        part = distances[:, rows]
        out[f"{name}_mean"] = part.mean(1).tolist() if rows.any() else []
        out[f"{name}_std"] = part.std(1).tolist() if rows.any() else []
    return out
