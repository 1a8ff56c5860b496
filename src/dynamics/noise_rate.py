"""Estimating the share of wrong labels from a run itself, for `--noise_ratio auto`.

Every estimator sees only the noisy labels and what stage 1 produced from them (embeddings,
class probabilities, dynamics scores); gold labels never reach them. Candidates:

- `gmm`:        weight of the high-score component of a two-component Gaussian mixture fitted
                to the dynamics scores (clean examples near their centroid, noisy ones far).
- `knn_first`, `knn_last`: share of examples whose leave-one-out kNN prediction on the
                first / last epoch's embeddings differs from their noisy label.
- `cj_first`, `cj_last`: the confident-joint estimate (Northcutt et al., JAIR 2021) on the same
                leave-one-out kNN probabilities.
- `classifier`: share where the averaged last-epoch stage-1 classifiers disagree with the label.

`AUTO_ESTIMATOR` names the one `--noise_ratio auto` uses; it was chosen by measurement on data
with gold labels (see the readme section "Cleaning your own data").
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.mixture import GaussianMixture

from src.utils.neighbours import nearest_rows, weighted_vote
from src.utils.rows import column

# The candidate closest to the true rate on the data sets with gold labels (docs/noise-rate.md).
AUTO_ESTIMATOR = "knn_last"


def gmm_noise_rate(scores: np.ndarray, seed: int = 0) -> float:
    """Mean responsibility of the higher-mean component of a 2-Gaussian mixture. [N] -> rate."""
    x = np.asarray(scores, dtype=np.float64).reshape(-1, 1)
    spread = x.std()
    if len(x) < 2 or spread == 0:
        return 0.0
    x = (x - x.mean()) / spread
    mixture = GaussianMixture(2, n_init=3, random_state=seed).fit(x)
    high = int(np.argmax(mixture.means_[:, 0]))
    return float(mixture.predict_proba(x)[:, high].mean())


def loo_knn_proba(embeddings: np.ndarray, labels: np.ndarray, num_classes: int, k: int = 10,
                  screen_dtype: torch.dtype = torch.float32) -> np.ndarray:
    """Distance-weighted kNN class probabilities, each example left out of its own vote.

    embeddings [N, D], labels [N] (noisy) -> [N, C]. Exact duplicates of an example still vote
    (they are other examples); their zero distance gives them all the weight (`weighted_vote`).
    """
    x = torch.as_tensor(np.asarray(embeddings))
    n = len(x)
    k = min(k, n - 1)
    # [N, k + 1], each row's own among them
    distances, neighbours = nearest_rows(x, x, k + 1, screen_dtype=screen_dtype)
    # leave each example out: drop its own entry (or, among more zero-distance duplicates than
    # k + 1, the farthest), keeping k others, as sklearn's kneighbors() with no query does
    own = neighbours == np.arange(n)[:, None]
    drop = np.where(own.any(1), own.argmax(1), k)
    others = np.ones_like(own)
    others[np.arange(n), drop] = False
    return weighted_vote(distances[others].reshape(n, k), neighbours[others].reshape(n, k),
                         np.asarray(labels), num_classes)


def disagreement_rate(proba: np.ndarray, labels: np.ndarray) -> float:
    """Share of examples whose most probable class is not their label. [N, C], [N] -> rate."""
    return float((np.asarray(proba).argmax(1) != np.asarray(labels)).mean())


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


def confident_joint_rate(proba: np.ndarray, labels: np.ndarray) -> float:
    """Noise rate from the calibrated confident joint of out-of-sample probabilities.

    Each row of the confident joint (`confident_joint`) is rescaled to the number of examples
    with that label, and the rate is the off-diagonal share. proba [N, C] (not fitted on the
    example itself), labels [N] -> rate.
    """
    proba, labels = np.asarray(proba, dtype=np.float64), np.asarray(labels)
    num_classes = proba.shape[1]
    counts = np.bincount(labels, minlength=num_classes)  # [C]
    joint, _ = confident_joint(proba, labels, num_classes)
    rows = joint.sum(1, keepdims=True)
    calibrated = np.where(rows > 0, joint / np.maximum(rows, 1) * counts[:, None], 0.0)
    total = calibrated.sum()
    return float(1.0 - np.trace(calibrated) / total) if total > 0 else 0.0


def estimate_noise_rates(
    embeddings, probs: np.ndarray, scores: np.ndarray, labels: np.ndarray,
    num_classes: int, k: int = 10, seed: int = 0,
) -> dict[str, float]:
    """Every candidate estimate, each averaged over the M models.

    embeddings: per model [N' >= N, E, D] (arrays or `RowFile`s), of which the first N rows are
    train+validation; probs [M, N, C] restricted to those rows, scores [M, N] dynamics scores,
    labels [N] noisy labels.
    """
    num_models = len(embeddings)
    out: dict[str, list[float]] = {}
    for m in range(num_models):
        out.setdefault("gmm", []).append(gmm_noise_rate(scores[m], seed))
        for name, epoch in (("first", 0), ("last", -1)):
            proba = loo_knn_proba(column(embeddings[m], epoch, len(labels)), labels, num_classes, k)
            out.setdefault(f"knn_{name}", []).append(disagreement_rate(proba, labels))
            out.setdefault(f"cj_{name}", []).append(confident_joint_rate(proba, labels))
    estimates = {name: float(np.mean(values)) for name, values in out.items()}
    estimates["classifier"] = disagreement_rate(np.asarray(probs).mean(0), labels)
    return estimates
