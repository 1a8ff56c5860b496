"""The user's own labelled data (`--dataset csv`).

A folder with `train.csv` and optionally `valid.csv` and `test.csv` (each may instead be
`.jsonl`, one json object per line). Columns (csv header / json keys): `text`, `label` (the
observed, possibly noisy label) and optionally `gold` (the true label, used only for
diagnostics and test accuracy); other columns are ignored. A test file may leave out `label`.

Labels may be class ids 0..C-1 or strings. String labels get ids in sorted order (or in the
order of an optional `classes.txt`, one name per line); the order is part of the `--describe`
output and of every run record. Without `valid`, a seeded 20% of train is held out. Without
`test` or `gold`, the run still completes: what needs gold labels is reported as null.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.data.base import Split, Splits, require_dir
from src.data.records import csv_rows, jsonl_records, read_text
from src.errors import UserError

STEMS = {"train": "train", "validation": "valid", "test": "test"}
INTEGER = re.compile(r"-?\d+")  # values are stripped when read


@dataclass
class _Rows:
    """The raw records of one split file; labels as written (str or int), None if no column."""

    file: Path
    lines: list[int]
    texts: list[str]
    label: list | None
    gold: list | None


def _find(root: Path, stem: str, required: bool) -> Path | None:
    found = [root / f"{stem}{ext}" for ext in (".csv", ".jsonl") if (root / f"{stem}{ext}").is_file()]
    if len(found) > 1:
        raise UserError(f"{root}: both {stem}.csv and {stem}.jsonl exist; keep one")
    if not found and required:
        raise UserError(f"{root / (stem + '.csv')}: file not found (the csv data set needs train.csv or "
                        f"train.jsonl, with columns text,label[,gold])")
    return found[0] if found else None


def _records(file: Path):
    """(line, {column: value}) for every record, csv or jsonl."""
    if file.suffix == ".jsonl":
        yield from jsonl_records(file)
        return
    rows = csv_rows(file)
    header_line, header = next(rows, (1, []))
    header = [h.strip() for h in header]
    if "text" not in header:
        raise UserError(f"{file}:{header_line}: the header needs a text column (text,label[,gold]); "
                        f"found {','.join(header) or 'nothing'}")
    for line, fields in rows:
        if len(fields) != len(header):
            raise UserError(f"{file}:{line}: expected {len(header)} fields ({','.join(header)}), "
                            f"found {len(fields)}")
        yield line, dict(zip(header, fields))


def _read(file: Path, label_required: bool) -> _Rows:
    rows = _Rows(file, [], [], None, None)
    columns: set | None = None
    for line, record in _records(file):
        if columns is None:  # the first record decides which label columns the file has
            columns = {c for c in ("label", "gold") if c in record}
            if label_required and "label" not in columns:
                raise UserError(f"{file}:{line}: no label column (columns text,label[,gold])")
            rows.label = [] if "label" in columns else None
            rows.gold = [] if "gold" in columns else None
        if {c for c in ("label", "gold") if c in record} != columns:
            raise UserError(f"{file}:{line}: every record needs the same label columns as the first "
                            f"({', '.join(sorted(columns)) or 'none'})")
        text = record.get("text")
        if not isinstance(text, str):
            raise UserError(f"{file}:{line}: the text must be a string, found {text!r}")
        if not text.strip():
            raise UserError(f"{file}:{line}: empty text")
        for column in columns:
            value = record.get(column)
            if isinstance(value, str):
                value = value.strip()
            if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
                raise UserError(f"{file}:{line}: {column} must be a class id or name, found {value!r}")
            getattr(rows, column).append(value)
        rows.lines.append(line)
        rows.texts.append(text)
    if label_required and not rows.texts:
        raise UserError(f"{file}: no records")
    return rows


def _class_names(root: Path, train: _Rows, integer_ids: bool) -> list[str]:
    classes_file = root / "classes.txt"
    if classes_file.is_file():
        names = [line.strip() for line in read_text(classes_file).split("\n") if line.strip()]
        if len(names) < 2 or len(set(names)) != len(names):
            raise UserError(f"{classes_file}: expected at least 2 distinct class names, one per line")
        return names
    seen = train.label + (train.gold or [])
    names = ([str(k) for k in range(1 + max(int(v) for v in seen))] if integer_ids
             else sorted({str(v) for v in seen}))
    if len(names) < 2:
        raise UserError(f"{train.file}: the labels name fewer than 2 classes ({', '.join(names) or 'none'})")
    return names


def _ids(rows: _Rows, column: str, class_names: list[str], integer_ids: bool) -> np.ndarray | None:
    values = getattr(rows, column)
    if values is None:
        return None
    index = {name: k for k, name in enumerate(class_names)}
    out = np.empty(len(values), dtype=np.int64)
    for i, value in enumerate(values):
        if integer_ids:
            k = int(value)
            if not 0 <= k < len(class_names):
                raise UserError(f"{rows.file}:{rows.lines[i]}: {column} {k} outside the class range "
                                f"0..{len(class_names) - 1}")
        else:
            k = index.get(str(value), -1)
            if k < 0:
                known = ", ".join(class_names[:10]) + (", ..." if len(class_names) > 10 else "")
                raise UserError(f"{rows.file}:{rows.lines[i]}: {column} {value!r} is not a class of the "
                                f"train split ({known})")
        out[i] = k
    return out


def _subset(split: Split, index: np.ndarray) -> Split:
    pick = (lambda labels: None if labels is None else labels[index])
    return Split([split.texts[i] for i in index], pick(split.noisy), pick(split.gold))


def load_user_files(path: str | None, seed: int) -> Splits:
    if not path:
        raise UserError("--dataset csv needs --path: a folder with train.csv (columns text,label[,gold])")
    root = require_dir(path, "csv")
    if not root.is_dir():
        raise UserError(f"--path {root}: the csv data set needs a folder holding train.csv, not a file")
    found = {split: _find(root, stem, split == "train") for split, stem in STEMS.items()}
    raw = {split: _read(file, split != "test") for split, file in found.items() if file is not None}

    # Class ids as written when every label is an integer, else class names.
    values = [v for rows in raw.values() for column in (rows.label, rows.gold) if column for v in column]
    integer_ids = all(isinstance(v, int) or INTEGER.fullmatch(v) for v in values)
    class_names = _class_names(root, raw["train"], integer_ids)

    splits = {}
    for split, rows in raw.items():
        splits[split] = Split(rows.texts, _ids(rows, "label", class_names, integer_ids),
                              _ids(rows, "gold", class_names, integer_ids))
    if "validation" not in splits:  # hold out a seeded 20% of train
        order = np.random.default_rng([seed, 3]).permutation(len(splits["train"]))
        cut = int(0.8 * len(order))
        splits["validation"] = _subset(splits["train"], order[cut:])
        splits["train"] = _subset(splits["train"], order[:cut])
    if "test" not in splits:
        splits["test"] = Split([], None, None)
    files = [str(f) for f in found.values() if f is not None]
    if (root / "classes.txt").is_file():
        files.append(str(root / "classes.txt"))
    return Splits("csv", class_names, splits["train"], splits["validation"], splits["test"],
                  real_noise=True, files=files)
