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

from src.dynamics.marking import cross_entropy_scores, mark_noisy
from src.noise_rate import confident_joint


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


def precision_recall(flags: np.ndarray, wrong: np.ndarray) -> tuple[float, float]:
    """Share of the flagged that are wrong, share of the wrong that are flagged (0 when empty)."""
    flags, wrong = np.asarray(flags, bool), np.asarray(wrong, bool)
    hits = int((flags & wrong).sum())
    return (hits / flags.sum() if flags.any() else 0.0), (hits / wrong.sum() if wrong.any() else 0.0)


def detection_metrics(flags: np.ndarray, scores: np.ndarray, wrong: np.ndarray) -> dict:
    """Precision, recall and F1 of `flags`, ROC AUC of `scores` (higher = more likely wrong)."""
    flags, wrong = np.asarray(flags, bool), np.asarray(wrong, bool)
    precision, recall = precision_recall(flags, wrong)
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
        "dynamics": (mark_noisy(dynamics, ratio), dynamics),
        "loss": (mark_noisy(loss, ratio), loss),
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
