"""Estimating r, the share of wrong labels, for `--noise_ratio auto` (and the per-class shares of
`--mark_share per_class`).

With a trusted sample (rows whose label someone verified: `--trusted_column`, `--trusted
validation`) the estimate is the share of those rows whose given label is wrong, with a 95%
Wilson interval (`src/stats.py`'s `trusted_noise_rate`, which `--describe` also reports); it
needs no model. Without one, the estimators below see only the noisy labels and what the models
produced from them; gold labels never reach them. Candidates:

- `gmm`:        weight of the high-score component of a two-component Gaussian mixture fitted
                to the dynamics scores (clean examples near their centroid, noisy ones far).
- `knn_first`, `knn_last`: share of examples whose leave-one-out kNN prediction on the
                first / last epoch's embeddings differs from their noisy label.
- `cj_first`, `cj_last`: the confident-joint estimate (Northcutt et al., JAIR 2021) on the same
                leave-one-out kNN probabilities.
- `classifier`: share where the averaged last-epoch stage-1 classifiers disagree with the label.
- `frozen_lr`, `frozen_cj`: the disagreement rate and the confident-joint estimate of out-of-fold
                logistic-regression probabilities on the *pretrained* (not fine-tuned) model's
                mean-pooled embeddings, the way cleanlab's text recipe works. Unlike the others
                it does not read the noise back from models fitted to the noisy labels, which
                learn a noise that follows the text (WRENCH TREC's) as if it were signal.

`AUTO_ESTIMATOR` names the one `--noise_ratio auto` uses; it was chosen by measurement on data
with gold labels (see the readme section "Cleaning your own data").
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from src.prior.neighbours import nearest_rows, weighted_vote
from src.storage.rows import column

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


def frozen_oof_proba(features: np.ndarray, labels: np.ndarray, num_classes: int, folds: int = 5,
                     seed: int = 0) -> np.ndarray:
    """Out-of-fold class probabilities of a logistic regression on fixed features.

    features [N, D] (e.g. a pretrained encoder's embeddings), labels [N] (noisy) -> [N, C]: each
    row predicted by a model fitted on the other folds (stratified when every class has `folds`
    members). A class absent from a fold's training rows gets probability 0 there.
    """
    features, labels = np.asarray(features, dtype=np.float32), np.asarray(labels)
    counts = np.bincount(labels, minlength=num_classes)
    stratify = counts[counts > 0].min() >= folds
    splitter = (StratifiedKFold if stratify else KFold)(n_splits=folds, shuffle=True, random_state=seed)
    out = np.zeros((len(labels), num_classes))
    for fit, held_out in splitter.split(features, labels if stratify else None):
        if len(np.unique(labels[fit])) < 2:  # one class only: it is all this fold can predict
            out[held_out, labels[fit][0]] = 1.0
            continue
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        model.fit(features[fit], labels[fit])
        out[np.ix_(held_out, model.classes_)] = model.predict_proba(features[held_out])
    return out


def frozen_noise_rates(features: np.ndarray, labels: np.ndarray, num_classes: int, seed: int = 0) -> dict[str, float]:
    """`frozen_lr` and `frozen_cj` from the pretrained model's embeddings [N, D] and labels [N]."""
    proba = frozen_oof_proba(features, labels, num_classes, seed=seed)
    return {"frozen_lr": disagreement_rate(proba, labels), "frozen_cj": confident_joint_rate(proba, labels)}


SHRINK_ROWS = 10  # per-class shares: the overall share counts as this many trusted rows of each class


def trusted_class_shares(given: np.ndarray, verified: np.ndarray, num_classes: int, overall: float) -> np.ndarray:
    """[C] the share of wrong labels among the trusted rows given each label, shrunk toward
    `overall` (as SHRINK_ROWS rows at that share), so that a class with few checked rows stays
    near the overall share. given, verified [T]."""
    rows = np.bincount(given, minlength=num_classes)
    wrong = np.bincount(given[given != verified], minlength=num_classes)
    return (wrong + SHRINK_ROWS * overall) / (rows + SHRINK_ROWS)


def confident_class_shares(probs: np.ndarray, labels: np.ndarray, num_classes: int, overall: float) -> np.ndarray:
    """[C] per noisy label, the share of its confidently counted rows whose confident label is
    another class (the off-diagonal of each row of `confident_joint`), scaled so that the shares
    mark `overall` of all rows in total: the confident joint says where the wrong labels are, the
    overall share how many there are."""
    labels = np.asarray(labels)
    joint, _ = confident_joint(np.asarray(probs, dtype=np.float64), labels, num_classes)
    counted, rows = joint.sum(1), np.bincount(labels, minlength=num_classes)
    off = np.where(counted > 0, 1 - np.diag(joint) / np.maximum(counted, 1), 0.0)
    total = (off * rows).sum()
    if total == 0:  # no sign of where: the same share everywhere
        return np.full(num_classes, overall)
    return np.clip(off * overall * rows.sum() / total, 0.0, 1.0)
