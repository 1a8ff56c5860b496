"""Your own files with other column names (--text_column, --label_column, --gold_column)."""

from __future__ import annotations

import json

import pytest

from main import main
from src.data import load_dataset
from src.data.user_files import Columns
from src.errors import UserError


def write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def labelled_rows(n: int, offset: int = 0) -> list[tuple[str, str, str, str]]:
    names = ["sports", "food", "weather"]
    return [(f"title {i}", f"words about {names[i % 3]} {i}", names[i % 3], names[(i + offset) % 3])
            for i in range(n)]


def test_describe_reads_other_column_names_and_joins_text_columns(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = labelled_rows(30)
    write(tmp_path / "d" / "train.csv", "id,headline,body,lbl,checked\n" + "".join(
        f"{i},{t},{b},{lab},{g}\n" for i, (t, b, lab, g) in enumerate(rows)))
    code = main(["--dataset", "csv", "--path", str(tmp_path / "d"), "--describe", "--text_column", "headline,body",
                 "--label_column", "lbl", "--gold_column", "checked"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["class_names"] == ["food", "sports", "weather"]
    sizes = {name: split["size"] for name, split in out["splits"].items()}
    assert sizes == {"train": 24, "validation": 6, "test": 0}
    assert out["splits"]["train"]["noise_rate"] == 0.0  # gold is the labelled column here
    splits = load_dataset("csv", str(tmp_path / "d"), 0, Columns.parse("headline,body", "lbl", "checked"))
    assert sorted(splits.train.texts + splits.validation.texts)[0] == "title 0 words about sports 0"
    assert not (tmp_path / "cache").exists()


def test_jsonl_reads_other_keys_the_same_way(tmp_path):
    rows = labelled_rows(20, offset=1)
    write(tmp_path / "train.jsonl", "".join(json.dumps({"t": b, "y": lab, "truth": g}) + "\n" for _, b, lab, g in rows))
    splits = load_dataset("csv", str(tmp_path), 0, Columns.parse("t", "y", "truth"))
    assert len(splits.train) + len(splits.validation) == 20
    assert splits.train.gold is not None and (splits.train.gold != splits.train.noisy).all()  # offset 1: all differ


@pytest.mark.parametrize("flags, expected", [
    (["--text_column", "body"], "no column 'body' for the text (--text_column); the header has text,label"),
    (["--label_column", "y"], "no column 'y' for the label (--label_column); the file has text, label"),
    # the default `gold` may be absent; a gold column named on the command line may not
    (["--gold_column", "gld"], "no column 'gld' for the gold label (--gold_column) in any file; the file has text, "
                               "label"),
])
def test_a_missing_column_is_one_line_listing_the_files_columns(tmp_path, capsys, monkeypatch, flags, expected):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "d" / "train.csv", "text,label\n" + "".join(f"words {i},{i % 2}\n" for i in range(20)))
    code = main(["--dataset", "csv", "--path", str(tmp_path / "d"), "--describe", *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("args, expected", [
    (["--dataset", "demo", "--text_column", "title"], "--text_column: names a column of your own files"),
    (["--dataset", "csv", "--label_column", "text"], "must name different columns"),
    (["--dataset", "csv", "--text_column", "a,,b"], "a column name is empty"),
    (["--dataset", "csv", "--text_column", "text,text"], "names the column 'text' more than once"),  # each text twice
])
def test_column_flags_that_cannot_be_right_are_refused(capsys, args, expected):
    assert main([*args, "--describe"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err


def test_columns_parse():
    assert Columns.parse() == Columns(("text",), "label", "gold")
    assert Columns.parse(" title , description ", "y", "z").text == ("title", "description")
    with pytest.raises(UserError):
        Columns.parse("text", "gold", "gold")
