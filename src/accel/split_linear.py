"""The VAE's ConcatLinear layers swapped, after construction, for block layers that compute the
same: the weight kept as two blocks (z's columns with the bias, and the C label or sample
columns), so that no [B, F + C] concatenation is built and no gradient is computed for the
constant z, and z's products run in z's dtype (bfloat16 for a CPU run with --precision bf16).
A block layer's state dict is the ConcatLinear's (one weight, one bias): saved VAEs are the same
either way."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from src.stage2.network import ConcatLinear, DirichletVAE


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


class BlockConcatLinear(nn.Module):
    """`ConcatLinear`'s maths on a [B, A] that needs no gradient (z), with the weight in two blocks."""

    def __init__(self, layer: ConcatLinear) -> None:
        super().__init__()
        self.a_features = layer.a_features
        with torch.no_grad():
            self.weight_a = nn.Parameter(layer.weight[:, : self.a_features].clone())  # [out, A]
            self.weight_b = nn.Parameter(layer.weight[:, self.a_features :].clone())  # [out, K]
            self.bias = nn.Parameter(layer.bias.clone())
        self.register_state_dict_post_hook(_joint_state)
        self.register_load_state_dict_pre_hook(_block_state)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.a_part(a) + F.linear(b, self.weight_b)

    def a_part(self, a: torch.Tensor) -> torch.Tensor:
        return ConstantInputLinear.apply(a, self.weight_a, self.bias)

    def b_weight(self) -> torch.Tensor:
        return self.weight_b


def _joint_state(module: BlockConcatLinear, state: dict, prefix: str, local_metadata) -> None:
    state[prefix + "weight"] = torch.cat([state.pop(prefix + "weight_a"), state.pop(prefix + "weight_b")], 1)


def _block_state(module: BlockConcatLinear, state: dict, prefix: str, *args) -> None:
    if prefix + "weight" in state:
        weight = state.pop(prefix + "weight")
        split = module.a_features
        state[prefix + "weight_a"], state[prefix + "weight_b"] = weight[:, :split], weight[:, split:]


def use_block_layers(vae: DirichletVAE) -> DirichletVAE:
    """Swap the VAE's encoder and decoder for block layers holding the same values."""
    vae.encoder, vae.decoder = BlockConcatLinear(vae.encoder), BlockConcatLinear(vae.decoder)
    return vae
