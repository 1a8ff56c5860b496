"""WOS-46985 (Web of Science) in its publisher's layout: `X.txt` and `Y.txt`.

Under `--path` (or its `WOS46985/` folder): `X.txt` holds one abstract per line and `Y.txt`
the class id (0..133) of the same line. The split: the last 20% of the file is the test split,
the same for every seed, as in the paper's code; the first 80% is split 80% train / 20%
validation, shuffled with the seed (the paper's code took them in file order).
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
)
from src.data.records import read_text
from src.errors import UserError

LAYOUT = "the WOS-46985 layout: X.txt (one text per line) and Y.txt (one class id per line)"


def _lines(file: Path) -> list[str]:
    # split on "\n" only: str.splitlines would also break lines at form feeds and the like
    lines = [line.rstrip("\r") for line in read_text(require_file(file, LAYOUT), latin1_fallback=True).split("\n")]
    while lines and not lines[-1].strip():  # a trailing blank line is not a record
        lines.pop()
    return lines


def load_wos(path: str | None, seed: int) -> Splits:
    root = require_dir(path or "datasets/wos", "wos")
    if not (root / "X.txt").exists() and (root / "WOS46985").is_dir():
        root = root / "WOS46985"
    texts, raw_labels = _lines(root / "X.txt"), _lines(root / "Y.txt")
    if len(texts) != len(raw_labels):
        raise UserError(f"{root / 'X.txt'} has {len(texts)} lines but {root / 'Y.txt'} has {len(raw_labels)}")
    for line, text in enumerate(texts, start=1):
        if not text.strip():
            raise UserError(f"{root / 'X.txt'}:{line}: empty text")
    labels = []
    for line, value in enumerate(raw_labels, start=1):
        if not value.strip().isdigit():
            raise UserError(f"{root / 'Y.txt'}:{line}: class {value.strip()!r} is not a class id 0, 1, 2, ...")
        labels.append(int(value))
    labels = np.array(labels, dtype=np.int64)
    num_classes = int(labels.max()) + 1 if len(labels) else 0
    if num_classes < 2:
        raise UserError(f"{root / 'Y.txt'}: needs at least 2 classes")

    cut = int(0.8 * len(texts))
    (tr_x, tr_y), (va_x, va_y) = seeded_train_validation(texts[:cut], labels[:cut], seed)
    te_x, te_y = texts[cut:], labels[cut:]
    return Splits(
        "wos", [str(k) for k in range(num_classes)],
        Split(tr_x, None, tr_y), Split(va_x, None, va_y), Split(te_x, te_y, te_y),
        files=[str(root / "X.txt"), str(root / "Y.txt")],
    )
