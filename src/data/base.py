"""The data interface every loader returns, and the noise step applied to it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from src.errors import UserError
from src.utils.noise import add_noise


@dataclass
class Split:
    """One split. `noisy` is what the method sees; `gold` is for diagnostics and test only."""

    texts: list[str]
    noisy: np.ndarray | None  # [N] int64 observed labels; None until noise is applied
    gold: np.ndarray | None  # [N] int64 true labels, or None when unknown

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

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def items(self):
        return (("train", self.train), ("validation", self.validation), ("test", self.test))


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
    # Separate, seeded streams per split so validation noise does not depend on train size.
    for offset, split in ((0, splits.train), (1, splits.validation)):
        if split.gold is None:
            raise ValueError(f"{splits.name}: synthetic noise needs gold labels")
        rng = np.random.default_rng([seed, offset])
        split.noisy = add_noise(split.gold, splits.num_classes, noise_type, rate, rng, split.texts)
    splits.test.noisy = splits.test.gold
    return splits


def noise_rate(split: Split) -> float | None:
    """Share of examples whose observed label differs from the gold one."""
    if split.gold is None or split.noisy is None or len(split) == 0:
        return None
    return float((split.noisy != split.gold).mean())


def seeded_train_validation(texts: list[str], labels: np.ndarray, seed: int, train_share: float = 0.8):
    """Shuffle with the seed; the first `train_share` is train, the rest validation."""
    order = np.random.default_rng(seed).permutation(len(texts))
    cut = int(train_share * len(texts))
    pick = lambda idx: ([texts[i] for i in idx], labels[idx])  # noqa: E731
    return pick(order[:cut]), pick(order[cut:])
