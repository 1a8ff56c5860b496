"""How the rows someone checked by hand are used (`--trusted_column`, `--trusted validation`).

A seeded share of them (`--calibration_share`) is kept out of stage 1: those rows look to the
method like rows nobody checked, so the posteriors computed for them, cross-fitted, can set and
check the suggestion's margin honestly (src/inference/suggest.py). The others train stage 1 with their
verified label, for every method. All of them are never marked and vote in the kNN prior with
their verified label (src/pipeline.py's `mark_and_prior`).
"""

from __future__ import annotations

import numpy as np

NOT_TRAINED = -1  # a row stage 1 does not train on


def calibration_rows(trusted: np.ndarray, share: float, seed: int) -> np.ndarray:
    """[N] bool: the trusted rows kept out of stage 1, round(share · T) of the T rows with a
    verified label (trusted [N]: verified labels, -1 where nobody checked), drawn with `seed`."""
    checked = np.flatnonzero(trusted >= 0)
    kept = np.random.default_rng([seed, 31]).permutation(checked)[: round(share * len(checked))]
    calibration = np.zeros(len(trusted), dtype=bool)
    calibration[kept] = True
    return calibration


def stage1_labels(given: np.ndarray, trusted: np.ndarray, calibration: np.ndarray, n_train: int) -> np.ndarray:
    """[N_train + N_val] the label each train and validation row trains stage 1 with, NOT_TRAINED
    where it does not: train rows their given label, validation rows none (as the paper), and a
    trusted row outside the calibration part its verified label, in either split. given, trusted,
    calibration [N_train + N_val]."""
    labels = np.where(np.arange(len(given)) < n_train, given, NOT_TRAINED)
    taught = (trusted >= 0) & ~calibration
    labels[taught] = trusted[taught]
    return labels
