"""The data interface every loader returns, the noise step applied to it, and shared checks."""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from src.data.noise import add_noise
from src.errors import UserError, warn  # noqa: F401 -- warn: used by the loaders
from src.stats import trusted_noise_rate

SPLIT_NAMES = ("train", "validation", "test")


@dataclass
class Split:
    """One split. `noisy` is what the method sees; `gold` is for diagnostics and test only."""

    texts: list[str]
    noisy: np.ndarray | None  # [N] int64 observed labels; None until noise is applied / unlabelled
    gold: np.ndarray | None  # [N] int64 true labels, or None when unknown
    # [N] int64 verified labels of the rows someone checked (-1 elsewhere), or None: a trusted
    # sample (--trusted_column, --trusted validation), which the method may read; never on test
    trusted: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class Splits:
    name: str
    class_names: list[str]
    train: Split
    validation: Split
    test: Split
    real_noise: bool = False  # labels are already noisy (weak supervision, user files)
    dropped: dict[str, int] = field(default_factory=lambda: {"train": 0, "validation": 0, "test": 0})
    files: list[str] = field(default_factory=list)  # the files read: part of the cache key
    # train / validation rows that have no label (the labeller abstained): never trained on,
    # not a class, counted in `dropped`, and still predicted (their gold labels where known)
    abstained: dict[str, Split] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def items(self):
        return (("train", self.train), ("validation", self.validation), ("test", self.test))

    def abstained_items(self) -> list[tuple[str, Split]]:
        """(split name, its abstained rows), train first: the order in which they follow test."""
        return [(name, self.abstained[name]) for name in ("train", "validation") if name in self.abstained]

    def all_texts(self) -> list[str]:
        """Every text in the one row order of stage 1's outputs: train, validation, test, then the
        abstained rows of train and of validation."""
        texts = self.train.texts + self.validation.texts + self.test.texts
        for _, split in self.abstained_items():
            texts += split.texts
        return texts


def is_blank(text: str) -> bool:
    """Whether `text` shows nothing: only spaces, or invisible characters such as a zero-width
    space (format and control characters, which str.strip keeps)."""
    return all(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp") for ch in text)


def require_dir(path: str | Path, dataset: str) -> Path:
    """The data folder named by --path, or a one-line error when it is not there."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"--path {path}: no such file or directory (data set {dataset}; datasets/README.md "
                        f"says where to get it and where it goes)")
    return path


def require_file(file: Path, what: str = "") -> Path:
    if not file.is_file():
        raise UserError(f"{file}: file not found" + (f" ({what})" if what else ""))
    return file


def apply_noise(splits: Splits, noise_type: str | None, rate: float | str, seed: int) -> Splits:
    """Give train and validation their noisy labels; test keeps gold labels only.

    `noise_type` None keeps a data set's real noise; on a clean data set it means SN.
    A synthetic type on a data set with real noise is applied to its gold labels instead,
    so real and synthetic noise can be compared on the same texts.
    """
    if noise_type is None and splits.real_noise:
        return splits
    if rate == "auto":  # --noise_ratio auto estimates the marking share, not a flip rate
        raise UserError(f"--noise_ratio auto: {splits.name} has clean labels, so synthetic noise is "
                        f"applied, and its flip rate needs a number")
    noise_type = noise_type or "SN"
    for split_name, split in (("train", splits.train), ("validation", splits.validation)):
        if split.gold is None:
            raise UserError(f"--noise_type {noise_type}: the {split_name} split of {splits.name} has no "
                            f"gold labels to apply synthetic noise to")
    # Separate, seeded streams per split so validation noise does not depend on train size.
    for offset, split in ((0, splits.train), (1, splits.validation)):
        rng = np.random.default_rng([seed, offset])
        split.noisy = add_noise(split.gold, splits.num_classes, noise_type, rate, rng, split.texts)
    if splits.test.gold is not None:
        splits.test.noisy = splits.test.gold
    return splits


def apply_trusted(splits: Splits, trusted: str | None) -> Splits:
    """`--trusted validation`: the validation split's gold labels become its verified labels
    (WRENCH's protocol: its validation labels are clean). Only validation can be trusted whole:
    test labels are what the method is measured against."""
    if trusted is None:
        return splits
    if trusted != "validation":
        raise UserError(f"--trusted {trusted}: only the validation split can be trusted as a whole")
    if splits.validation.gold is None:
        raise UserError(f"--trusted validation: the validation split of {splits.name} has no gold labels "
                        f"to trust")
    splits.validation.trusted = splits.validation.gold.copy()
    return splits


def trusted_rows(splits: Splits) -> tuple[np.ndarray, np.ndarray]:
    """The given and the verified labels of the trusted train and validation rows ([T] each)."""
    given, verified = [], []
    for split in (splits.train, splits.validation):
        if split.trusted is not None:
            rows = split.trusted >= 0
            given.append(split.noisy[rows])
            verified.append(split.trusted[rows])
    empty = np.zeros(0, dtype=np.int64)
    return (np.concatenate(given) if given else empty), (np.concatenate(verified) if verified else empty)


def noise_rate(split: Split) -> float | None:
    """Share of examples whose observed label differs from the gold one."""
    if split.gold is None or split.noisy is None or len(split) == 0:
        return None
    return float((split.noisy != split.gold).mean())


def describe_splits(splits: Splits) -> dict:
    """The `--describe` object: sizes, class counts of the labels the method sees, noise, drops."""
    out = {}
    for name, split in splits.items():
        labels = split.noisy if split.noisy is not None else split.gold
        counts = None if labels is None else np.bincount(labels, minlength=splits.num_classes).tolist()
        out[name] = {"size": len(split), "class_counts": counts, "noise_rate": noise_rate(split),
                     "dropped": int(splits.dropped.get(name, 0)),
                     "trusted": 0 if split.trusted is None else int((split.trusted >= 0).sum())}
    described = {"dataset": splits.name, "num_classes": splits.num_classes,
                 "class_names": list(splits.class_names), "splits": out}
    given, verified = trusted_rows(splits)
    if len(given):  # what --noise_ratio auto would use: the share of trusted rows labelled wrong
        described["trusted_noise_estimate"] = trusted_noise_rate(given, verified)
    return described


def check_knn_size(splits: Splits, noise_ratio: float | str, k: int, estimate: float | None = None) -> None:
    """The kNN prior is fitted on the unmarked train+validation examples: at least k are needed.

    Checked before anything is written, so a run that would fail there never starts. With
    `--noise_ratio auto` the share is known only after stage 1 (`estimate`); before it, a data
    set with fewer than k examples fails whatever the estimate.
    """
    n = len(splits.train) + len(splits.validation)
    ratio = (estimate or 0.0) if noise_ratio == "auto" else noise_ratio
    unmarked = n - int(ratio * n)  # mark_noisy marks floor(r * N)
    if unmarked >= k:
        return
    if noise_ratio != "auto":
        raise UserError(f"{splits.name}: only {unmarked} of {n} train+validation examples stay unmarked "
                        f"at --noise_ratio {noise_ratio}, but the kNN prior needs k={k}; lower "
                        f"--noise_ratio or use more data")
    if estimate is None:
        raise UserError(f"{splits.name}: only {n} train+validation examples, but the kNN prior needs k={k} "
                        f"unmarked ones (--noise_ratio auto); use more data")
    raise UserError(f"{splits.name}: --noise_ratio auto estimated {estimate:.4f} of the {n} train+validation "
                    f"examples as noisy, leaving {unmarked} for the kNN prior, which needs k={k}; give "
                    f"--noise_ratio a number of at most {math.floor(1e4 * (n - k) / n) / 1e4} or use more data")


def seeded_train_validation(texts: list[str], labels: np.ndarray, seed: int, train_share: float = 0.8):
    """Shuffle with the seed; the first `train_share` is train, the rest validation."""
    order = np.random.default_rng(seed).permutation(len(texts))
    cut = int(train_share * len(texts))
    pick = lambda idx: ([texts[i] for i in idx], labels[idx])
    return pick(order[:cut]), pick(order[cut:])
