"""Stage 2's step runner with the speed-ups switched on by the flags: the VAEs' layers as z / label
blocks whose z products run in z's dtype (`split_linear`; bfloat16 z for a CPU run with
--precision bf16), and the full-batch update replayed as one CUDA graph (--cuda_graphs, on CUDA)
with the capturable optimizer it needs."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from src.accel.cuda_graphs import GraphedStep, captured_or_none
from src.accel.split_linear import use_block_layers
from src.runtime import fused_optimizer


def stage2_z_dtype(device: torch.device, precision: str) -> torch.dtype:
    """The dtype of z for stage 2's products: bfloat16 for a CPU run with `--precision bf16`.

    At WOS size the z blocks' products are much of stage 2 on a CPU, and bf16 runs them faster
    where the CPU has bf16 dot products (benchmarks/RESULTS.md). On a GPU a stage-2 step is a few small
    kernels, bound by their launches (or replayed as one graph), so it stays float32 there.
    """
    return torch.bfloat16 if device.type == "cpu" and precision == "bf16" else torch.float32


@dataclass(frozen=True)
class Stage2Speedups:
    cuda_graphs: bool = False
    block_layers: bool = True

    def build(self, vaes: list, lr: float, onehot: torch.Tensor, priors: list, beta: float, batch_size: int,
              trajectories, n_rows: int):
        """The VAEs (their layers swapped for block layers), the optimizer, and the graphed step
        (None where no full batch exists, off CUDA, or where capturing fails: those steps run
        eagerly, the same way): the seam `train_stage2` calls."""
        if self.block_layers:
            vaes = [use_block_layers(vae) for vae in vaes]
        params = [p for vae in vaes for p in vae.parameters()]
        graph = self.cuda_graphs and onehot.device.type == "cuda" and n_rows >= batch_size
        optimizer = fused_optimizer(torch.optim.Adam, params, lr=lr, **({"capturable": True} if graph else {}))
        if not graph:
            return vaes, optimizer, None
        for vae in vaes:
            vae.train()
        return vaes, optimizer, captured_or_none("stage 2 runs", lambda: GraphedStep(
            vaes, optimizer, onehot, priors, beta, batch_size, trajectories.input_dim, trajectories.dtype))
