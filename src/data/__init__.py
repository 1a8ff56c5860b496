"""Data loaders. Each takes (path, seed) and returns `Splits`; add a data set by adding a loader."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from src.data.agnews import load_agnews
from src.data.base import (
    Split,
    Splits,
    apply_noise,
    apply_trusted,
    check_knn_size,
    describe_splits,
    noise_rate,
    trusted_rows,
)
from src.data.demo import load_demo
from src.data.news20 import load_20news
from src.data.user_files import Columns, load_user_files
from src.data.wos import load_wos
from src.data.wrench import load_wrench
from src.errors import UserError

LOADERS: dict[str, Callable[[str | None, int], Splits]] = {
    "demo": load_demo,
    "20news": load_20news,
    "agnews": load_agnews,
    "wos": load_wos,
    "trec": partial(load_wrench, "trec"),
    "semeval": partial(load_wrench, "semeval"),
    "chemprot": partial(load_wrench, "chemprot"),
    "csv": load_user_files,
}

# Maximum token lengths of the paper's settings (SPEC.md); the user's csv data: 128.
MAX_LENGTH = {"demo": 32, "20news": 150, "agnews": 128, "wos": 128, "trec": 64, "semeval": 128,
              "chemprot": 512, "csv": 128}


def load_dataset(name: str, path: str | None, seed: int, columns: Columns | None = None) -> Splits:
    """The data set's splits (gold and observed labels as the files give them); `columns` names
    the columns of the user's own files (`--dataset csv`)."""
    if name not in LOADERS:
        raise UserError(f"--dataset {name!r} is unknown; choose one of {', '.join(LOADERS)}")
    try:
        if name == "csv":
            return load_user_files(path, seed, columns)
        return LOADERS[name](path, seed)
    except OSError as exc:  # a data folder or file that cannot be read (permissions, I/O error)
        raise UserError(f"{exc.filename or path}: cannot be read ({exc.strerror or exc})") from None


def describe(name: str, path: str | None, noise_type: str | None, noise_ratio: float, seed: int,
             columns: Columns | None = None, trusted: str | None = None) -> dict:
    """What `--describe` prints: the data set as the method would see it, without any model."""
    splits = apply_noise(load_dataset(name, path, seed, columns), noise_type, noise_ratio, seed)
    return describe_splits(apply_trusted(splits, trusted))


__all__ = ["LOADERS", "MAX_LENGTH", "Split", "Splits", "apply_noise", "apply_trusted", "check_knn_size",
           "describe", "load_dataset", "noise_rate", "trusted_rows"]
