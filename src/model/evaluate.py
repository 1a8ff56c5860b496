"""Inference from noisy-label predictions to true labels, and the reported metrics."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from src.model.network import DirichletVAE, dirichlet_mean


def true_label_probs(alpha_all: torch.Tensor, noisy_probs: torch.Tensor) -> torch.Tensor:
    """P(y | x) = mean_m sum_ỹ P_m(y | x, ỹ) P_m(ỹ | x), with P_m(y | x, ỹ) = (α-1)/sum(α-1).

    alpha_all [M, B, C(ỹ), C(y)], noisy_probs [M, B, C(ỹ)] -> [B, C(y)].
    The normaliser folds into the weights of a batched product, so the [M, B, C, C] joint is
    never built (it dominates the cost at 134 classes).
    """
    shifted = alpha_all - 1.0
    weights = noisy_probs / shifted.sum(-1)  # [M, B, C(ỹ)]
    return torch.einsum("mbk,mbky->by", weights, shifted) / alpha_all.shape[0]


@torch.no_grad()
def denoise(
    vaes: list[DirichletVAE], trajectories, index: np.ndarray, noisy_probs: np.ndarray,
    batch_size: int = 512,
) -> np.ndarray:
    """True-label probabilities [len(index), C] for the rows `index` (e.g. the test split).

    noisy_probs [M, len(index), C]: the stage-1 classifiers' softmax on those rows.
    """
    probs = torch.as_tensor(noisy_probs, dtype=torch.float32)
    out = torch.empty(len(index), vaes[0].num_classes)  # filled in place: no small tensors pinning the heap
    for start in range(0, len(index), batch_size):
        rows = index[start : start + batch_size]
        total = 0.0
        for m, vae in enumerate(vaes):  # one model at a time: a single [B, C, C] buffer alive
            alpha_all = vae.alpha_all_labels(trajectories(m, rows))[None]
            p = probs[m : m + 1, start : start + batch_size].to(alpha_all.device)
            total = total + true_label_probs(alpha_all, p)
        out[start : start + len(rows)] = total / len(vaes)
    return out.numpy()


@torch.no_grad()
def posterior_given_label(
    vaes: list[DirichletVAE], trajectories, index: np.ndarray, noisy_labels: np.ndarray,
    batch_size: int = 1024,
) -> np.ndarray:
    """P(y | x, observed ỹ) averaged over the models: the cleaned-label distribution [N, C]."""
    num_classes = vaes[0].num_classes
    out = torch.empty(len(index), num_classes)
    for start in range(0, len(index), batch_size):
        rows = index[start : start + batch_size]
        onehot = F.one_hot(torch.as_tensor(noisy_labels[start : start + batch_size]), num_classes).float()
        per_model = [dirichlet_mean(vae.alpha(trajectories(m, rows), onehot.to(trajectories.device)))
                     for m, vae in enumerate(vaes)]
        out[start : start + len(rows)] = torch.stack(per_model).mean(0)
    return out.numpy()


def accuracy(probs: np.ndarray, labels: np.ndarray | None) -> float | None:
    if labels is None or len(labels) == 0:
        return None
    return float((np.asarray(probs).argmax(-1) == labels).mean())
