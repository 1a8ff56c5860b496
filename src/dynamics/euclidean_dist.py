"""Training dynamics: Euclidean distance of each embedding to its noisy label's class centroid,
and each example's score (mean + spread over epochs). The rows the score marks: `marking.py`.

Nothing here builds an N x C x D tensor: centroids are a scatter-add, distances a gather of
one centroid per example ([N]). Embeddings are read a chunk of rows at
a time, so a half-precision buffer (or a trajectory file) is never widened whole.
"""

from __future__ import annotations

import torch

from src.storage.rows import row_chunks

# Rows read and widened to float32 at a time: a half-precision [N, D] is never copied whole.
ROW_CHUNK = 1024  # 3 MB float32 temporaries at D = 768: cache-sized, and reused by the allocator


def trajectory_centroids(trajectory, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Every epoch's class centroids from the first len(labels) rows: [N, E, D] -> [E, C, D]
    float32 (zeros for empty classes)."""
    sums = torch.zeros(trajectory.shape[1], num_classes, trajectory.shape[2])
    for start, rows in row_chunks(trajectory, len(labels), ROW_CHUNK):
        rows, row_labels = torch.as_tensor(rows), labels[start : start + len(rows)]  # [R, E, D], [R]
        for e, epoch_sums in enumerate(sums):
            epoch_sums.index_add_(0, row_labels, rows[:, e].float())
    counts = torch.bincount(labels, minlength=num_classes).clamp(min=1).float()
    return sums / counts[:, None]


def distance_trajectories(trajectory, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-epoch own-label distances of the first len(labels) rows: trajectory [N, E, D] -> [E, N].

    `trajectory` is an array, a tensor or a `RowFile`, read ROW_CHUNK rows at a time in two
    passes (the centroids of every epoch, then the distances), so neither it nor a float copy of
    it is held whole.
    """
    centroids = trajectory_centroids(trajectory, labels, num_classes)  # [E, C, D]
    out = torch.empty(len(centroids), len(labels))
    for start, rows in row_chunks(trajectory, len(labels), ROW_CHUNK):
        rows, row_labels = torch.as_tensor(rows), labels[start : start + len(rows)]
        for e, epoch_centroids in enumerate(centroids):
            out[e, start : start + len(rows)] = (rows[:, e].float() - epoch_centroids[row_labels]).norm(dim=1)
    return out


def dynamics_score(distances: torch.Tensor) -> torch.Tensor:
    """Score = mean over epochs + sample standard deviation over epochs (divisor E - 1, as the
    paper's `torch.std`). [E, N] -> [N]. With one epoch there is no spread: the score is the mean."""
    if len(distances) < 2:
        return distances.mean(0)
    return distances.mean(0) + distances.std(0, correction=1)
