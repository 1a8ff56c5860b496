"""Data loaders. Each takes (path, seed) and returns `Splits`; add a data set by adding a loader."""

from __future__ import annotations

from functools import partial
from typing import Callable

from src.data.base import Split, Splits, apply_noise, noise_rate
from src.data.demo import load_demo
from src.data.news20 import load_20news
from src.data.wrench import load_wrench
from src.errors import UserError

LOADERS: dict[str, Callable[[str | None, int], Splits]] = {
    "demo": load_demo,
    "20news": load_20news,
    "trec": partial(load_wrench, "trec"),
    "semeval": partial(load_wrench, "semeval"),
    "chemprot": partial(load_wrench, "chemprot"),
}

# Maximum token lengths of the paper's settings (SPEC.md).
MAX_LENGTH = {"demo": 32, "20news": 150, "agnews": 128, "wos": 128, "trec": 64, "semeval": 128,
              "chemprot": 512}


def load_dataset(name: str, path: str | None, seed: int) -> Splits:
    if name not in LOADERS:
        raise UserError(f"--dataset {name!r} is unknown; choose one of {', '.join(LOADERS)}")
    return LOADERS[name](path, seed)


__all__ = ["LOADERS", "MAX_LENGTH", "Split", "Splits", "apply_noise", "load_dataset", "noise_rate"]
