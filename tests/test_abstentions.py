"""Rows whose labeller gave no label: not trained on, no class, counted, and still predicted."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from main import main
from src.data import load_dataset
from src.data.user_files import Columns

FAST = ["--epochs", "2", "--total_iter", "2", "--train_batch_size", "16", "--no-progress"]


def demo_file(path, n: int, abstain_every: int, abstain_value: str = "") -> None:
    """n demo texts under other column names; every `abstain_every`-th label is an abstention."""
    from src.data.demo import TOPICS

    names, data = list(TOPICS), load_dataset("demo", None, 0).train
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["body", "llm", "verified"])
        for i, (text, y) in enumerate(zip(data.texts[:n], data.gold[:n])):
            label = (abstain_value if i % (2 * abstain_every) else "") if i % abstain_every == 0 else names[y]
            out.writerow([text, label, names[y]])


def test_describe_counts_abstentions_empty_and_named(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    demo_file(tmp_path / "d" / "train.csv", 200, abstain_every=20, abstain_value="-1")  # 10 of 200: 5%
    demo_file(tmp_path / "d" / "valid.csv", 40, abstain_every=20, abstain_value="-1")  # 2 of 40
    args = ["--dataset", "csv", "--path", str(tmp_path / "d"), "--describe", "--text_column", "body",
            "--label_column", "llm", "--gold_column", "verified", "--abstain_label", "-1"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["num_classes"] == 4  # "-1" is no class
    assert {k: v["dropped"] for k, v in out["splits"].items()} == {"train": 10, "validation": 2, "test": 0}
    assert out["splits"]["train"]["size"] == 190 and out["splits"]["validation"]["size"] == 38
    # without --abstain_label only the empty cells abstain, and "-1" is a label: mixed with names, refused
    assert main(args[:-2]) == 2
    assert "is a class id" in capsys.readouterr().err


def test_abstained_rows_are_not_trained_on_and_are_predicted(tiny_bert, tmp_path):
    demo_file(tmp_path / "d" / "train.csv", 120, abstain_every=10)  # 12 empty labels
    args = ["--dataset", "csv", "--path", str(tmp_path / "d"), "--text_column", "body", "--label_column", "llm",
            "--gold_column", "verified", "--bert", tiny_bert, *FAST, "--cache_dir", str(tmp_path / "cache")]
    assert main(args) == 0
    (record_file,) = (tmp_path / "cache" / "runs").glob("*[0-9a-f].json")
    record = json.loads(record_file.read_text())
    assert record["data"]["dropped"]["train"] == 12
    assert record["data"]["train"] + record["data"]["validation"] == 108  # 20% of the labelled held out
    with open(next((tmp_path / "cache" / "runs").glob("*-labels.csv")), newline="") as f:
        rows = list(csv.DictReader(f))
    unlabelled = [r for r in rows if r["noisy_label"] == ""]
    # the reported agreement is that of the predictions written for these rows with their gold label
    agree = np.mean([r["cleaned_label"] == r["gold"] for r in unlabelled])
    assert record["abstained"]["predicted"] == 12 and record["abstained"]["agrees_with_gold"] == pytest.approx(agree)
    assert len(unlabelled) == 12 and all(r["cleaned_label"] and r["split"] == "train" for r in unlabelled)
    assert all(r["noise_score"] == "" and r["marked_noisy"] == "" for r in unlabelled)
    # numbered after the labelled rows of their split
    train_labelled = record["data"]["train"]
    assert sorted(int(r["index"]) for r in unlabelled) == list(range(train_labelled, train_labelled + 12))
    agrees = np.mean([r["cleaned_label"] == r["gold"] for r in unlabelled])
    assert agrees == record["abstained"]["agrees_with_gold"]
    # stage 1 embedded them after test: the trajectories hold every row
    (entry,) = [p for p in (tmp_path / "cache" / "stage1").iterdir() if p.is_dir()]
    shape = json.loads((entry / "result.json").read_text())["shape"]
    assert shape[0] == 108 + 12 + record["data"]["test"]


def test_wrench_rows_no_function_voted_on_are_kept_as_abstained(tmp_path):
    def records(votes: list[list[int]]) -> dict:
        return {str(i): {"label": i % 2, "weak_labels": v, "data": {"text": f"text number {i}"}}
                for i, v in enumerate(votes)}

    votes = [[0, -1], [1, 1], [-1, -1], [0, 0], [-1, -1], [1, -1]]
    for name in ("train.json", "valid.json", "test.json"):
        (tmp_path / name).write_text(json.dumps(records(votes)))
    splits = load_dataset("semeval", str(tmp_path), 0)
    assert len(splits.train) == 4 and splits.dropped["train"] == 2
    assert splits.abstained["train"].texts == ["text number 2", "text number 4"]
    assert splits.abstained["train"].gold.tolist() == [0, 0] and splits.abstained["train"].noisy is None
    assert splits.all_texts()[-4:] == ["text number 2", "text number 4"] * 2  # after test: train's, then validation's
    assert Columns.parse(abstain=" -1 ").abstain == "-1"
