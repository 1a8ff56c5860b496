"""Marking: the rows a score puts among the probably noisy, and the scores that mark.

DyGen marks the floor(r * N) train + validation rows of largest dynamics score
(`euclidean_dist.dynamics_score`), of all rows at once (the paper) or, with `--mark_share
per_class`, within each noisy label's rows; `--mark_score loss` and `--no_dynamics` mark by the
last-epoch loss (`cross_entropy_scores`) instead.
"""

from __future__ import annotations

import numpy as np


def cross_entropy_scores(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """-log p(noisy label | x): probs [N, C], labels [N] -> [N]."""
    picked = probs[np.arange(len(labels)), labels]
    return -np.log(np.clip(picked, 1e-12, None))


def mark_noisy(scores, ratio: float, eligible: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask [N] of the floor(ratio * N') largest scores [N] among the N' eligible rows
    (all by default; a trusted row is not), ties: the earlier index first.

    The one top-share rule: DyGen's marking, and the diagnostics' flags of a score."""
    scores = np.asarray(scores)
    order = np.argsort(-scores, kind="stable")
    if eligible is not None:
        order = order[np.asarray(eligible, dtype=bool)[order]]
    count = int(ratio * len(order))
    marked = np.zeros(len(scores), dtype=bool)
    if count > 0:
        marked[order[:count]] = True
    return marked


def mark_noisy_per_class(scores, labels: np.ndarray, shares: np.ndarray,
                         eligible: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask [N]: within each noisy-label class c, the floor(shares[c] * N'_c) largest
    scores [N] among its N'_c eligible rows (`mark_noisy`'s rule, class by class). labels [N],
    shares [C]: the share of each class's labels to mark (not in the paper, which marks one share
    of all rows: a class whose labels are mostly wrong then gets no more marks than the others)."""
    labels = np.asarray(labels)
    eligible = np.ones(len(labels), dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    marked = np.zeros(len(labels), dtype=bool)
    for c, share in enumerate(shares):
        rows = np.flatnonzero(labels == c)
        marked[rows] = mark_noisy(np.asarray(scores)[rows], share, eligible[rows])
    return marked
