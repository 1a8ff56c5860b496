"""Training dynamics: Euclidean distance of each embedding to its noisy label's class centroid.

Nothing here builds an N x C x D tensor: centroids are a scatter-add, distances are cdist
([N, C]) or a gather of one centroid per example ([N]).
"""

from __future__ import annotations

import torch


def class_centroids(embeddings: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Mean embedding per class. embeddings [N, D], labels [N] -> [C, D] (zeros for empty classes)."""
    embeddings = embeddings.float()
    sums = torch.zeros(num_classes, embeddings.shape[1], dtype=embeddings.dtype, device=embeddings.device)
    sums.index_add_(0, labels, embeddings)
    counts = torch.bincount(labels, minlength=num_classes).clamp(min=1).to(embeddings.dtype)
    return sums / counts[:, None]


def centroid_distances(embeddings: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Distance of every example to every centroid: [N, D], [C, D] -> [N, C]."""
    return torch.cdist(embeddings.float(), centroids.float())


def label_centroid_distance(embeddings: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Distance of each example to the centroid of its own (noisy) label: [N]."""
    centroids = class_centroids(embeddings, labels, num_classes)
    return (embeddings.float() - centroids[labels]).norm(dim=1)


def distance_trajectories(embeddings, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-epoch own-label distances. embeddings [E, N, D] (array or tensor) -> [E, N].

    Converts one epoch at a time so a half-precision host buffer is never copied whole.
    """
    return torch.stack([
        label_centroid_distance(torch.as_tensor(embeddings[e]).float(), labels, num_classes)
        for e in range(len(embeddings))
    ])


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
