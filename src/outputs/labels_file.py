"""The cleaned-labels file of a run: one row per train and validation example (and per test
text when the test split has no labels), written atomically as CSV.

Columns: split, index, text, noisy_label, suggested_label (the label to apply: the given one
unless the evidence beats it by the run's margin), label_issue (1 where they differ),
given_label_prob (P(given label | x, given label): sort ascending to check the most likely wrong
rows first), cleaned_label (argmax of that posterior), cleaned_prob, noise_score, marked_noisy,
trusted_label where some rows have a verified label, and gold where the data set has gold
labels. Labels are class names.

A text or label cell that begins with =, +, -, @ (or a tab or carriage return) is written with a
leading apostrophe (`'=1+2`), so that a spreadsheet shows it as text instead of running it as a
formula; so is one that begins with an apostrophe. A program reading the file gets the originals
back by dropping one leading apostrophe from every text and label cell that has one.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from src.storage.files import atomic_file

COLUMNS = ["split", "index", "text", "noisy_label", "suggested_label", "label_issue", "given_label_prob",
           "cleaned_label", "cleaned_prob", "noise_score", "marked_noisy"]


def label_rows(
    split: str, texts: list[str], class_names: list[str], cleaned_probs: np.ndarray,
    noisy: np.ndarray | None = None, noise_score: np.ndarray | None = None,
    marked: np.ndarray | None = None, gold: np.ndarray | None = None, first_index: int = 0,
    trusted: np.ndarray | None = None, suggested: np.ndarray | None = None,
) -> list[dict]:
    """Rows of one split. cleaned_probs [N, C]; the optional per-example arrays are [N]; the rows
    are numbered from `first_index`.

    A missing array leaves its column empty (e.g. test texts have no noise score); rows without
    a given label have no suggestion.
    """
    cleaned = cleaned_probs.argmax(1)
    given = None if noisy is None else np.asarray(noisy)

    def name(ids: np.ndarray | None, i: int) -> str:  # -1: none (a row nobody verified)
        return "" if ids is None or ids[i] < 0 else class_names[int(ids[i])]

    return [{
        "split": split, "index": first_index + i, "text": text,
        "noisy_label": name(noisy, i),
        "suggested_label": name(suggested, i),
        "label_issue": "" if suggested is None or given is None else int(suggested[i] != given[i]),
        "given_label_prob": "" if given is None or given[i] < 0 else f"{cleaned_probs[i, given[i]]:.4f}",
        "cleaned_label": class_names[int(cleaned[i])],
        "cleaned_prob": f"{cleaned_probs[i, cleaned[i]]:.4f}",
        "noise_score": "" if noise_score is None else f"{noise_score[i]:.4f}",
        "marked_noisy": "" if marked is None else int(marked[i]),
        "trusted_label": name(trusted, i),
        "gold": name(gold, i),
    } for i, text in enumerate(texts)]


FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")  # "'": so that one "'" is always ours
# the user's strings
USER_COLUMNS = ("text", "noisy_label", "suggested_label", "cleaned_label", "trusted_label", "gold")


def spreadsheet_safe(cell: str) -> str:
    """`cell` with a leading apostrophe when a spreadsheet would read it as a formula."""
    return "'" + cell if cell.startswith(FORMULA_START) else cell


def write_labels_csv(path: str | Path, rows: list[dict], open_file=atomic_file) -> None:
    """Write `rows` atomically (`open_file(path)`: a binary file object that is put in place
    when complete); the trusted_label and gold columns only when some row has one."""
    columns = COLUMNS + [c for c in ("trusted_label", "gold") if any(row[c] != "" for row in rows)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({**row, **{c: spreadsheet_safe(row[c]) for c in USER_COLUMNS}} for row in rows)
    with open_file(path) as f:
        f.write(buffer.getvalue().encode("utf-8"))
