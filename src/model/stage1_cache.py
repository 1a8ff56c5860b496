"""Reuse of stage-1 results: every stage-2 variant on the same data, noise and seed shares one run.

A result lives in `<root>/<key>/` as embeddings.npy ([M, E, N, D] float16), probs.npy
([M, N, C] float32) and result.json (history, timings, and the settings the key was made
from). The key is a hash of everything that changes stage 1's output: the token ids (data set,
files, max length, tokenizer), the noisy train/validation labels (noise type, rate, seed), the
model's identity, the training settings, the device type, the library versions and the source
of the stage-1 code itself. Each file is written atomically and result.json last, so a run
killed mid-write leaves no entry, and a run started again reuses every stage 1 that finished.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from src.model.train_stage1 import Stage1Result
from src.utils.common import atomic_save_npy, atomic_write_json

SRC = Path(__file__).resolve().parents[1]
# Code whose edits change stage 1's numbers: an edit there makes every old entry a miss.
CODE = [SRC / "model" / "train_stage1.py", SRC / "model" / "plm.py"]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def array_digest(rows: list[list[int]] | np.ndarray) -> str:
    """Digest of a list of integer rows (token ids) or of a label array; row bounds included."""
    if isinstance(rows, np.ndarray):
        return _sha(np.ascontiguousarray(rows, dtype=np.int64).tobytes())
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    flat = np.fromiter((t for r in rows for t in r), dtype=np.int64, count=int(lengths.sum()))
    return _sha(lengths.tobytes() + b"|" + flat.tobytes())


def model_identity(name: str, resolved_path: str) -> dict:
    """A hub name as given; a local directory by its config and the size/mtime of its weights."""
    path = Path(resolved_path)
    if not path.is_dir():
        return {"name": name}
    weights = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin"))
    return {
        "name": name,
        "config": _sha((path / "config.json").read_bytes()),
        "weights": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in weights],
    }


def code_identity() -> dict:
    import torch
    import transformers

    return {
        "source": _sha(b"".join(p.read_bytes() for p in CODE)),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def cache_key(parts: dict) -> str:
    """A short stable hash of the JSON-serialisable `parts` (dict order does not matter)."""
    return _sha(json.dumps(parts, sort_keys=True, default=str).encode())[:24]


def load(root: str | Path, key: str) -> Stage1Result | None:
    """The stored result for `key`, or None when there is none (or it cannot be read)."""
    entry = Path(root) / key
    try:
        meta = json.loads((entry / "result.json").read_text())
        embeddings = np.load(entry / "embeddings.npy")
        probs = np.load(entry / "probs.npy")
    except (OSError, ValueError):
        return None
    if meta.get("key") != key or embeddings.shape[:3] != tuple(meta["shape"][:3]):
        return None
    return Stage1Result(embeddings, probs, meta["history"], meta["plm_seconds"])


def save(root: str | Path, key: str, result: Stage1Result, parts: dict) -> None:
    entry = Path(root) / key
    atomic_save_npy(entry / "embeddings.npy", result.embeddings)
    atomic_save_npy(entry / "probs.npy", result.probs)
    atomic_write_json(entry / "result.json", {  # last: its presence marks a complete entry
        "key": key, "shape": list(result.embeddings.shape), "history": result.history,
        "plm_seconds": result.plm_seconds, "parts": parts,
    })


def load_or_train(
    root: str | Path, parts: dict, train: Callable[[], Stage1Result], reuse: bool = True
) -> tuple[Stage1Result, dict]:
    """Stage 1 from the cache when `reuse` and an entry matches `parts`; else train and store.

    Returns the result and {"key", "hit"} for the run record.
    """
    key = cache_key(parts)
    result = load(root, key) if reuse else None
    if result is not None:
        return result, {"key": key, "hit": True}
    result = train()
    save(root, key, result, parts)
    return result, {"key": key, "hit": False}
