"""The orders in which the stages visit rows: shuffled training batches and length-sorted
evaluation batches (row indices; callers gather and scatter by them)."""

from __future__ import annotations

import numpy as np


def shuffled_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A seeded permutation of range(n) cut into batches of `batch_size` (the last may be short)."""
    order = rng.permutation(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def length_sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Evaluation batches of similar lengths (least padding); callers scatter back by index."""
    order = np.argsort(lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
