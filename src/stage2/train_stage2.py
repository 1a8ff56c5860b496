"""Stage 2: the co-regularised dual Dirichlet VAEs, trained on stage-1 trajectories."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from src.data.batches import shuffled_batches
from src.errors import UserError
from src.runtime import fused_optimizer, to_device
from src.stage2.network import DirichletVAE, coregularization, kl_dirichlet, reconstruction_loss


class Trajectories:
    """Batches of z^m = [h^1; ...; h^E] -> [B, E*D] (float32) on `device`, read from stage 1's
    per-model trajectories ([N, E, D] float16: arrays, or `RowFile`s on disk).

    Only the rows asked for are read (the E x D of an example lie together on disk) and sent to
    `device` in half precision, so neither the host nor the GPU holds the N x E*D matrices.
    `epochs` picks the epochs that make up z (all by default; slice(-1, None): the last only).
    `dtype` bfloat16 gives z in bfloat16, for the speed layer's bf16 products.
    """

    def __init__(self, embeddings, device: torch.device, epochs: slice = slice(None),
                 dtype: torch.dtype = torch.float32) -> None:
        self.models = list(embeddings)
        self.num_models = len(self.models)
        self.epochs = epochs
        _, all_epochs, dim = self.models[0].shape
        self.input_dim = len(range(all_epochs)[epochs]) * dim  # F = E' * D
        self.device = device  # where the batches go (the VAEs' device)
        self.dtype = dtype

    def __call__(self, model: int, index) -> torch.Tensor:
        rows = np.ascontiguousarray(self.models[model][np.asarray(index)][:, self.epochs])  # [B, E', D]
        # transfer in the stored (half) precision without waiting for the GPU, widen there
        z = to_device(torch.from_numpy(rows), self.device).reshape(len(rows), -1).float()
        return z.to(self.dtype)  # float16 -> bfloat16 via float32: faster on CPUs than directly


def stage2_loss(
    vaes: list[DirichletVAE],
    zs: list[torch.Tensor],
    noisy_onehot: torch.Tensor,
    alpha_priors: list[torch.Tensor],
    beta: float,
    lambda_t: float | torch.Tensor,
    eps: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """mean_m (recon_m + beta * KL_m) + lambda_t * coreg / M, each term summed over the batch.

    Each model has its own prior (from its own kNN): alpha_priors[m] is [B, C]. eps[m] [B, C]
    are the uniform draws behind model m's Dirichlet sample (drawn here when not given).
    lambda_t may be a tensor (a CUDA graph's input): the term is then always computed.
    """
    alphas, terms = [], []
    for m, (vae, z, prior) in enumerate(zip(vaes, zs, alpha_priors)):
        alpha, logits = vae(z, noisy_onehot, None if eps is None else eps[m])
        alphas.append(alpha)
        terms.append(reconstruction_loss(logits, noisy_onehot) + beta * kl_dirichlet(alpha, prior))
    loss = torch.stack(terms).mean()
    if (isinstance(lambda_t, torch.Tensor) or lambda_t) and len(vaes) > 1:
        loss = loss + lambda_t * coregularization(torch.stack(alphas)) / len(vaes)
    return loss


def stage2_update(
    vaes: list[DirichletVAE], optimizer: torch.optim.Optimizer, zs: list[torch.Tensor], local: torch.Tensor,
    noisy_onehot: torch.Tensor, priors: list[torch.Tensor], beta: float, lambda_t: float | torch.Tensor,
    eps: list[torch.Tensor],
) -> torch.Tensor:
    """One Adam update on the batch `local` (positions into noisy_onehot and priors, on the
    device); the gradients are added to what the parameters hold. Returns the detached loss."""
    loss = stage2_loss(vaes, zs, noisy_onehot[local], [p[local] for p in priors], beta, lambda_t, eps)
    loss.backward()
    optimizer.step()
    return loss.detach()


class Stage2Steps:
    """Stage 2's work on the VAEs, as a reader expects it: one Adam update per batch (`update`).

    noisy_onehot [N_train, C] and priors[m] [N_train, C] are on the VAEs' device. The speed layer
    hands `train_stage2` a subclass that runs the same updates faster (its VAEs' layers may be
    swapped for ones that compute the same, hence `vaes` here); this one builds the optimizer.
    """

    def __init__(self, vaes: list[DirichletVAE], lr: float, noisy_onehot: torch.Tensor, priors: list[torch.Tensor],
                 beta: float, optimizer: torch.optim.Optimizer | None = None) -> None:
        self.vaes = vaes
        # With about a million weights per VAE and tiny batches, the optimiser step dominates
        # stage 2 unless it is the fused kernel.
        self.optimizer = optimizer or fused_optimizer(torch.optim.Adam, [p for vae in vaes for p in vae.parameters()],
                                                      lr=lr)
        self.noisy_onehot, self.priors, self.beta = noisy_onehot, priors, beta

    def update(self, zs: list[torch.Tensor], local: torch.Tensor, eps: list[torch.Tensor],
               lambda_t: float) -> torch.Tensor:
        """One update on the batch `local` (positions into the train rows, on the device);
        returns its loss (on the device)."""
        self.optimizer.zero_grad(set_to_none=True)
        return stage2_update(self.vaes, self.optimizer, zs, local, self.noisy_onehot, self.priors, self.beta,
                             lambda_t, eps)


def train_epoch(steps: Stage2Steps, trajectories: Trajectories, batches, train_index: np.ndarray,
                lambda_t: float) -> torch.Tensor:
    """One pass over `batches` (positions in train_index); returns the summed loss on the device.
    Nothing here waits for the GPU."""
    device = steps.noisy_onehot.device
    num_classes = steps.noisy_onehot.shape[1]
    total = torch.zeros((), device=device)
    for local in batches:
        zs = [trajectories(m, train_index[local]) for m in range(len(steps.vaes))]
        local_t = to_device(torch.as_tensor(local), device)
        eps = [torch.rand(len(local), num_classes, device=device) for _ in steps.vaes]
        total += steps.update(zs, local_t, eps, lambda_t)
    return total


@dataclass(frozen=True)
class Stage2Settings:
    """What stage 2 trains with."""

    total_iter: int  # epochs
    batch_size: int
    lr: float
    beta: float = 1.0  # the KL term's weight
    lambda_t: float = 5.0  # the co-regularisation weight after the warm-up
    warmup_epochs: float = 0.1  # the share of epochs without co-regularisation
    softplus_beta: float = 1.0
    normalise_sample: bool = False  # the Dirichlet sample on the simplex (the paper feeds it raw)
    seed: int = 0


def train_stage2(
    trajectories: Trajectories,
    train_index: np.ndarray,
    noisy_labels: np.ndarray,
    alpha_priors: list[np.ndarray],
    num_classes: int,
    settings: Stage2Settings,
    *,
    on_epoch_end=None,
    show_progress: bool = True,
    speedups=None,
) -> tuple[list[DirichletVAE], list[dict]]:
    """Train one VAE per stage-1 model on the rows `train_index` of the trajectories.

    noisy_labels [N_train], alpha_priors[m] [N_train, C], aligned with train_index.
    `on_epoch_end(epoch, vaes)` may return a dict of metrics to log (e.g. test accuracy).
    `speedups` (the speed layer's) builds the steps that run the updates; without it they run as
    `Stage2Steps`.
    """
    device = trajectories.device
    torch.manual_seed(settings.seed)
    vaes = [DirichletVAE(trajectories.input_dim, num_classes, settings.softplus_beta,
                         settings.normalise_sample).to(device)
            for _ in range(trajectories.num_models)]
    onehot = F.one_hot(torch.as_tensor(noisy_labels, device=device), num_classes).float()
    priors = [torch.as_tensor(p, dtype=torch.float32, device=device) for p in alpha_priors]
    steps = (Stage2Steps(vaes, settings.lr, onehot, priors, settings.beta) if speedups is None else
             speedups.build(vaes, onehot, priors, settings, trajectories, n_rows=len(train_index)))
    vaes = steps.vaes  # (the speed layer may swap their layers for ones that compute the same)
    rng = np.random.default_rng([settings.seed, 2])
    total_iter = settings.total_iter
    history = []
    for epoch in range(total_iter):
        lam = 0.0 if epoch < settings.warmup_epochs * total_iter else settings.lambda_t
        for vae in vaes:
            vae.train()
        batches = shuffled_batches(len(train_index), settings.batch_size, rng)
        bar = tqdm(batches, desc=f"stage 2 epoch {epoch + 1}/{total_iter}", leave=False,
                   disable=not show_progress)
        total = train_epoch(steps, trajectories, bar, train_index, lam)
        record = {"epoch": epoch + 1, "loss": total.item() / len(train_index)}
        if not math.isfinite(record["loss"]):  # diverged: no result is written
            raise UserError(f"stage 2 epoch {epoch + 1}/{total_iter}: the loss is {record['loss']}; "
                            f"nothing was written (lower --vae_lr)")
        if on_epoch_end is not None:
            for vae in vaes:
                vae.eval()
            record.update(on_epoch_end(epoch, vaes) or {})
        history.append(record)
    for vae in vaes:
        vae.eval()
    return vaes, history

