"""Training dynamics: Euclidean distance of each embedding to its noisy label's class centroid.

Nothing here builds an N x C x D tensor: centroids are a scatter-add, distances are cdist
([N, C]) or a gather of one centroid per example ([N]).
"""

from __future__ import annotations

import torch

# Rows read and widened to float32 at a time: a half-precision [N, D] is never copied whole.
ROW_CHUNK = 1024  # 3 MB float32 temporaries at D = 768: cache-sized, and reused by the allocator


def class_centroids(embeddings: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Mean embedding per class. embeddings [N, D], labels [N] -> [C, D] float32 (zeros for empty classes)."""
    sums = torch.zeros(num_classes, embeddings.shape[1], device=embeddings.device)
    for rows, row_labels in zip(embeddings.split(ROW_CHUNK), labels.split(ROW_CHUNK)):
        sums.index_add_(0, row_labels, rows.float())
    return sums / _class_counts(labels, num_classes)[:, None]


def _class_counts(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.bincount(labels, minlength=num_classes).clamp(min=1).float()


def centroid_distances(embeddings: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Distance of every example to every centroid: [N, D], [C, D] -> [N, C]."""
    return torch.cdist(embeddings.float(), centroids.float())


def label_centroid_distance(embeddings: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Distance of each example to the centroid of its own (noisy) label: [N]."""
    centroids = class_centroids(embeddings, labels, num_classes)
    out = torch.empty(len(embeddings), device=embeddings.device)
    for rows, row_labels, row_out in zip(embeddings.split(ROW_CHUNK), labels.split(ROW_CHUNK), out.split(ROW_CHUNK)):
        row_out.copy_((rows.float() - centroids[row_labels]).norm(dim=1))
    return out


def distance_trajectories(trajectory, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-epoch own-label distances of the first len(labels) rows: trajectory [N, E, D] -> [E, N].

    `trajectory` is an array or a `RowFile`, read ROW_CHUNK rows at a time in two passes (the
    centroids of every epoch, then the distances), so neither it nor a float copy of it is
    held whole.
    """
    n = len(labels)
    epochs, dim = trajectory.shape[1:]
    sums = torch.zeros(epochs, num_classes, dim)
    for start in range(0, n, ROW_CHUNK):
        rows = torch.as_tensor(trajectory[start : min(n, start + ROW_CHUNK)])  # [R, E, D]
        row_labels = labels[start : start + len(rows)]
        for e in range(epochs):
            sums[e].index_add_(0, row_labels, rows[:, e].float())
    centroids = sums / _class_counts(labels, num_classes)[:, None]  # [E, C, D]
    out = torch.empty(epochs, n)
    for start in range(0, n, ROW_CHUNK):
        rows = torch.as_tensor(trajectory[start : min(n, start + ROW_CHUNK)])
        row_labels = labels[start : start + len(rows)]
        for e in range(epochs):
            out[e, start : start + len(rows)] = (rows[:, e].float() - centroids[e, row_labels]).norm(dim=1)
    return out


def dynamics_score(distances: torch.Tensor) -> torch.Tensor:
    """Score = mean over epochs + standard deviation over epochs (population std). [E, N] -> [N]."""
    return distances.mean(0) + distances.std(0, unbiased=False)


def mark_noisy(scores: torch.Tensor, ratio: float) -> torch.Tensor:
    """Boolean mask of the floor(ratio * N) examples with the largest score."""
    count = int(ratio * len(scores))
    marked = torch.zeros(len(scores), dtype=torch.bool)
    if count > 0:
        marked[torch.topk(scores, count).indices] = True
    return marked
