"""Where memory and time go: the process's resident host memory (all, own data, mapped files),
its peak, the GPU's peak, handing freed memory back to the system, and a per-stage timer that
records them. Measurements and one release call; nothing here changes what is computed."""

from __future__ import annotations

import contextlib
import ctypes
import resource
import sys
import time
from pathlib import Path

import torch


def peak_host_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)


def host_memory_mb() -> dict[str, float] | None:
    """Resident memory now, split into anonymous (the process's own data) and file-backed pages
    (mapped libraries such as CUDA's), in MB; None where /proc is not there (not Linux)."""
    fields = {"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file"}
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    out = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name in fields:
            out[fields[name]] = int(value.split()[0]) / 1024  # reported in kB
    return out


def release_freed_host_memory() -> None:
    """Hand memory that the process has freed but the C allocator keeps back to the system
    (glibc's malloc_trim; a no-op elsewhere), e.g. the tokenizer's per-text objects."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_gpu_mb() -> float | None:
    if not torch.cuda.is_available():
        return None
    return torch.cuda.max_memory_reserved() / 2**20


class StageTimer:
    """Wall seconds per named stage, and the process's peak and current memory when each ended.

    `with timer("stage1"): ...`
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_host_mb: dict[str, float] = {}
        self.host_mb: dict[str, dict | None] = {}  # resident now, by kind (host_memory_mb)

    @contextlib.contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            self.peak_host_mb[name] = peak_host_mb()
            self.host_mb[name] = host_memory_mb()

    def peak_host(self) -> float:
        """The process's peak resident host memory so far, in MB."""
        return peak_host_mb()

    def peak_gpu(self) -> float | None:
        """The GPU memory the process reserved at its peak, in MB (None without CUDA)."""
        return peak_gpu_mb()
