"""Stage 1's step runner with the speed-ups switched on by the flags: torch.compile (--compile),
CUDA graphs of full training batches and of the embedding passes (--cuda_graphs), length-sorted
micro-batches (--split_batches), the attention mask in the form SDPA takes, and host-memory
readings. The same updates and embeddings as `EagerSteps`, up to float rounding."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from src.accel.cuda_graphs import (
    build_embedding_graphs,
    build_graphs,
    cuda_graphs_blocker,
    describe_keys,
)
from src.accel.host_memory import host_memory_mb, release_freed_host_memory
from src.accel.microbatches import MICROBATCH_COST_TOKENS, split_by_length
from src.accel.models import accepts_prepared_mask, compile_model
from src.stage1.stage1_step import clip_and_step, forward_backward, stage1_optimizer
from src.stage1.train_stage1 import EagerSteps, Stage1Settings


@dataclass(frozen=True)
class Stage1Speedups:
    """What to switch on; `build` is the seam `train_stage1` calls."""

    compile: bool = False
    cuda_graphs: bool = False  # on CUDA only; ignored elsewhere
    split_batches: bool = False
    pad_to_max: bool = False  # pad every batch to the maximum length: only to measure what padding costs

    def build(self, models: list, texts, train_labels: np.ndarray, epoch_batches: list, eval_batches: list,
              settings: Stage1Settings, device: torch.device) -> FastSteps:
        return FastSteps(self, models, texts, train_labels, epoch_batches, eval_batches, settings, device)


class FastSteps(EagerSteps):
    """`EagerSteps` with the speed-ups of a `Stage1Speedups`.

    A training batch replays its CUDA graph where one covers it, else runs as micro-batches
    (`split_batches`), else eagerly; an embedding batch likewise. Where capturing fails, the
    steps run eagerly, with a warning.
    """

    def __init__(self, speedups: Stage1Speedups, models: list, texts, train_labels: np.ndarray,
                 epoch_batches: list, eval_batches: list, settings: Stage1Settings, device: torch.device) -> None:
        host_mb = {"models_loaded": host_memory_mb()}
        models = [model.to(device) for model in models]
        release_freed_host_memory()  # the models' host copies
        host_mb["models_on_device"] = host_memory_mb()
        # torch.compile fuses the many small kernels of each layer; the originals keep the weights.
        runners = [compile_model(model, dynamic=True) for model in models] if speedups.compile else models
        self.prepared_mask = all(accepts_prepared_mask(model) for model in models)
        cuda_graphs = speedups.cuda_graphs
        if cuda_graphs:
            why_not = cuda_graphs_blocker(device, self.prepared_mask) or ("--compile" if speedups.compile else None)
            if why_not and device.type == "cuda":
                tqdm.write(f"stage 1: eager steps, no CUDA graphs ({why_not})")
            cuda_graphs = why_not is None
        optimizer = stage1_optimizer(models, settings.lr, settings.weight_decay, capturable=cuda_graphs)
        super().__init__(models, texts, train_labels, settings, device, runners=runners, optimizer=optimizer)
        self.host_mb = host_mb
        self.split_batches, self.pad_to_max = speedups.split_batches, speedups.pad_to_max
        self.graphs, self.eval_graphs, self.alpha = None, None, None
        if cuda_graphs:
            tick = time.perf_counter()
            self.graphs = build_graphs(runners, optimizer, texts, [b for bs in epoch_batches for b in bs],
                                       settings.batch_size, device=device, precision=settings.precision,
                                       clip_gradient_norm=settings.clip_gradient_norm)
            if self.graphs is not None:
                self.eval_graphs = build_embedding_graphs(runners, texts, eval_batches, settings.eval_batch_size,
                                                          self.graphs.pool, device=device,
                                                          precision=settings.precision)
                host_mb["graphs_captured"] = host_memory_mb()
                tqdm.write(f"stage 1: CUDA graphs of training batches {describe_keys(self.graphs.graphs)} and "
                           f"of embedding batches {describe_keys(self.eval_graphs.graphs if self.eval_graphs else [])}"
                           f" tokens wide, captured in {time.perf_counter() - tick:.1f}s")

    def batch(self, index: np.ndarray) -> dict:
        return self.texts.batch(index, self.device, self.pad_to_max, self.prepared_mask)

    def train(self, index: np.ndarray, alpha: float) -> torch.Tensor:
        key = None if self.graphs is None else self.graphs.key_for(index, self.texts.lengths)
        if key is not None:
            if alpha != self.alpha:  # the graphs read alpha from a device tensor
                self.graphs.alpha.fill_(alpha)
                self.alpha = alpha
            return self.graphs(self.texts, index, self.train_labels[index], key)
        if not self.split_batches or self.pad_to_max:
            return super().train(index, alpha)
        # length-sorted micro-batches: each group's loss weighted by its share of the batch
        self.optimizer.zero_grad(set_to_none=True)  # after a replay .grad are the graph's buffers
        loss = torch.zeros((), device=self.device)
        for group in (index[g] for g in split_by_length(self.texts.lengths[index], MICROBATCH_COST_TOKENS)):
            loss += forward_backward(self.runners, self.batch(group), self.labels(group), alpha,
                                     len(group) / len(index), device=self.device, precision=self.precision)
        clip_and_step(self.optimizer, self.clip_gradient_norm)
        self.optimizer.zero_grad(set_to_none=True)
        return loss

    def embed(self, index: np.ndarray) -> list[tuple[torch.Tensor, torch.Tensor]]:
        key = None if self.eval_graphs is None else self.eval_graphs.key_for(index, self.texts.lengths)
        if key is not None:
            return self.eval_graphs(self.texts, index, key)
        return super().embed(index)

    def host_memory(self) -> dict | None:
        return host_memory_mb()
