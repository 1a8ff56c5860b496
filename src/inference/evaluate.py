"""Inference from noisy-label predictions to true labels, and the reported metrics."""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from src.errors import UserError
from src.stage2.network import DirichletVAE, dirichlet_mean


def true_label_probs(alpha_all: torch.Tensor, noisy_probs: torch.Tensor) -> torch.Tensor:
    """P(y | x) = mean_m sum_ỹ P_m(y | x, ỹ) P_m(ỹ | x), with P_m(y | x, ỹ) = (α-1)/sum(α-1).

    alpha_all [M, B, C(ỹ), C(y)], noisy_probs [M, B, C(ỹ)] -> [B, C(y)].
    The normaliser folds into the weights of a batched product, so the [M, B, C, C] joint is
    never built (it dominates the cost at 134 classes).
    """
    shifted = alpha_all - 1.0
    weights = noisy_probs / shifted.sum(-1)  # [M, B, C(ỹ)]
    return torch.einsum("mbk,mbky->by", weights, shifted) / alpha_all.shape[0]


# denoise's [B, C, C] float32 products (the encoder's output, alpha, alpha - 1): at most this
# many bytes at once, with fewer rows per batch at many classes (at 10,000 classes, 512 rows
# would take 200 GB)
DENOISE_BYTES = 1 << 30
PRODUCT_BYTES_PER_CELL = 12  # three [B, C, C] float32 buffers alive at the peak


def denoise_rows(num_classes: int, batch_size: int, budget: int | None = None) -> int:
    """Rows per batch of `denoise`: `batch_size`, or fewer where its products would pass `budget`
    (default DENOISE_BYTES)."""
    budget = DENOISE_BYTES if budget is None else budget
    return max(1, min(batch_size, budget // (PRODUCT_BYTES_PER_CELL * num_classes**2)))


def class_memory_bytes(num_classes: int, n_model: int) -> int:
    """A bound on the memory of the steps that grow as C x C: per model a VAE whose encoder and
    decoder each hold a [C, C] block, with its gradient and Adam's two moments (4 bytes x 2
    layers x 4 copies), and one row of denoise's products."""
    return (32 * n_model + PRODUCT_BYTES_PER_CELL) * num_classes**2


def host_memory_bytes() -> int | None:
    """This machine's physical memory (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_class_memory(num_classes: int, n_model: int, name: str) -> None:
    """Refuses, before stage 1, a class count whose C x C steps cannot fit in this machine's
    memory (found otherwise hours later, in stage 2)."""
    need, have = class_memory_bytes(num_classes, n_model), host_memory_bytes()
    if have is not None and need > have:
        raise UserError(f"{name}: {num_classes} classes: stage 2's C x C steps ({n_model} VAEs with their optimiser "
                        f"state, and inference) need about {need / 2**20:,.0f} MiB, more than this machine's "
                        f"{have / 2**20:,.0f} MiB; use fewer classes or a lower --n_model")


@torch.no_grad()
def denoise(
    vaes: list[DirichletVAE], trajectories, index: np.ndarray, noisy_probs: np.ndarray,
    batch_size: int = 512,
) -> np.ndarray:
    """True-label probabilities [len(index), C] for the rows `index` (e.g. the test split).

    noisy_probs [M, len(index), C]: the stage-1 classifiers' softmax on those rows. Rows go
    `batch_size` at a time, fewer at many classes (`denoise_rows`); each row's result is the same.
    """
    batch_size = denoise_rows(vaes[0].num_classes, batch_size)
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
