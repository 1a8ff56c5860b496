"""Synthetic label noise: pure functions of (labels, number of classes, rate, rng).

SN  symmetric:      with probability r*C/(C-1) a label is replaced by a uniform draw
                    from all C classes, so the expected flip rate is r.
ASN asymmetric:     with probability r, y -> (y + 1) mod C.
IDN instance-dep.:  per-example rate q_i ~ TruncNormal(r, 0.1, [0, 1]); a fixed random
                    projection of an instance feature vector picks where it flips to.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import truncnorm

NOISE_TYPES = ("SN", "ASN", "IDN")


def symmetric_noise(labels: np.ndarray, num_classes: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    if num_classes < 2 or rate <= 0:
        return labels.copy()
    resample = rng.random(len(labels)) < rate * num_classes / (num_classes - 1)
    draws = rng.integers(0, num_classes, size=len(labels))
    return np.where(resample, draws, labels)


def asymmetric_noise(labels: np.ndarray, num_classes: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    flip = rng.random(len(labels)) < rate
    return np.where(flip, (labels + 1) % num_classes, labels)


def instance_dependent_noise(
    labels: np.ndarray,
    num_classes: int,
    rate: float,
    rng: np.random.Generator,
    features: np.ndarray,
) -> np.ndarray:
    """IDN (Xia et al. 2020) on fixed instance features `features` [N, F]."""
    labels = np.asarray(labels, dtype=np.int64)
    n, num_features = features.shape
    if rate <= 0:
        return labels.copy()
    lo, hi = (0 - rate) / 0.1, (1 - rate) / 0.1
    flip_rate = truncnorm.rvs(lo, hi, loc=rate, scale=0.1, size=n, random_state=rng)  # [N]
    projection = rng.standard_normal((num_classes, num_features, num_classes))  # [C, F, C]
    scores = np.empty((n, num_classes))  # x_i . W[y_i], one product per class: no [N, F, C] copy
    for cls in np.unique(labels):
        rows = labels == cls
        scores[rows] = features[rows] @ projection[cls]  # [n_c, F] @ [F, C]
    scores[np.arange(n), labels] = -np.inf
    scores = scores - scores.max(axis=1, keepdims=True)
    flip_dist = np.exp(scores)
    flip_dist /= flip_dist.sum(axis=1, keepdims=True)
    flip_dist *= flip_rate[:, None]
    flip_dist[np.arange(n), labels] = 1.0 - flip_rate
    cumulative = flip_dist.cumsum(axis=1)
    u = rng.random((n, 1)) * cumulative[:, -1:]
    return (u > cumulative).sum(axis=1).clip(max=num_classes - 1).astype(np.int64)


def hashed_bag_of_words(texts: list[str], num_features: int = 256) -> np.ndarray:
    """The fixed IDN instance feature: an L2-normalised hashed bag of lower-cased words.

    Uses a stable hash (not Python's salted `hash`) so features are identical across runs.
    """
    import zlib

    features = np.zeros((len(texts), num_features), dtype=np.float64)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            features[i, zlib.crc32(word.encode("utf-8")) % num_features] += 1.0
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def add_noise(
    labels: np.ndarray,
    num_classes: int,
    noise_type: str,
    rate: float,
    rng: np.random.Generator,
    texts: list[str] | None = None,
) -> np.ndarray:
    """Apply one of SN / ASN / IDN to `labels` and return the noisy copy."""
    if noise_type == "SN":
        return symmetric_noise(labels, num_classes, rate, rng)
    if noise_type == "ASN":
        return asymmetric_noise(labels, num_classes, rate, rng)
    if noise_type == "IDN":
        if texts is None:
            raise ValueError("IDN needs the texts to build instance features")
        return instance_dependent_noise(labels, num_classes, rate, rng, hashed_bag_of_words(texts))
    raise ValueError(f"unknown noise type {noise_type!r}; expected one of {NOISE_TYPES}")
