"""The cleaned-labels file and `--noise_ratio auto`, end to end with the tiny BERT."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from main import main
from src.data import LOADERS
from src.data.demo import load_demo
from src.data.noise import symmetric_noise
from src.noise_rate import AUTO_ESTIMATOR
from src.outputs.labels_file import COLUMNS, label_rows, write_labels_csv

FAST = ["--epochs", "2", "--total_iter", "2", "--train_batch_size", "16", "--no-progress"]


def noisy_unlabelled_demo(path=None, seed=0):
    """The demo as a user's file would arrive: labels already noisy (SN 30%), test without labels."""
    splits = load_demo(path, seed)
    for offset, split in enumerate((splits.train, splits.validation)):
        split.noisy = symmetric_noise(split.gold, splits.num_classes, 0.3, np.random.default_rng([99, offset]))
    splits.test.gold = None
    splits.real_noise = True
    return splits


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def test_auto_run_writes_one_row_per_example(tiny_bert, tmp_path, monkeypatch):
    monkeypatch.setitem(LOADERS, "noisy_demo", noisy_unlabelled_demo)
    cache = tmp_path / "cache"
    code = main(["--dataset", "noisy_demo", "--bert", tiny_bert, *FAST, "--noise_ratio", "auto",
                 "--cache_dir", str(cache)])
    assert code == 0
    (run_json,) = (cache / "runs").glob("*[0-9a-f].json")
    record = json.loads(run_json.read_text())
    splits = noisy_unlabelled_demo()
    n_fit = len(splits.train) + len(splits.validation)

    # auto: the estimate decides the marking and is stored.
    estimate = record["noise_ratio_estimate"]
    assert record["config"]["noise_ratio"] == "auto"
    assert 0 <= estimate < 1 and record["noise_ratio_used"] == estimate
    assert record["noise_ratio_estimates"][AUTO_ESTIMATOR] == estimate
    assert all(q["marked"] == int(estimate * n_fit) for q in record["marking"])

    columns, rows = read_csv(cache / "runs" / f"{record['run_id']}-labels.csv")
    assert columns == [*COLUMNS, "gold"]
    names = splits.class_names
    by_split = {s: [r for r in rows if r["split"] == s] for s in ("train", "validation", "test")}
    for name, split in splits.items():
        part = by_split[name]
        assert len(part) == len(split)
        assert [int(r["index"]) for r in part] == list(range(len(split)))
        assert [r["text"] for r in part] == split.texts
        assert all(r["cleaned_label"] in names and 0 < float(r["cleaned_prob"]) <= 1 for r in part)
        if name == "test":  # no labels: predictions only
            assert all(r["noisy_label"] == r["gold"] == r["noise_score"] == r["marked_noisy"] == "" for r in part)
            continue
        assert [r["noisy_label"] for r in part] == [names[y] for y in split.noisy]
        assert [r["gold"] for r in part] == [names[y] for y in split.gold]
        assert all(float(r["noise_score"]) >= 0 and r["marked_noisy"] in ("0", "1") for r in part)
    fit = by_split["train"] + by_split["validation"]
    marked = sum(r["marked_noisy"] == "1" for r in fit)
    assert int(estimate * n_fit) <= marked <= 2 * int(estimate * n_fit)  # marked by any of 2 models
    assert record["cleaning"]["changed"] == sum(r["noisy_label"] != r["cleaned_label"] for r in fit)
    # without trusted rows no change is suggested; given_label_prob is the cleaned posterior's
    assert all(r["suggested_label"] == r["noisy_label"] and r["label_issue"] == "0" for r in fit)
    assert record["suggestion"]["margin_source"] == "default" and record["suggestion"]["estimate"] is None
    assert record["cleaning"]["changed"] > 0 and all(
        float(r["given_label_prob"]) <= float(r["cleaned_prob"]) for r in fit)


@pytest.mark.parametrize("args", [
    ["--noise_type", "SN", "--noise_ratio", "auto"],  # synthetic noise needs a flip rate
    ["--noise_ratio", "auto"],  # the demo is clean, so SN is applied: same
    ["--noise_ratio", "half"],
])
def test_auto_without_real_noise_is_a_one_line_error(args, tmp_path, capsys):
    cache = tmp_path / "cache"
    assert main([*args, "--cache_dir", str(cache), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--noise_ratio" in err and "\n" not in err
    assert not cache.exists()


def test_labels_csv_without_gold_has_no_gold_column(tmp_path):
    probs = np.array([[0.2, 0.8], [0.6, 0.4]])
    rows = label_rows("train", ["a, with comma", 'b "quoted"'], ["neg", "pos"], probs,
                      noisy=np.array([0, 0]), noise_score=np.array([1.5, 0.25]),
                      marked=np.array([True, False]), suggested=np.array([0, 0]))
    write_labels_csv(tmp_path / "labels.csv", rows)
    columns, back = read_csv(tmp_path / "labels.csv")
    assert columns == COLUMNS
    assert back[0] == {"split": "train", "index": "0", "text": "a, with comma", "noisy_label": "neg",
                       "suggested_label": "neg", "label_issue": "0", "given_label_prob": "0.2000",
                       "cleaned_label": "pos", "cleaned_prob": "0.8000", "noise_score": "1.5000",
                       "marked_noisy": "1"}
    assert back[1]["text"] == 'b "quoted"' and back[1]["cleaned_label"] == "neg"


def test_make_noisy_csv_writes_the_pipelines_noise(tmp_path):
    """scripts/make_noisy_csv.py: the same noisy labels as --noise_type SN in the pipeline, gold beside."""
    import importlib.util

    from src.data import apply_noise, load_dataset

    file = Path(__file__).resolve().parents[1] / "scripts" / "make_noisy_csv.py"
    spec = importlib.util.spec_from_file_location("make_noisy_csv", file)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main(["--dataset", "demo", "--noise_type", "SN", "--noise_ratio", "0.4", "--seed", "3",
                 "--out", str(tmp_path)])
    splits = apply_noise(load_dataset("demo", None, 3), "SN", 0.4, 3)
    for name, split in splits.items():
        columns, rows = read_csv(tmp_path / script.FILES[name])
        assert columns == ["text", "label", "gold"]
        assert [r["text"] for r in rows] == split.texts
        assert [r["label"] for r in rows] == [splits.class_names[y] for y in split.noisy]
        assert [r["gold"] for r in rows] == [splits.class_names[y] for y in split.gold]
    wrong = np.mean([r["label"] != r["gold"] for r in read_csv(tmp_path / "train.csv")[1]])
    assert 0.25 < wrong < 0.5
