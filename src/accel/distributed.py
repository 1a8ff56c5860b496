"""Stage 1 on several processes (`torchrun`): data-parallel training with DistributedDataParallel
and embedding passes split across the ranks.

torchrun starts one process per device and sets RANK, WORLD_SIZE and LOCAL_RANK; nothing else
manages processes. Every rank holds all M models. Each global training batch (the same
`--train_batch_size` rows, in the same order, as one process) is cut into one contiguous part per
rank; a rank's co-regularised loss is weighted by its share of the batch times the world size,
so that DDP's average of the gradients is the gradient of the whole batch's loss (an epoch's
short last batch is split unevenly the same way; a rank left without rows runs one row with
weight 0, so that every rank takes part in every gradient reduction). The embedding batches are
dealt out round-robin and gathered by row index, so the trajectories on disk have exactly the
rows and order of one process. Rank 0 writes everything; the other ranks stop after stage 1.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np
import torch

from src.errors import WARNINGS, UserError
from src.stage1.stage1_step import forward_cls, stage1_optimizer
from src.stage1.train_stage1 import EagerSteps, Stage1Settings


@dataclass(frozen=True)
class World:
    """This process's place among the ranks; `World()` is one process alone."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


ALONE = World()  # one process, not launched by torchrun


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def join(config) -> World:
    """Join the process group torchrun set up (gloo on CPU, NCCL on CUDA); `World()` when not
    launched by torchrun. Every rank checks the same things, so a bad set-up fails on all. The
    ranks other than 0 then show no progress bars, log lines or warnings (rank 0 shows them)."""
    if not launched_by_torchrun():
        return World()
    import torch.distributed as dist

    world = World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    if config.train_batch_size % world.size:
        raise UserError(f"--train_batch_size {config.train_batch_size}: not divisible by the {world.size} processes "
                        f"of torchrun (each takes an equal part of every batch)")
    if not dist.is_available():
        raise UserError("torchrun: this torch build has no torch.distributed")
    cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    backend = "nccl" if cuda else "gloo"
    available = dist.is_nccl_available() if cuda else dist.is_gloo_available()
    if not available:
        raise UserError(f"torchrun: the {backend} backend is not available in this torch build")
    if cuda:
        if world.local_rank >= torch.cuda.device_count():
            raise UserError(f"torchrun: local rank {world.local_rank} but only {torch.cuda.device_count()} "
                            f"CUDA devices are visible; start at most that many processes per node")
        torch.cuda.set_device(world.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend)
    if not world.main:  # one voice: rank 0's
        config.progress = False
        WARNINGS["shown"] = False
        sys.stdout = open(os.devnull, "w")  # for the life of the process
    return world


def leave(world: World) -> None:
    if world.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def broadcast(value, world: World):
    """Rank 0's `value` (any picklable object) on every rank."""
    if not world.distributed:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def checked_on_rank0(check, world: World) -> None:
    """Run `check` on rank 0 (e.g. that its output folders can be written); a `UserError` there
    ends every rank with the same line, instead of leaving the others waiting for rank 0."""
    error = None
    if world.main:
        try:
            check()
        except UserError as exc:
            error = str(exc)
    error = broadcast(error, world)
    if error is not None:
        raise UserError(error)


def rank_part(index: np.ndarray, world: World) -> tuple[np.ndarray, float]:
    """This rank's contiguous part of a global batch and the weight of its loss (its share of the
    batch times the world size: DDP averages the ranks' gradients). A rank left without rows gets
    the batch's first row with weight 0."""
    part = np.array_split(np.asarray(index), world.size)[world.rank]
    if len(part) == 0:
        return np.asarray(index)[:1], 0.0
    return part, len(part) * world.size / len(index)


@dataclass(frozen=True)
class DistributedSpeedups:
    """The seam `train_stage1` calls (`build`), for a run under torchrun."""

    world: World

    def build(self, models: list, texts, train_labels: np.ndarray, epoch_batches: list, eval_batches: list,
              settings: Stage1Settings, device: torch.device) -> DistributedSteps:
        if len(eval_batches) < self.world.size:
            raise UserError(f"torchrun: {len(eval_batches)} embedding batches for {self.world.size} processes; "
                            f"start fewer processes or pass a smaller --eval_batch_size")
        return DistributedSteps(self.world, models, texts, train_labels, settings, device)


class DistributedSteps(EagerSteps):
    """`EagerSteps` on one rank: its part of each training batch through DDP-wrapped models, its
    share of the embedding batches, and the rows of all ranks gathered after each pass."""

    def __init__(self, world: World, models: list, texts, train_labels: np.ndarray, settings: Stage1Settings,
                 device: torch.device) -> None:
        from torch.nn.parallel import DistributedDataParallel

        models = [model.to(device) for model in models]
        # DDP makes every rank start from rank 0's weights and averages gradients in backward
        ids = [torch.cuda.current_device()] if device.type == "cuda" else None  # join() set this rank's
        runners = [DistributedDataParallel(model, device_ids=ids) for model in models]
        super().__init__(models, texts, train_labels, settings, device, runners=runners,
                         optimizer=stage1_optimizer(models, settings.lr, settings.weight_decay))
        self.world = world

    def train(self, index: np.ndarray, alpha: float) -> torch.Tensor:
        import torch.distributed as dist

        part, weight = rank_part(index, self.world)
        loss = super().train(part, alpha, weight)  # DDP averages the gradients: the same step on every rank
        dist.all_reduce(loss)  # the batch's loss, as one process reports it
        return loss / self.world.size

    def embed(self, index: np.ndarray) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The models themselves, not their DDP wrappers: an embedding pass needs no collective, and
        the ranks run different numbers of embedding batches."""
        batch = self.batch(index)
        return [forward_cls(model, batch, self.device, self.precision) for model in self.models]

    def embedding_batches(self, batches: list) -> list:
        return batches[self.world.rank :: self.world.size]

    def gather(self, outputs: tuple[torch.Tensor, torch.Tensor], batches: list) -> tuple[torch.Tensor, torch.Tensor]:
        """Every rank's rows of cls [M, N, D] and probs [M, N, C]; this rank filled the rows of `batches`."""
        import torch.distributed as dist

        cls, probs = outputs
        index = np.concatenate(batches)
        parts = [None] * self.world.size
        dist.all_gather_object(parts, (index, cls[:, index].cpu(), probs[:, index].cpu()))
        with torch.inference_mode():  # embed() made them inference tensors
            cls, probs = cls.cpu(), probs.cpu()
            for rows, part_cls, part_probs in parts:
                cls[:, rows], probs[:, rows] = part_cls, part_probs
        return cls, probs


class DiscardedTrajectory:
    """Where a rank other than 0 puts the embeddings it gathers: nowhere (rank 0 stores them)."""

    def __setitem__(self, key, value) -> None:
        pass
