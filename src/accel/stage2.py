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
from src.stage2.train_stage2 import Stage2Settings, Stage2Steps, stage2_update


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

    def build(self, vaes: list, onehot: torch.Tensor, priors: list, settings: Stage2Settings, trajectories,
              n_rows: int) -> Stage2Steps:
        """The steps `train_stage2` runs (the seam it calls): its VAEs' layers swapped for block
        layers, and the graphed step of full batches (none where no full batch exists, off CUDA, or
        where capturing fails: those steps run eagerly, the same way)."""
        if self.block_layers:
            vaes = [use_block_layers(vae) for vae in vaes]
        params = [p for vae in vaes for p in vae.parameters()]
        lr, beta, batch_size = settings.lr, settings.beta, settings.batch_size
        graph = self.cuda_graphs and onehot.device.type == "cuda" and n_rows >= batch_size
        optimizer = fused_optimizer(torch.optim.Adam, params, lr=lr, **({"capturable": True} if graph else {}))
        if not graph:
            return Stage2Steps(vaes, lr, onehot, priors, beta, optimizer=optimizer)
        for vae in vaes:
            vae.train()
        graphed = captured_or_none("stage 2 runs", lambda: GraphedStep(
            vaes, optimizer, onehot, priors, beta, batch_size, trajectories.input_dim, trajectories.dtype))
        return GraphedStage2Steps(vaes, lr, onehot, priors, beta, optimizer=optimizer, graphed=graphed)


class GraphedStage2Steps(Stage2Steps):
    """`Stage2Steps` whose full batches replay the graphed step (`graphed`, a `GraphedStep`; None:
    every batch eagerly). The other batches run eagerly, accumulating into the graph's gradient
    buffers (zeroed, not freed), so that those stay in place."""

    def __init__(self, vaes: list, lr: float, onehot: torch.Tensor, priors: list, beta: float, *,
                 optimizer: torch.optim.Optimizer, graphed: GraphedStep | None) -> None:
        super().__init__(vaes, lr, onehot, priors, beta, optimizer=optimizer)
        self.graphed, self.lambda_t = graphed, None

    def update(self, zs: list[torch.Tensor], local: torch.Tensor, eps: list[torch.Tensor],
               lambda_t: float) -> torch.Tensor:
        if self.graphed is None:
            return super().update(zs, local, eps, lambda_t)
        if len(local) == len(self.graphed.local):
            if lambda_t != self.lambda_t:  # the graph reads lambda_t from a device tensor
                self.graphed.lambda_t.fill_(lambda_t)
                self.lambda_t = lambda_t
            return self.graphed(zs, local, eps)
        self.optimizer.zero_grad(set_to_none=False)
        return stage2_update(self.vaes, self.optimizer, zs, local, self.noisy_onehot, self.priors, self.beta,
                             lambda_t, eps)
