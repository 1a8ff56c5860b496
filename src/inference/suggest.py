"""The labels a user applies: the given label, unless the cleaned posterior says another label is
more likely right by more than a margin; the margin set on trusted rows, cross-fitted.

`cleaned_label` (argmax P(y | x, given)) changes every row where any other label is more
probable, which on real noise can make labels worse: the posterior is not calibrated there. A
suggested change needs the evidence to beat the given label by `margin`. With trusted rows the
margin is the one that makes the suggestions agree with the verified labels most often, on
posteriors computed without each row's own verified label (`crossfit_folds`); the share of
suggested changes that are right is estimated with a margin chosen on the other folds.
"""

from __future__ import annotations

import numpy as np

from src.stats import wilson_interval

NEVER = 1.0  # a margin no probability gap exceeds: keep every given label


def label_prob(posterior: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """[N] each row's posterior [N, C] probability of its label [N] (of the given label:
    `given_label_prob`, low where the label is likely wrong)."""
    return posterior[np.arange(len(labels)), labels]


def gaps(posterior: np.ndarray, given: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The most probable label [N] and how much more probable it is than the given one [N] (0
    where it is the given one). posterior [N, C] = P(y | x, given), given [N]."""
    best = posterior.argmax(1)
    return best, label_prob(posterior, best) - label_prob(posterior, given)


def suggest_labels(posterior: np.ndarray, given: np.ndarray, margin: float) -> np.ndarray:
    """[N] the most probable label where it beats the given one by more than `margin`, else the
    given label (margin 0: `cleaned_label`; `NEVER`: the given labels)."""
    best, gap = gaps(posterior, given)
    return np.where(gap > margin, best, given)


def choose_margin(posterior: np.ndarray, given: np.ndarray, verified: np.ndarray) -> float:
    """The margin whose suggestions agree with the verified labels [T] most often; of equally good
    margins the largest (the fewest changes). Only the observed gaps, 0 and `NEVER` need trying:
    between two observed gaps every margin suggests the same."""
    _, gap = gaps(posterior, given)
    candidates = np.unique(np.concatenate([[0.0, NEVER], gap[gap > 0]]))
    right = [int((suggest_labels(posterior, given, m) == verified).sum()) for m in candidates]
    return float(candidates[np.flatnonzero(np.array(right) == max(right)).max()])


def crossfit_folds(n: int, folds: int, seed: int) -> np.ndarray:
    """[n] the fold (0..folds-1) of each trusted row, a seeded shuffle dealt round-robin."""
    fold = np.empty(n, dtype=int)
    fold[np.random.default_rng([seed, 7]).permutation(n)] = np.arange(n) % folds
    return fold


def change_quality(posterior: np.ndarray, given: np.ndarray, verified: np.ndarray, fold: np.ndarray) -> dict:
    """How often a suggested change is right, estimated on trusted rows [T] whose `posterior` was
    computed without their own verified label: each fold's changes use the margin chosen on the
    other folds, so no row informs the margin it is judged with. Also how often the given and the
    suggested labels are right there. Shares with their 95% Wilson intervals (None when there is
    nothing to count)."""
    suggested = np.empty_like(given)
    for k in np.unique(fold):
        mine, others = fold == k, fold != k
        margin = choose_margin(posterior[others], given[others], verified[others]) if others.any() else NEVER
        suggested[mine] = suggest_labels(posterior[mine], given[mine], margin)
    changed = suggested != given
    right = int((suggested[changed] == verified[changed]).sum())
    return {"changes_right": counted_share(right, int(changed.sum())),
            "given_right": counted_share(int((given == verified).sum()), len(given)),
            "suggested_right": counted_share(int((suggested == verified).sum()), len(given))}


def changes_help(quality: dict) -> bool:
    """Whether, cross-fitted (`change_quality`), the suggested labels were right strictly more often
    than the given ones: if not, the changes are no better than a coin toss against the given
    labels there, and none is suggested."""
    return quality["suggested_right"]["count"] > quality["given_right"]["count"]


def counted_share(count: int, total: int) -> dict:
    """`count` of `total` as a share with its 95% Wilson interval (None when there is nothing to count)."""
    return {"count": count, "of": total, "share": count / total if total else None,
            "interval": list(wilson_interval(count, total)) if total else None}
