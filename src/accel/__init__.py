"""The speed layer: what makes the method run faster without changing what it computes.

Each feature plugs into the method through one seam and is switched by the existing flags:
- stage 1's step runner (`stage1.Stage1Speedups`, passed to `train_stage1`): torch.compile,
  CUDA graphs of the training steps and embedding passes, length-sorted micro-batches, the
  prepared SDPA mask (--compile, --cuda_graphs, --split_batches);
- stage 2's step runner (`stage2.Stage2Speedups`, passed to `train_stage2`): the CUDA graph of
  the full-batch update (--cuda_graphs);
- the Dirichlet VAE's linear layers swapped after construction for block layers whose z
  products run in bfloat16 (`split_linear`, --precision bf16 on a CPU).
- stage 1 on several processes under torchrun (`distributed.DistributedSpeedups`, the same
  seam as `Stage1Speedups`): DDP training, embedding passes split across ranks and gathered;
- the trajectory files read by rows (`row_file.RowFile`), the approximate kNN screen
  (`knn.screen_dtype`) and the host-memory readings (`host_memory`).
The method's modules never import this package; `src/pipeline.py` builds the speed-ups from
the flags and hands them over, and the stage-1 cache keeps its trajectories in `RowFile`s.
"""
