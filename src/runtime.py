"""A run's runtime: seeding, the device and precision (every `auto` resolved), process-wide CUDA
settings, autocast, the fused optimiser where torch has it, and host-to-device copies."""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from src.errors import UserError

        raise UserError("--device cuda: no CUDA device is available")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    """--precision auto: bf16 autocast on CUDA, fp32 on CPU (where bf16 is fast only on CPUs with
    native bf16 instructions, which torch has no public check for)."""
    if name != "auto":
        return name
    return "bf16" if device.type == "cuda" else "fp32"


def resolve_eval_batch_size(size: int | None, device: torch.device, cuda_graphs: bool = True) -> int:
    """--eval_batch_size default: 128 (the paper's), except 512 on CUDA without CUDA graphs, where
    eager inference passes of small models are bound by per-batch kernel launches (fewer,
    larger batches for more GPU memory; measured: benchmarks/RESULTS.md). Replayed as graphs,
    the passes cost no launches, and 128 keeps the memory."""
    if size is not None:
        return size
    return 512 if device.type == "cuda" and not cuda_graphs else 128


def resolve_split_batches(name: str, device: torch.device, precision: str) -> bool:
    """--split_batches auto: on CPU in fp32 only. In bf16 the tokens are cheaper while a
    micro-batch's fixed cost is not, so splitting does not pay there, and on a GPU kernel
    launches dominate (measured: benchmarks/RESULTS.md)."""
    return name == "on" or (name == "auto" and device.type == "cpu" and precision == "fp32")


@dataclass(frozen=True)
class Runtime:
    """A run's device-dependent settings, with every `auto` resolved."""

    device: torch.device
    precision: str
    eval_batch_size: int
    split_batches: bool
    cuda_graphs: bool  # asked for, and on CUDA


def resolve_runtime(config) -> Runtime:
    """--device, --precision, --eval_batch_size, --split_batches and --cuda_graphs of a Config,
    resolved."""
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    cuda_graphs = config.cuda_graphs and device.type == "cuda"
    return Runtime(device, precision, resolve_eval_batch_size(config.eval_batch_size, device, cuda_graphs),
                   resolve_split_batches(config.split_batches, device, precision), cuda_graphs)


def configure_cuda(cudnn_attention: bool = False) -> None:
    """Process-wide CUDA settings for the runs: TF32 tensor cores for fp32 matrix products, and
    scaled-dot-product attention without cuDNN's kernels unless asked. On an H100 (torch 2.11)
    cuDNN took BERT's masked batches and spent 117 us (forward) and 168 us (backward) a call
    on MiniLM's [64, 12, 150, 32] attention, about half of all kernel time of a step; unmasked
    batches then run flash attention and masked ones the memory-efficient kernel."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cuda.enable_cudnn_sdp(cudnn_attention)


def autocast(device: torch.device, precision: str, cache: bool = True):
    """bf16 autocast when asked for (`--precision bf16`), else a no-op context. `cache=False`
    inside a CUDA graph capture (autocast's cache of cast weights must not outlive it)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=cache)
    return contextlib.nullcontext()


def fused_optimizer(kind, params, **kwargs) -> torch.optim.Optimizer:
    """`kind(params, fused=True, ...)` where this torch has the fused kernel (CUDA; CPU since
    torch 2.4): one pass over all weights instead of several per tensor. Same update."""
    params = list(params)
    try:
        return kind(params, fused=True, **kwargs)
    except (RuntimeError, TypeError):
        return kind(params, **kwargs)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on `device` without making the host wait for the GPU.

    A blocking host-to-GPU copy first waits for every kernel already queued, so each training
    step would wait for the last one to finish; from pinned memory the copy is queued like a
    kernel. (From pageable memory even a non-blocking copy may wait.) torch's pinned-memory
    cache keeps the block until the copy has run.
    """
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)
