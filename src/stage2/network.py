"""The Dirichlet conditional VAE of stage 2 (one per stage-1 model), and its pure losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConcatLinear(nn.Linear):
    """Linear([a; b]): one linear layer over the concatenation of a [B, A] and b [B, K]."""

    def __init__(self, a_features: int, b_features: int, out_features: int) -> None:
        super().__init__(a_features + b_features, out_features)
        self.a_features = a_features

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.cat([a.to(self.weight.dtype), b], 1))  # [B, out]

    def a_part(self, a: torch.Tensor) -> torch.Tensor:
        """a's share of the output, with the bias: [B, A] -> [B, out]."""
        return F.linear(a.to(self.weight.dtype), self.weight[:, : self.a_features], self.bias)

    def b_weight(self) -> torch.Tensor:
        """The columns that multiply b: [out, K]."""
        return self.weight[:, self.a_features :]


class DirichletVAE(nn.Module):
    """Encoder q(y | z, noisy y) -> Dirichlet alpha; decoder p(noisy y | z, u) -> logits.

    Both are single linear layers over a concatenation, Linear([z; onehot(noisy y)]) and
    Linear([z; u]), as in the paper. (The speed layer may swap them after construction for
    layers that compute the same without building the concatenation.)
    """

    def __init__(self, input_dim: int, num_classes: int, softplus_beta: float = 1.0,
                 normalise_sample: bool = False) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.softplus_beta = softplus_beta
        self.normalise_sample = normalise_sample  # False: the paper's raw sample u
        self.encoder = ConcatLinear(input_dim, num_classes, num_classes)
        self.decoder = ConcatLinear(input_dim, num_classes, num_classes)

    def _alpha(self, pre: torch.Tensor) -> torch.Tensor:
        alpha = F.softplus(pre, beta=self.softplus_beta)
        return alpha.add_(1.0 + 1.0 / self.num_classes)  # in place: [B, C, C] can be large

    def alpha(self, z: torch.Tensor, noisy_onehot: torch.Tensor) -> torch.Tensor:
        """z [B, F], noisy_onehot [B, C] -> alpha [B, C]."""
        return self._alpha(self.encoder(z, noisy_onehot))

    def alpha_all_labels(self, z: torch.Tensor) -> torch.Tensor:
        """alpha for every candidate noisy label at once: z [B, F] -> [B, C(noisy), C(true)].

        The encoder is linear in [z; onehot], so this is one product with z's columns plus one
        label column per candidate, not C forward passes.
        """
        base = self.encoder.a_part(z)  # [B, C]
        return self._alpha(base[:, None, :] + self.encoder.b_weight().T[None, :, :])

    def decode(self, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.decoder(z, u)

    def forward(self, z: torch.Tensor, noisy_onehot: torch.Tensor,
                eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """alpha [B, C] and the decoder's logits [B, C]; eps [B, C] ~ U(0, 1) drives the sample."""
        alpha = self.alpha(z, noisy_onehot)
        u = dirichlet_sample(alpha, eps, normalise=self.normalise_sample)
        return alpha, self.decode(z, u)


def dirichlet_sample(alpha: torch.Tensor, eps: torch.Tensor | None = None,
                     normalise: bool = False) -> torch.Tensor:
    """Reparameterised Dir(alpha) sample via the Gamma inverse-CDF approximation. [B, C] -> [B, C].

    u_k = exp((log(eps_k * alpha_k) + lgamma(alpha_k)) / alpha_k), eps ~ U(0, 1). As in the
    paper's and NPC's code, u goes to the decoder as it is (not on the simplex); `normalise`
    divides it by its sum (done in log space for stability), an option the paper does not have.
    """
    if eps is None:
        eps = torch.rand_like(alpha)
    eps = eps.clamp(min=1e-12)
    log_gamma_sample = (torch.log(eps) + torch.log(alpha) + torch.lgamma(alpha)) / alpha
    if normalise:
        return torch.softmax(log_gamma_sample, dim=-1)
    return torch.exp(log_gamma_sample)


def reconstruction_loss(logits: torch.Tensor, noisy_onehot: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with logits against onehot(noisy y), summed over batch and classes."""
    return F.binary_cross_entropy_with_logits(logits, noisy_onehot, reduction="sum")


def kl_dirichlet(alpha: torch.Tensor, alpha_prior: torch.Tensor) -> torch.Tensor:
    """NPC's closed-form approximation of KL(Dir(alpha) || Dir(prior)), summed over the batch."""
    return (torch.lgamma(alpha_prior) - torch.lgamma(alpha)
            + (alpha - alpha_prior) * torch.digamma(alpha)).sum()


def dirichlet_mean(alpha: torch.Tensor) -> torch.Tensor:
    """(alpha - 1) / sum(alpha - 1): the posterior over the true label used everywhere."""
    shifted = alpha - 1.0
    return shifted / shifted.sum(-1, keepdim=True)


def coregularization(alphas: torch.Tensor) -> torch.Tensor:
    """sum_m KL(a || abar_m), a = mean_m abar_m, summed over the batch. alphas: [M, B, C]."""
    abar = dirichlet_mean(alphas)
    mean = abar.mean(0, keepdim=True)
    return (mean * (mean.log() - abar.log())).sum()
