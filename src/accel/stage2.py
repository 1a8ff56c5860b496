"""Stage 2's step runner with the speed-ups switched on by the flags: the full-batch update
replayed as one CUDA graph (--cuda_graphs, on CUDA), with the capturable optimizer it needs."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from src.accel.cuda_graphs import GraphedStep, captured_or_none
from src.utils.common import fused_optimizer


@dataclass(frozen=True)
class Stage2Speedups:
    cuda_graphs: bool = False

    def build(self, vaes: list, params: list, lr: float, onehot: torch.Tensor, priors: list, beta: float,
              batch_size: int, trajectories, n_rows: int):
        """The optimizer and the graphed step (None where no full batch exists, off CUDA, or
        where capturing fails: those steps run eagerly, the same way) — the seam `train_stage2`
        calls."""
        graph = self.cuda_graphs and onehot.device.type == "cuda" and n_rows >= batch_size
        optimizer = fused_optimizer(torch.optim.Adam, params, lr=lr, **({"capturable": True} if graph else {}))
        if not graph:
            return optimizer, None
        for vae in vaes:
            vae.train()
        return optimizer, captured_or_none("stage 2 runs", lambda: GraphedStep(
            vaes, optimizer, onehot, priors, beta, batch_size, trajectories.input_dim, trajectories.dtype))
