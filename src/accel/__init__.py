"""The speed layer: what makes the method run faster without changing what it computes.

`build(config, world)` is its one seam: it returns the `SpeedLayer` whose parts `src/pipeline.py`
plugs into the method (no other module imports this package), each switched by the existing flags:
- stage 1's steps (`stage1_steps`, passed to `train_stage1`): torch.compile, CUDA graphs of the
  training steps and embedding passes, length-sorted micro-batches, the prepared SDPA mask and
  host-memory readings (`stage1.Stage1Speedups`: --compile, --cuda_graphs, --split_batches); under
  torchrun DDP training, embedding passes split across ranks and gathered
  (`distributed.DistributedSpeedups`);
- stage 2's steps (`stage2_steps`, passed to `train_stage2`): the VAE's linear layers swapped for
  block layers whose z products run in bfloat16 (`split_linear`, --precision bf16 on a CPU), and
  the CUDA graph of the full-batch update (--cuda_graphs);
- the store of stage 1's trajectories (`trajectory_store`: files read by rows, none on the ranks
  other than 0), the dtype of stage 2's z and of the kNN screen (`knn.screen_dtype`,
  --approximate_knn);
- the timer of the stages, with the host- and GPU-memory readings (`host_memory`).
The method's own versions (`EagerSteps`, `Stage2Steps`, arrays) run the same maths without them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from src.accel.distributed import ALONE, DiscardedTrajectory, DistributedSpeedups, World, broadcast, checked_on_rank0
from src.accel.host_memory import StageTimer, release_freed_host_memory
from src.accel.knn import screen_dtype
from src.accel.stage1 import Stage1Speedups
from src.accel.stage2 import Stage2Speedups, stage2_z_dtype
from src.storage.row_file import RowFile

# The speed layer's modules that run in stage 1: with the method's, the code whose edits change
# stage 1's numbers (the stage-1 cache's code identity).
STAGE1_MODULES = ["src.accel.stage1", "src.accel.distributed"]

__all__ = ["ALONE", "STAGE1_MODULES", "SpeedLayer", "World", "broadcast", "build", "checked_on_rank0"]


@dataclass(frozen=True)
class SpeedLayer:
    """What the pipeline plugs into the method for one run (`build`)."""

    config: object  # the run's Config
    world: World = ALONE
    timer: StageTimer = field(default_factory=StageTimer)  # seconds and memory per stage

    def stage1_steps(self, runtime):
        """What `train_stage1` builds its steps with (its `speedups`)."""
        if self.world.distributed:
            return DistributedSpeedups(self.world)
        return Stage1Speedups(compile=self.config.compile, cuda_graphs=runtime.cuda_graphs,
                              split_batches=runtime.split_batches)

    def stage2_steps(self, runtime):
        """What `train_stage2` builds its steps with (its `speedups`)."""
        return Stage2Speedups(cuda_graphs=runtime.cuda_graphs)

    def trajectory_store(self, path_of: Callable[[int], Path]):
        """`new_trajectory(m, shape)` for `train_stage1`: model m's trajectory as a file at
        `path_of(m)`, read by rows later; on the ranks other than 0, nowhere (rank 0 stores the
        gathered rows)."""
        if not self.world.main:
            return lambda m, shape: DiscardedTrajectory()
        return lambda m, shape: RowFile.create(path_of(m), shape)

    def z_dtype(self, runtime) -> torch.dtype:
        """The dtype of stage 2's z (`Trajectories`)."""
        return stage2_z_dtype(runtime.device, runtime.precision)

    def knn_screen_dtype(self) -> torch.dtype:
        """The dtype of the kNN search's screening product (--approximate_knn)."""
        return screen_dtype(self.config.approximate_knn)

    def release_host_memory(self) -> None:
        """Hand memory the process freed back to the system (e.g. the tokenizer's per-text objects)."""
        release_freed_host_memory()


def build(config, world: World = ALONE) -> SpeedLayer:
    """The speed layer of a run of `config` on this process (`world`, under torchrun)."""
    return SpeedLayer(config, world)
