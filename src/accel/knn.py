"""The approximate kNN screen (--approximate_knn): the neighbour search's ranking product in
bfloat16 where the CPU has bf16 dot-product instructions."""

from __future__ import annotations

import torch


def screen_dtype(approximate: bool) -> torch.dtype:
    """The dtype of `nearest_rows`'s screening product: float32 (exact), or with `approximate`
    bfloat16 where this CPU multiplies it natively."""
    return fast_matmul_dtype() if approximate else torch.float32


def fast_matmul_dtype() -> torch.dtype:
    """bf16 where this CPU has bf16 dot-product instructions (AVX512-BF16 or AMX), else fp32:
    emulated bf16 products are slower than fp32 ones."""
    native = (getattr(torch.cpu, name, lambda: False)() for name in
              ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return torch.bfloat16 if any(native) else torch.float32
