"""AG News in its publisher's `ag_news_csv` layout.

Under `--path` (or its `ag_news_csv/` folder): `train.csv`, `test.csv` and `classes.txt`;
each csv row is `class (1..C), title, description`, and the text is the description, as in the
paper's code (the title only where the description is empty, counted in a warning).
SPEC.md's split: the first 10,000 rows of each class of train.csv, shuffled with the seed,
80% train / 20% validation; the official test.csv (7,600 rows) as test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from src.data.base import (
    Split,
    Splits,
    require_dir,
    require_file,
    seeded_train_validation,
    warn,
)
from src.data.records import csv_rows, read_text
from src.errors import UserError

PER_CLASS = 10_000
LAYOUT = "the ag_news_csv layout: train.csv, test.csv, classes.txt"


def _rows(file: Path, num_classes: int) -> tuple[list[str], np.ndarray]:
    texts, labels, titles_used = [], [], 0
    for line, fields in csv_rows(require_file(file, LAYOUT)):
        if len(fields) != 3:
            raise UserError(f"{file}:{line}: expected 3 fields (class, title, description), found {len(fields)}")
        label, title, description = fields
        if not label.strip().isdigit() or not 1 <= int(label) <= num_classes:
            raise UserError(f"{file}:{line}: class {label!r} outside the class range 1..{num_classes}")
        text = description.strip() or title.strip()
        if not text:
            raise UserError(f"{file}:{line}: empty text (title and description are both empty)")
        titles_used += not description.strip()
        texts.append(text)
        labels.append(int(label) - 1)
    if titles_used:
        warn(f"{file}: {titles_used} rows have an empty description; their title is their text")
    return texts, np.array(labels, dtype=np.int64)


def first_per_class(labels: np.ndarray, num_classes: int, per_class: int) -> np.ndarray:
    """Indices of the first `per_class` rows of every class, in file order."""
    keep = np.concatenate([np.flatnonzero(labels == k)[:per_class] for k in range(num_classes)])
    return np.sort(keep)


def load_agnews(path: str | None, seed: int) -> Splits:
    root = require_dir(path or "datasets/agnews", "agnews")
    if not (root / "test.csv").exists() and (root / "ag_news_csv").is_dir():
        root = root / "ag_news_csv"
    classes_file = require_file(root / "classes.txt", LAYOUT)
    class_names = [line.strip() for line in read_text(classes_file).splitlines() if line.strip()]
    if len(class_names) < 2:
        raise UserError(f"{classes_file}: expected one class name per line, at least 2")
    num_classes = len(class_names)
    test_x, test_y = _rows(root / "test.csv", num_classes)
    texts, labels = _rows(root / "train.csv", num_classes)

    keep = first_per_class(labels, num_classes, PER_CLASS)
    short = {class_names[k]: int(n) for k, n in enumerate(np.bincount(labels, minlength=num_classes))
             if n < PER_CLASS}
    if short:
        warn(f"{root / 'train.csv'} has fewer than {PER_CLASS} rows of {short}: the paper's sample of "
             f"{PER_CLASS} per class needs the full train.csv (120,000 rows)")
    (tr_x, tr_y), (va_x, va_y) = seeded_train_validation([texts[i] for i in keep], labels[keep], seed)
    return Splits(
        "agnews", class_names,
        Split(tr_x, None, tr_y), Split(va_x, None, va_y), Split(test_x, test_y, test_y),
        files=[str(root / name) for name in ("train.csv", "test.csv", "classes.txt")],
    )
