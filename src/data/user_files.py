"""The user's own labelled data (`--dataset csv`).

A folder with `train.csv` and optionally `valid.csv` and `test.csv` (each may instead be
`.jsonl`, one json object per line). Columns (csv header / json keys): `text`, `label` (the
observed, possibly noisy label) and optionally `gold` (the true label, used only for
diagnostics and test accuracy); other columns are ignored. A test file may leave out `label`.
`Columns` renames them (--text_column, --label_column, --gold_column): the text may be several
columns, joined with a space (e.g. title and description).

`--trusted_column NAME` names a column holding a verified label on the rows someone checked
(empty elsewhere; in jsonl the key may also be left out): a trusted sample, which unlike `gold`
the method reads (the noise-rate estimate, the marking and the kNN prior). Test rows can never
be trusted: a verified label there is refused. A row with a verified label but no given label
stays an abstained row, and its verified label is not used (a warning counts them).

A label cell that is empty, or equal to `--abstain_label`, means the labeller gave no label:
such rows of train and validation are not trained on and are no class; they are counted
(`dropped`) and still get a prediction in the labels file. (In test the observed labels play no
part: an abstention there drops test's label column.)

Labels are class ids 0..C-1 or class names, never both (a column mixing them is refused). Without
`classes.txt`, all-integer labels are ids (each id up to the largest is a class) and otherwise
names, in sorted order. With `classes.txt` (one name per line, in class order) a label that
appears in it is that name: when any line of classes.txt is a number, every label is looked up
as a name there (so `3,1,2,0` means the classes named 3, 1, 2 and 0, not positions); when none
is, integer labels are positions in it. The order is part of the `--describe` output and of
every run record. Labels are read in Unicode's composed form (NFC: `café` typed either way is one
class); ids are ASCII digits only. Classes without a train example (after the hold-out), and
names that differ only in case, are warned about. Without `valid`, a seeded 20% of train is held
out. Without `test` or `gold`, the run still completes: what needs gold labels is reported as
null; a gold column named with --gold_column must be in some file.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from src.data.base import Split, Splits, is_blank, require_dir
from src.data.records import csv_rows, jsonl_records, read_text
from src.errors import UserError, warn

STEMS = {"train": "train", "validation": "valid", "test": "test"}


@dataclass(frozen=True)
class Columns:
    """Which columns of the user's files hold the text (one or more, joined with a space), the
    observed label and the gold label."""

    text: tuple[str, ...] = ("text",)
    label: str = "label"
    gold: str = "gold"
    abstain: str | None = None  # a label value meaning "no label" (an empty cell always does)
    trusted: str | None = None  # a column of verified labels on some rows (a trusted sample)
    gold_required: bool = False  # named by --gold_column: some file must have it

    @classmethod
    def parse(cls, text: str = "text", label: str = "label", gold: str = "gold",
              abstain: str | None = None, trusted: str | None = None, gold_required: bool = False) -> Columns:
        """From the flags: --text_column `title,description` names two columns."""
        names = tuple(name.strip() for name in text.split(","))
        repeated = [name for k, name in enumerate(names) if name and name in names[:k]]
        if repeated:  # each text would be there twice
            raise UserError(f"--text_column {text!r}: names the column {repeated[0]!r} more than once")
        trusted = None if trusted is None else trusted.strip()
        for flag, value in (("--text_column", names), ("--label_column", (label,)), ("--gold_column", (gold,)),
                            ("--trusted_column", (trusted,) if trusted is not None else ())):
            if any(not name for name in value):
                raise UserError(f"{flag} {','.join(value)!r}: a column name is empty")
        single = [label, gold] + ([trusted] if trusted else [])
        if len(set(single)) < len(single) or any(name in names for name in single):
            raise UserError(f"--text_column {text!r}, --label_column {label!r}, --gold_column {gold!r}"
                            + (f" and --trusted_column {trusted!r}" if trusted else "")
                            + " must name different columns")
        return cls(names, label, gold, None if abstain is None else label_value(abstain), trusted, gold_required)

    def describe(self) -> str:
        return f"{'+'.join(self.text)},{self.label}[,{self.gold}]"
INTEGER = re.compile(r"-?[0-9]+")  # values are stripped when read; `３` and `٣` are names, not ids
MAX_UNUSED_IDS = 100  # integer labels may skip this many ids (or as many as they use), no more


def label_value(value: str) -> str:
    """A label cell as compared: stripped, in Unicode's composed form (NFC), so that `café`
    typed with a combining accent is the same class as `café` typed with one character."""
    return unicodedata.normalize("NFC", value.strip())


@dataclass
class _Rows:
    """The raw records of one split file; labels as written (str or int), None if no column."""

    file: Path
    lines: list[int]
    texts: list[str]
    label: list | None
    gold: list | None
    trusted: list | None = None  # verified labels, None where the row was not checked


def _find(root: Path, stem: str, required: bool) -> Path | None:
    found = [root / f"{stem}{ext}" for ext in (".csv", ".jsonl") if (root / f"{stem}{ext}").is_file()]
    if len(found) > 1:
        raise UserError(f"{root}: both {stem}.csv and {stem}.jsonl exist; keep one")
    if not found and required:
        raise UserError(f"{root / (stem + '.csv')}: file not found (the csv data set needs train.csv or "
                        f"train.jsonl, with columns text,label[,gold])")
    return found[0] if found else None


def _records(file: Path, columns: Columns):
    """(line, {"text", "label", "gold": value}) for every record, csv or jsonl: the text columns
    joined with a space, the label columns under their usual names (absent when the file has none)."""
    source = _raw_records(file, columns)
    for line, record in source:
        missing = [name for name in columns.text if name not in record]
        if missing:
            raise UserError(f"{file}:{line}: no column {missing[0]!r} for --text_column; the file has "
                            f"{', '.join(map(str, record)) or 'no columns'}")
        parts = [record[name] for name in columns.text]
        bad = [p for p in parts if not isinstance(p, str)]
        text = bad[0] if bad else " ".join(p.strip() for p in parts if p.strip())
        out = {"text": text}
        for name, column in (("label", columns.label), ("gold", columns.gold), ("trusted", columns.trusted)):
            if column is not None and column in record:
                out[name] = record[column]
        yield line, out


def _raw_records(file: Path, columns: Columns):
    """(line, {column: value}) as written, csv or jsonl."""
    if file.suffix == ".jsonl":
        yield from jsonl_records(file)
        return
    rows = csv_rows(file)
    header_line, header = next(rows, (1, []))
    header = [h.strip() for h in header]
    repeated = [h for k, h in enumerate(header) if h and h in header[:k]]
    if repeated:  # zip() below would keep the last one silently
        raise UserError(f"{file}:{header_line}: the header names the column {repeated[0]!r} more than "
                        f"once; keep one")
    missing = [name for name in columns.text if name not in header]
    if missing:
        raise UserError(f"{file}:{header_line}: no column {missing[0]!r} for the text (--text_column); "
                        f"the header has {','.join(header) or 'nothing'}")
    for line, fields in rows:
        if len(fields) != len(header):
            raise UserError(f"{file}:{line}: expected {len(header)} fields ({','.join(header)}), "
                            f"found {len(fields)}")
        yield line, dict(zip(header, fields))


def _read(file: Path, label_required: bool, names: Columns) -> _Rows:
    """The records of one file. `label_required`: a train or validation file (test's labels are
    optional, and test can never be trusted)."""
    rows = _Rows(file, [], [], None, None, [] if names.trusted else None)
    columns: set | None = None
    has_trusted = False
    for line, record in _records(file, names):
        if columns is None:  # the first record decides which label columns the file has
            columns = {c for c in ("label", "gold") if c in record}
            if label_required and "label" not in columns:
                raise UserError(f"{file}:{line}: no column {names.label!r} for the label (--label_column); "
                                f"the file has {', '.join(_column_names(file, line, names)) or 'no columns'}")
            rows.label = [] if "label" in columns else None
            rows.gold = [] if "gold" in columns else None
        if {c for c in ("label", "gold") if c in record} != columns:
            raise UserError(f"{file}:{line}: every record needs the same label columns as the first "
                            f"({', '.join(sorted(columns)) or 'none'})")
        text = record.get("text")
        if not isinstance(text, str):
            raise UserError(f"{file}:{line}: the text must be a string, found {text!r}")
        if is_blank(text):
            raise UserError(f"{file}:{line}: empty text")
        for column in columns:
            value = record.get(column)
            if isinstance(value, str):
                value = label_value(value)
            if column == "label" and (value in ("", None) or str(value) == names.abstain):
                rows.label.append(None)  # the labeller abstained
                continue
            if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
                raise UserError(f"{file}:{line}: {column} must be a class id or name, found {value!r}")
            getattr(rows, column).append(value)
        if names.trusted:
            has_trusted |= "trusted" in record
            rows.trusted.append(_verified(file, line, record.get("trusted"), label_required))
        rows.lines.append(line)
        rows.texts.append(text)
    if label_required and not rows.texts:
        raise UserError(f"{file}: no records")
    if names.trusted and STEMS["train"] == file.stem and not has_trusted:
        raise UserError(f"{file}: no column {names.trusted!r} for the verified labels (--trusted_column); "
                        f"the file has {', '.join(_column_names(file, rows.lines[0], names)) or 'no columns'}")
    return rows


def _verified(file: Path, line: int, value, trustable: bool):
    """One cell of the trusted column: None (not checked) or the verified label as written."""
    if isinstance(value, str):
        value = label_value(value)
    if value in ("", None):
        return None
    if not trustable:
        raise UserError(f"{file}:{line}: a verified label ({value!r}) in the test split; test can never be "
                        f"trusted (its labels are what the method is measured against)")
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise UserError(f"{file}:{line}: trusted label must be a class id or name, found {value!r}")
    return value


def _is_id(value) -> bool:
    return isinstance(value, int) or bool(INTEGER.fullmatch(value))


def _label_cells(raw: dict[str, _Rows]):
    """(file, line, column, value) of every label and gold cell, in file order."""
    for rows in raw.values():
        for column in ("label", "gold", "trusted"):
            for line, value in zip(rows.lines, getattr(rows, column) or []):
                if value is not None:  # an abstention is no label
                    yield rows.file, line, column, value


def _integer_ids(raw: dict[str, _Rows], classes: list[str] | None) -> bool:
    """Whether the labels are class ids (positions) rather than names; mixing them is refused."""
    if classes is not None and any(INTEGER.fullmatch(name) for name in classes):
        return False  # numeric names in classes.txt: every label is a name
    first = {}  # is an id -> the first cell of that kind
    for file, line, column, value in _label_cells(raw):
        kind = _is_id(value)
        if not first or kind in first:
            first.setdefault(kind, (file, line, value))
            continue
        other_file, other_line, other = first[not kind]
        raise UserError(f"{file}:{line}: {column} {value!r} is a class {'id' if kind else 'name'}, but "
                        f"{other_file.name}:{other_line} has the class {'name' if kind else 'id'} {other!r}; "
                        f"write every label as an id 0..C-1 or every one as a name")
    return True in first


def _classes_file(root: Path) -> list[str] | None:
    classes_file = root / "classes.txt"
    if not classes_file.is_file():
        return None
    names = [label_value(line) for line in read_text(classes_file).split("\n") if line.strip()]
    if len(names) < 2 or len(set(names)) != len(names):
        raise UserError(f"{classes_file}: expected at least 2 distinct class names, one per line")
    return names


def _class_names(train: _Rows, classes: list[str] | None, integer_ids: bool) -> list[str]:
    if classes is not None:
        return classes
    seen = [v for v in train.label + (train.gold or []) if v is not None]
    names = ([str(k) for k in range(_id_count(train))] if integer_ids
             else sorted({str(v) for v in seen}))
    if len(names) < 2:
        raise UserError(f"{train.file}: the labels name fewer than 2 classes ({', '.join(names) or 'none'})")
    return names


def _id_count(train: _Rows) -> int:
    """How many classes the integer labels of train name: the largest id + 1. Refused when most
    ids up to it are unused, as one mistyped label makes them (999999999999 among 0..3 would be
    10^12 classes): ids are positions 0..C-1, not codes."""
    cells = [(line, column, int(value)) for column in ("label", "gold")
             for line, value in zip(train.lines, getattr(train, column) or []) if value is not None]
    used = len({k for _, _, k in cells})
    line, column, top = max(cells, key=lambda cell: cell[2])
    if top + 1 - used > max(used, MAX_UNUSED_IDS):
        raise UserError(f"{train.file}:{line}: {column} {top} would make {top + 1} classes (ids 0..{top}), but the "
                        f"train labels use only {used} ids; integer labels are class ids 0..C-1 (write them as "
                        f"names, or list the classes in classes.txt)")
    return top + 1


def _ids(rows: _Rows, column: str, class_names: list[str], integer_ids: bool, from_file: bool) -> np.ndarray | None:
    """The class ids of one column; `from_file`: the classes come from classes.txt. An empty
    cell of the trusted column (a row nobody checked) is -1."""
    values = getattr(rows, column)
    if values is None:
        return None
    index = {name: k for k, name in enumerate(class_names)}
    out = np.empty(len(values), dtype=np.int64)
    for i, value in enumerate(values):
        if value is None:  # only the trusted column has empty cells here
            k = -1
        elif integer_ids:
            k = int(value)
            if not 0 <= k < len(class_names):
                where = f" (the {len(class_names)} lines of classes.txt)" if from_file else ""
                raise UserError(f"{rows.file}:{rows.lines[i]}: {column} {k} outside the class range "
                                f"0..{len(class_names) - 1}{where}")
        else:
            k = index.get(str(value), -1)
            if k < 0:
                known = ", ".join(class_names[:10]) + (", ..." if len(class_names) > 10 else "")
                source = "in classes.txt" if from_file else "a class of the train split"
                raise UserError(f"{rows.file}:{rows.lines[i]}: {column} {value!r} is not {source} ({known})")
        out[i] = k
    return out


def _warn_odd_classes(class_names: list[str], train: Split, file: Path) -> None:
    """Classes that are used but look wrong: no train example, or names equal but for case."""
    used = [labels for labels in (train.noisy, train.gold) if labels is not None]
    counts = np.bincount(np.concatenate(used), minlength=len(class_names))
    empty = [name for name, count in zip(class_names, counts) if count == 0]
    if empty:
        shown = ", ".join(empty[:10]) + (", ..." if len(empty) > 10 else "")
        warn(f"{file}: {len(empty)} of the {len(class_names)} classes have no train example ({shown}); "
             f"they stay classes of the model")
    folded: dict[str, list[str]] = {}
    for name in class_names:
        folded.setdefault(name.casefold(), []).append(name)
    same = [names for names in folded.values() if len(names) > 1]
    if same:
        warn(f"{file}: the class names {' and '.join(repr(n) for n in same[0])} differ only in case; "
             f"they are {len(same[0])} separate classes")


def _check_abstain_value(raw: dict[str, _Rows], classes: list[str] | None, abstain: str | None) -> None:
    """--abstain_label must be no class: not a gold or verified label, nor a line of classes.txt
    (else the flag, not the cell, is what is wrong)."""
    if abstain is None:
        return
    if classes is not None and abstain in classes:
        raise UserError(f"--abstain_label {abstain!r}: is a class in classes.txt, so it cannot mean \"no label\"")
    for file, line, column, value in _label_cells(raw):
        if str(value) == abstain:
            raise UserError(f"--abstain_label {abstain!r}: {file}:{line} has it as a {column} label, so it is a "
                            f"class and cannot mean \"no label\"; pick a value no label column uses")


def _without_abstentions(rows: _Rows) -> tuple[_Rows, _Rows]:
    """(the rows with a label, the rows whose labeller abstained); the label column of the second is None."""
    labelled = [i for i, value in enumerate(rows.label) if value is not None]
    abstained = [i for i, value in enumerate(rows.label) if value is None]

    def pick(index: list[int], with_label: bool) -> _Rows:
        take = (lambda values: None if values is None else [values[i] for i in index])
        return _Rows(rows.file, take(rows.lines), take(rows.texts), take(rows.label) if with_label else None,
                     take(rows.gold), take(rows.trusted) if with_label else None)

    if rows.trusted is not None:
        unused = sum(rows.trusted[i] is not None for i in abstained)
        if unused:
            warn(f"{rows.file}: {unused} rows with a verified label (--trusted_column) have no given label; "
                 f"they stay unlabelled rows, and their verified labels are not used")
    return pick(labelled, True), pick(abstained, False)


def _subset(split: Split, index: np.ndarray) -> Split:
    pick = (lambda labels: None if labels is None else labels[index])
    return Split([split.texts[i] for i in index], pick(split.noisy), pick(split.gold), pick(split.trusted))


def _column_names(file: Path, line: int, columns: Columns) -> list[str]:
    """The columns of `file` as written (its header, or the keys of its record on `line`)."""
    for record_line, record in _raw_records(file, columns):
        if record_line >= line:
            return [str(name) for name in record]
    return []


def load_user_files(path: str | None, seed: int, columns: Columns | None = None) -> Splits:
    columns = columns or Columns()
    if not path:
        raise UserError("--dataset csv needs --path: a folder with train.csv (columns text,label[,gold])")
    root = require_dir(path, "csv")
    if not root.is_dir():
        raise UserError(f"--path {root}: the csv data set needs a folder holding train.csv, not a file")
    found = {split: _find(root, stem, split == "train") for split, stem in STEMS.items()}
    raw = {split: _read(file, split != "test", columns) for split, file in found.items() if file is not None}

    if columns.gold_required and all(rows.gold is None for rows in raw.values()):
        train = raw["train"]
        raise UserError(f"{train.file}:{train.lines[0]}: no column {columns.gold!r} for the gold label (--gold_column) "
                        f"in any file; the file has {', '.join(_column_names(train.file, train.lines[0], columns))}")
    classes = _classes_file(root)
    _check_abstain_value(raw, classes, columns.abstain)
    integer_ids = _integer_ids(raw, classes)
    abstained_rows = {}
    for split in ("train", "validation"):  # rows without a label: not trained on, still predicted
        if split in raw:
            raw[split], abstained_rows[split] = _without_abstentions(raw[split])
    if "test" in raw and raw["test"].label is not None and None in raw["test"].label:
        raw["test"].label = None  # test's observed labels play no part; gold is what counts there
    if not raw["train"].texts:
        raise UserError(f"{found['train']}: every label is an abstention; nothing to train on")
    class_names = _class_names(raw["train"], classes, integer_ids)

    splits = {}
    for split, rows in raw.items():
        ids = partial(_ids, rows, class_names=class_names, integer_ids=integer_ids, from_file=classes is not None)
        trusted = ids("trusted") if split != "test" else None  # test: every cell checked empty
        splits[split] = Split(rows.texts, ids("label"), ids("gold"), trusted)
    abstained = {split: Split(rows.texts, None, _ids(rows, "gold", class_names, integer_ids, classes is not None))
                 for split, rows in abstained_rows.items() if rows.texts}
    if "validation" not in splits:  # hold out a seeded 20% of train
        order = np.random.default_rng([seed, 3]).permutation(len(splits["train"]))
        cut = int(0.8 * len(order))
        splits["validation"] = _subset(splits["train"], order[cut:])
        splits["train"] = _subset(splits["train"], order[:cut])
    _warn_odd_classes(class_names, splits["train"], found["train"])  # after the hold-out: what trains
    if "test" not in splits:
        splits["test"] = Split([], None, None)
    files = [str(f) for f in found.values() if f is not None]
    if (root / "classes.txt").is_file():
        files.append(str(root / "classes.txt"))
    dropped = {"train": 0, "validation": 0, "test": 0} | {name: len(split) for name, split in abstained.items()}
    return Splits("csv", class_names, splits["train"], splits["validation"], splits["test"],
                  real_noise=True, dropped=dropped, files=files, abstained=abstained)
