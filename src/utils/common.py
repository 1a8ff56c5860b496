"""Seeding, device and precision, timing and peak memory, atomic writes of results."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

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


@contextlib.contextmanager
def atomic_file(path: str | Path, staged: list | None = None):
    """A binary file object that replaces `path` only when the block ends without error.

    Written to a temporary file beside `path`, then renamed: never a half-written result,
    even when the process is killed mid-write. With `staged`, the complete temporary file is
    not renamed but appended to it as (temporary, path), for the caller to rename together
    with other files (`StagedFiles`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from the user's group
        with os.fdopen(fd, "wb") as f:
            yield f
        if staged is None:
            os.replace(tmp, path)
        else:
            staged.append((Path(tmp), path))
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None and exc.errno:  # a write's error names no file
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


class StagedFiles:
    """Files and folders written under temporary names beside their places, and put in place
    together by `staged_files`: all of them, or (when anything fails) none of them."""

    def __init__(self) -> None:
        self.staged: list[tuple[Path, Path]] = []  # (temporary, final), renamed in this order
        self.lines: list[tuple[Path, str]] = []  # appended to their logs once every file is in place
        self.shared: list[tuple[Path, Path]] = []  # files other runs also write: renamed last

    def open(self, path: str | Path):
        """A binary file object for `path` (as `atomic_file`), put in place at the end."""
        return atomic_file(path, self.staged)

    def open_shared(self, path: str | Path):
        """As `open`, for a file that other runs replace too: never removed once in place."""
        return atomic_file(path, self.shared)

    def folder(self, path: str | Path) -> Path:
        """An empty temporary folder that becomes `path` at the end (which must not exist)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700, as for files
        self.staged.append((tmp, path))
        return tmp

    def append_line(self, path: str | Path, line: str) -> None:
        self.lines.append((Path(path), line))


@contextlib.contextmanager
def staged_files():
    """Yields a `StagedFiles`; when the block ends without error its files are renamed into
    place, then its log lines appended, then its shared files renamed. Any failure on the way
    removes every temporary and every file already in place: nothing of it is kept."""
    files, placed = StagedFiles(), []
    try:
        yield files
        for tmp, path in files.staged:
            os.replace(tmp, path)
            placed.append(path)
        for path, line in files.lines:
            append_line(path, line)
        for tmp, path in files.shared:
            os.replace(tmp, path)
    except BaseException:
        for path in [tmp for tmp, _ in files.staged + files.shared] + placed:
            _remove(path)
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _umask() -> int:
    """The process's umask (only readable by setting it; set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_writable_dir(path: str | Path, flag: str) -> None:
    """A one-line error before any work when the folder `path` (named by `flag`) cannot be
    created or written: under a file or a dangling symbolic link, or in a folder this user
    cannot write. Writes nothing."""
    from src.errors import UserError

    path = Path(path).absolute()
    existing = path
    while not os.path.exists(existing) and existing != existing.parent:  # (False on any OSError)
        if os.path.islink(existing):  # mkdir would fail on it (FileExistsError), after the run
            raise UserError(f"{flag} {path}: {existing} is a symbolic link to {os.readlink(existing)}, "
                            f"which does not exist")
        existing = existing.parent
    if not os.path.isdir(existing):
        raise UserError(f"{flag} {path}: cannot be a folder, {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: {existing} is not writable")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)


def json_bytes(obj) -> bytes:
    """`obj` as indented JSON (numpy numbers and arrays, and paths, as JSON values)."""
    return json.dumps(obj, indent=2, default=_json_default).encode()


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_bytes(path, json_bytes(obj))


def append_line(path: str | Path, line: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line.rstrip("\n") + "\n")


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
