"""WRENCH weak-supervision data sets (trec, semeval, chemprot).

Layout under `--path`: `train.json`, `valid.json`, `test.json` (and `label.json` for class
names), each `{"id": {"label": int, "weak_labels": [int, ...], "data": {"text": str, ...}}}`.
The noisy label of a train/validation example is the majority vote of its labelling
functions (-1 = abstain), ties broken at random with the seed; examples on which every
function abstains are dropped and counted. Test keeps its gold labels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from src.data.base import Split, Splits
from src.errors import UserError

FILES = {"train": "train.json", "validation": "valid.json", "test": "test.json"}


def majority_vote(weak_labels: np.ndarray, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """[N, L] labelling-function outputs (-1 abstains) -> [N] votes, -1 where all abstain."""
    votes = np.zeros((len(weak_labels), num_classes))
    rows, cols = np.nonzero(weak_labels >= 0)
    np.add.at(votes, (rows, weak_labels[rows, cols]), 1)
    # Random tie-breaking: a tiny seeded jitter below the vote resolution.
    jitter = rng.random(votes.shape) * 0.5
    winner = np.argmax(np.where(votes == votes.max(axis=1, keepdims=True), votes + jitter, -1), axis=1)
    return np.where(votes.sum(axis=1) > 0, winner, -1).astype(np.int64)


def _root(path: Path) -> Path:
    if not (path / "train.json").exists() and (path / "wrench" / "train.json").exists():
        return path / "wrench"
    return path


def _read_json(file: Path) -> dict:
    if not file.is_file():
        raise UserError(f"{file}: file not found")
    try:
        with open(file, encoding="utf-8") as f:
            records = json.load(f)
    except json.JSONDecodeError as exc:
        raise UserError(f"{file}:{exc.lineno}: malformed json ({exc.msg})") from None
    if not isinstance(records, dict):
        raise UserError(f"{file}: expected a json object of records keyed by id")
    return records


def load_wrench(name: str, path: str | None, seed: int) -> Splits:
    root = _root(Path(path or f"datasets/{name}"))
    label_file = root / "label.json"
    class_names = None
    if label_file.is_file():
        mapping = _read_json(label_file)
        class_names = [mapping[str(k)] for k in range(len(mapping))]
    raw = {split: _read_json(root / file) for split, file in FILES.items()}
    if class_names is None:
        num = 1 + max(int(r["label"]) for recs in raw.values() for r in recs.values())
        class_names = [str(k) for k in range(num)]
    num_classes = len(class_names)

    splits, dropped = {}, {}
    for offset, (split, records) in enumerate(raw.items()):
        try:
            texts = [r["data"]["text"] for r in records.values()]
            gold = np.array([int(r["label"]) for r in records.values()], dtype=np.int64)
            weak = None
            if split != "test":
                weak = np.array([r["weak_labels"] for r in records.values()], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{root / FILES[split]}: record without a valid {exc} field") from None
        if len(gold) and (gold.min() < 0 or gold.max() >= num_classes):
            raise UserError(f"{root / FILES[split]}: label outside 0..{num_classes - 1}")
        if name == "trec" and split == "test":
            # WRENCH TREC test texts start with the fine label ("dist How far ..."): a leak.
            texts = [t.split(" ", 1)[1] if " " in t else t for t in texts]
        if weak is None:
            splits[split], dropped[split] = Split(texts, gold.copy(), gold), 0
            continue
        noisy = majority_vote(weak, num_classes, np.random.default_rng([seed, offset]))
        keep = np.flatnonzero(noisy >= 0)
        splits[split] = Split([texts[i] for i in keep], noisy[keep], gold[keep])
        dropped[split] = int(len(texts) - len(keep))
    return Splits(name, class_names, splits["train"], splits["validation"], splits["test"],
                  real_noise=True, dropped=dropped)
