"""Line-numbered readers for csv and jsonl files: every malformed record names its file and line."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from src.errors import UserError

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long documents are not malformed records


def read_text(file: Path, latin1_fallback: bool = False) -> str:
    """UTF-8 text (a byte-order mark is dropped); one clear error when it is not UTF-8.

    `latin1_fallback` reads a non-UTF-8 file as Latin-1 instead (older corpora such as WOS).
    """
    try:
        return file.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if latin1_fallback:
            return file.read_bytes().decode("latin-1")
        line = file.read_bytes()[: exc.start].count(b"\n") + 1
        raise UserError(f"{file}:{line}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise UserError(f"{file}: cannot be read ({exc.strerror})") from None


def csv_rows(file: Path) -> Iterator[tuple[int, list[str]]]:
    """(first line of the record, fields) for every non-blank record of a csv file."""
    # newline="": quoted fields may hold line breaks; only \n, \r and \r\n end a line.
    reader = csv.reader(io.StringIO(read_text(file), newline=""), strict=True)
    start = 1
    try:
        for fields in reader:
            if fields and any(f.strip() for f in fields):
                yield start, fields
            start = reader.line_num + 1
    except csv.Error as exc:
        raise UserError(f"{file}:{start}: malformed csv record ({exc})") from None


def jsonl_records(file: Path) -> Iterator[tuple[int, dict]]:
    """(line, object) for every non-blank line of a jsonl file."""
    for number, line in enumerate(read_text(file).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as exc:
            raise UserError(f"{file}:{number}: malformed json record ({exc.msg})") from None
        except _RepeatedKey as exc:  # json.loads would keep the last one silently
            raise UserError(f"{file}:{number}: the key {exc.args[0]!r} appears more than once; keep one") from None
        if not isinstance(record, dict):
            raise UserError(f"{file}:{number}: expected a json object per line")
        yield number, record


class _RepeatedKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise _RepeatedKey(key)
        seen.add(key)
    return dict(pairs)


def line_of_key(text: str, key: str) -> int | None:
    """Line on which `"key":` first appears in a json document (for error messages only)."""
    at = text.find(json.dumps(key) + ":")
    if at < 0:
        at = text.find(json.dumps(key))
    return None if at < 0 else text.count("\n", 0, at) + 1
