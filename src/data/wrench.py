"""WRENCH weak-supervision data sets (trec, semeval, chemprot).

Layout under `--path`: `train.json`, `valid.json`, `test.json` (and `label.json` for class
names), each `{"id": {"label": int, "weak_labels": [int, ...], "data": {"text": str, ...}}}`.
The noisy label of a train/validation example is the majority vote of its labelling
functions (-1 = abstain), ties broken at random with the seed; examples on which every
function abstains are not trained on and counted (`dropped`), and kept as abstained rows that
the run still predicts. Test keeps its gold labels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from src.data.base import Split, Splits, require_dir, require_file
from src.data.records import line_of_key, read_text
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


def wrench_root(path: Path) -> Path:
    """The folder holding the WRENCH json files: `path`, or `path`/wrench/ when they are there."""
    if not (path / "train.json").exists() and (path / "wrench" / "valid.json").exists():
        return path / "wrench"
    return path


def _read_json(file: Path, what: str) -> tuple[dict, str]:
    require_file(file, what)
    text = read_text(file)
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{file}:{exc.lineno}: malformed json ({exc.msg})") from None
    if not isinstance(records, dict):
        raise UserError(f"{file}: expected a json object of records keyed by id")
    return records, text


def _parse(file: Path, text: str, records: dict, num_classes: int, with_weak: bool):
    """texts, gold [N], weak [N, L] or None; every bad record names its file and line."""
    texts, gold, weak = [], [], []

    def bad(key, why):
        line = line_of_key(text, key)
        return UserError(f"{file}:{line or '?'}: record {key!r} {why}")

    for key, record in records.items():
        try:
            item_text, label = record["data"]["text"], record["label"]
        except (KeyError, TypeError):
            raise bad(key, 'lacks "label" or "data": {"text"}') from None
        if not isinstance(item_text, str) or not item_text.strip():
            raise bad(key, "has an empty text")
        if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < num_classes:
            raise bad(key, f"has label {label!r}, outside the class range 0..{num_classes - 1}")
        if with_weak:
            votes = record.get("weak_labels")
            if not isinstance(votes, list) or not all(isinstance(v, int) and -1 <= v < num_classes for v in votes):
                raise bad(key, f"needs weak_labels: a list of ints in -1..{num_classes - 1}")
            if weak and len(votes) != len(weak[0]):
                raise bad(key, f"has {len(votes)} weak labels, the records before it {len(weak[0])}")
            weak.append(votes)
        texts.append(item_text)
        gold.append(label)
    weak_array = np.array(weak, dtype=np.int64).reshape(len(texts), -1) if with_weak else None
    return texts, np.array(gold, dtype=np.int64), weak_array


def load_wrench(name: str, path: str | None, seed: int) -> Splits:
    root = wrench_root(require_dir(path or f"datasets/{name}", name))
    layout = f"the WRENCH layout of {name}: train.json, valid.json, test.json"
    raw = {split: _read_json(root / file, layout) for split, file in FILES.items()}
    files = [str(root / file) for file in FILES.values()]
    label_file = root / "label.json"
    if label_file.is_file():
        mapping, _ = _read_json(label_file, "")
        try:
            class_names = [str(mapping[str(k)]) for k in range(len(mapping))]
        except KeyError:
            raise UserError(f"{label_file}: expected keys 0..{len(mapping) - 1}") from None
        files.append(str(label_file))
    else:  # no names: as many classes as the largest gold label says
        labels = [r.get("label") for recs, _ in raw.values() for r in recs.values() if isinstance(r, dict)]
        num = 1 + max((x for x in labels if isinstance(x, int)), default=0)
        class_names = [str(k) for k in range(num)]
    num_classes = len(class_names)

    splits, dropped, abstained = {}, {}, {}
    for offset, (split, (records, text)) in enumerate(raw.items()):
        texts, gold, weak = _parse(root / FILES[split], text, records, num_classes, split != "test")
        if name == "trec" and split == "test":
            # WRENCH TREC test texts start with the fine label ("dist How far ..."): a leak.
            texts = [t.split(" ", 1)[1] if " " in t else t for t in texts]
        if weak is None:
            splits[split], dropped[split] = Split(texts, gold.copy(), gold), 0
            continue
        noisy = majority_vote(weak, num_classes, np.random.default_rng([seed, offset]))
        keep, uncovered = np.flatnonzero(noisy >= 0), np.flatnonzero(noisy < 0)
        splits[split] = Split([texts[i] for i in keep], noisy[keep], gold[keep])
        dropped[split] = int(len(uncovered))
        if len(uncovered):  # no function voted: not trained on, but predicted
            abstained[split] = Split([texts[i] for i in uncovered], None, gold[uncovered])
    return Splits(name, class_names, splits["train"], splits["validation"], splits["test"],
                  real_noise=True, dropped=dropped, files=files, abstained=abstained)
