"""The Dirichlet conditional VAE of stage 2 (one per stage-1 model), and its pure losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import skip_init


class DirichletVAE(nn.Module):
    """Encoder q(y | z, noisy y) -> Dirichlet alpha; decoder p(noisy y | z, u) -> logits.

    Both are single linear layers over a concatenation, [z; onehot(noisy y)] and [z; u]. Each is
    stored as two blocks (the z columns with the bias, and the C label/sample columns) so that no
    [B, F + C] concatenation is built and no gradient is computed for the constant z; the blocks
    are cut from one nn.Linear(F + C, C), so the initial weights are those of the joint layer.
    The z blocks' products run in z's dtype (`ConstantInputLinear`): bfloat16 for a CPU run with
    --precision bf16; the weights, their gradients and everything after the products stay float32.
    """

    def __init__(self, input_dim: int, num_classes: int, softplus_beta: float = 1.0,
                 normalise_sample: bool = False) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.softplus_beta = softplus_beta
        self.normalise_sample = normalise_sample  # False: the paper's raw sample u
        encoder, decoder = (nn.Linear(input_dim + num_classes, num_classes) for _ in range(2))
        self.encoder_z, self.encoder_y = _split_layer(encoder, input_dim)
        self.decoder_z, self.decoder_u = _split_layer(decoder, input_dim)

    def _alpha(self, pre: torch.Tensor) -> torch.Tensor:
        alpha = F.softplus(pre, beta=self.softplus_beta)
        return alpha.add_(1.0 + 1.0 / self.num_classes)  # in place: [B, C, C] can be large

    def alpha(self, z: torch.Tensor, noisy_onehot: torch.Tensor) -> torch.Tensor:
        """z [B, F], noisy_onehot [B, C] -> alpha [B, C]."""
        return self._alpha(_z_block(self.encoder_z, z) + self.encoder_y(noisy_onehot))

    def alpha_all_labels(self, z: torch.Tensor) -> torch.Tensor:
        """alpha for every candidate noisy label at once: z [B, F] -> [B, C(noisy), C(true)].

        The encoder is linear in [z; onehot], so this is one product with the z block plus one
        column of the label block per candidate, not C forward passes.
        """
        base = _z_block(self.encoder_z, z)  # [B, C]
        return self._alpha(base[:, None, :] + self.encoder_y.weight.T[None, :, :])

    def decode(self, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return _z_block(self.decoder_z, z) + self.decoder_u(u)

    def forward(self, z: torch.Tensor, noisy_onehot: torch.Tensor,
                eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """alpha [B, C] and the decoder's logits [B, C]; eps [B, C] ~ U(0, 1) drives the sample."""
        alpha = self.alpha(z, noisy_onehot)
        u = dirichlet_sample(alpha, eps, normalise=self.normalise_sample)
        return alpha, self.decode(z, u)


def _z_block(layer: nn.Linear, z: torch.Tensor) -> torch.Tensor:
    return ConstantInputLinear.apply(z, layer.weight, layer.bias)


class ConstantInputLinear(torch.autograd.Function):
    """z @ W.T + b for an input z that needs no gradient, the products in z's dtype.

    The product is taken as (W @ z.T).T: with z [B, F] short and wide (B = 32, F = E * D in the
    thousands) that layout is faster on CPUs than z @ W.T. With a bfloat16 z (a CPU run with
    --precision bf16) both products of the block (the forward one and the weight gradient) run
    faster than in float32 where the CPU has bf16 dot products; at WOS size they are most of
    stage 2 (measured: benchmarks/RESULTS.md). The output [B, C] and the weight gradient
    come back in float32 (the weights' dtype, so that Adam's update is the float32 one); the bias
    is added in float32. Autocast would keep a bfloat16 gradient and cast it again, which costs
    as much as the products save.
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(z)
        return (weight.to(z.dtype) @ z.T).T.float() + bias  # [C, B] -> [B, C]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (z,) = ctx.saved_tensors
        return None, (grad.to(z.dtype).T @ z).float(), grad.sum(0)


def _split_layer(joint: nn.Linear, input_dim: int) -> tuple[nn.Linear, nn.Linear]:
    """nn.Linear over [z; y] -> (Linear over z with the bias, Linear over y without one).

    skip_init: the blocks take the joint layer's values and draw nothing from the random stream.
    """
    z_part = skip_init(nn.Linear, input_dim, joint.out_features)
    y_part = skip_init(nn.Linear, joint.in_features - input_dim, joint.out_features, bias=False)
    with torch.no_grad():
        z_part.weight.copy_(joint.weight[:, :input_dim])
        z_part.bias.copy_(joint.bias)
        y_part.weight.copy_(joint.weight[:, input_dim:])
    return z_part, y_part


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
