"""Loaders on the shared copies and on small files written here, noise, --describe, the cache."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT, shared_data

from main import main
from src.data import apply_noise, describe, load_dataset
from src.data.agnews import first_per_class
from src.data.base import describe_splits
from src.data.cache import cache_file, cache_key, cached_encode
from src.data.texts import encode
from src.data.wrench import majority_vote
from src.errors import UserError


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def sizes(described: dict) -> tuple[int, int, int]:
    return tuple(described["splits"][s]["size"] for s in ("train", "validation", "test"))


# ---- the shared copies of the paper's data sets ------------------------------------------

@pytest.fixture(scope="module")
def news20():
    return load_dataset("20news", str(shared_data("20newsgroups")), seed=0)


def test_20news_sizes_and_default_noise(news20):
    out = describe_splits(apply_noise(copy.deepcopy(news20), None, 0.2, 0))
    assert out["num_classes"] == 20 and len(out["class_names"]) == 20
    assert sizes(out) == (9051, 2263, 7532)
    assert abs(out["splits"]["train"]["noise_rate"] - 0.2) < 0.03
    assert out["splits"]["test"]["noise_rate"] == 0.0  # test keeps gold labels
    assert sum(out["splits"]["test"]["class_counts"]) == 7532


@pytest.mark.parametrize("noise_type", ["SN", "ASN", "IDN"])
def test_synthetic_noise_rate_is_measured_on_train(news20, noise_type):
    out = describe_splits(apply_noise(copy.deepcopy(news20), noise_type, 0.4, 0))
    assert abs(out["splits"]["train"]["noise_rate"] - 0.4) < 0.03
    assert abs(out["splits"]["validation"]["noise_rate"] - 0.4) < 0.05


def test_semeval_sizes_and_real_noise():
    out = describe("semeval", str(shared_data("semeval")), None, 0.2, 0)
    assert out["num_classes"] == 9 and sizes(out) == (1749, 178, 600)
    train = out["splits"]["train"]
    assert train["dropped"] == 0 and sum(train["class_counts"]) == 1749
    assert 0 < train["noise_rate"] < 0.5  # majority vote of the labelling functions: really noisy


def test_trec_drops_uncovered_and_strips_the_test_label_word():
    path = shared_data("trec", "wrench")
    splits = load_dataset("trec", str(path.parent), seed=0)
    raw = {name: json.loads((path / f"{name}.json").read_text()) for name in ("train", "valid", "test")}
    uncovered = sum(all(v == -1 for v in r["weak_labels"]) for r in raw["train"].values())
    assert splits.num_classes == 6 and uncovered > 0
    assert splits.dropped["train"] == uncovered and len(splits.train) == len(raw["train"]) - uncovered
    assert len(splits.test) == 500 and splits.dropped["test"] == 0
    first = next(iter(raw["test"].values()))["data"]["text"]
    assert splits.test.texts[0] == first.split(" ", 1)[1]  # "dist How far ..." -> "How far ..."
    assert np.array_equal(splits.test.noisy, splits.test.gold)


def test_synthetic_noise_on_wrench_uses_gold_labels():
    path = str(shared_data("semeval"))
    real = load_dataset("semeval", path, seed=0)
    synthetic = apply_noise(load_dataset("semeval", path, seed=0), "ASN", 0.3, 0)
    assert synthetic.train.texts == real.train.texts
    flipped = synthetic.train.noisy != synthetic.train.gold
    assert np.array_equal(synthetic.train.noisy[flipped], (synthetic.train.gold[flipped] + 1) % 9)
    assert abs(flipped.mean() - 0.3) < 0.04


def test_chemprot_missing_train_is_named_and_its_real_files_load(tmp_path):
    source = shared_data("chemprot", "wrench")
    with pytest.raises(UserError, match=r"train\.json: file not found"):
        load_dataset("chemprot", str(source.parent), seed=0)
    # The real valid/test files stand in for train/valid/test.
    for name, origin in (("train", "valid"), ("valid", "test"), ("test", "test")):
        write(tmp_path / f"{name}.json", (source / f"{origin}.json").read_text())
    write(tmp_path / "label.json", (source / "label.json").read_text())
    splits = load_dataset("chemprot", str(tmp_path), seed=0)
    assert splits.num_classes == 10
    raw = json.loads((source / "valid.json").read_text())
    uncovered = sum(all(v == -1 for v in r["weak_labels"]) for r in raw.values())
    assert len(splits.train) + splits.dropped["train"] == 1607 and splits.dropped["train"] == uncovered
    assert splits.real_noise and (splits.train.noisy != splits.train.gold).any()


def test_majority_vote_ties_and_abstains():
    weak = np.array([[0, 0, 1], [-1, -1, -1], [2, 1, -1], [1, -1, 1]])
    votes = [majority_vote(weak, 3, np.random.default_rng(s)) for s in range(40)]
    assert all(v[0] == 0 and v[1] == -1 and v[3] == 1 for v in votes)
    assert {int(v[2]) for v in votes} == {1, 2}  # a tie goes either way with the seed


# ---- AG News: the subset script, and the loader ------------------------------------------

def test_agnews_subset_script_and_loader(tmp_path, capsys):
    shared_data("ag_news", "cosine_agnews")
    out = tmp_path / "ag"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "agnews_subset_to_csv.py"), str(out)],
                            check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    splits = load_dataset("agnews", str(out), seed=0)
    assert "full train.csv" in capsys.readouterr().err  # fewer than 10,000 per class: said so
    assert splits.class_names == ["World", "Sports", "Business", "Sci/Tech"]
    assert len(splits.train) + len(splits.validation) == 24000 and len(splits.validation) == 4800
    assert len(splits.test) == 7600 and np.bincount(splits.test.gold).tolist() == [1900] * 4
    source = shared_data("ag_news", "cosine_agnews")
    cosine = [r["label"] for f in ("dev_data.json", "test_data.json") for r in json.loads((source / f).read_text())]
    counts = np.bincount(np.concatenate([splits.train.gold, splits.validation.gold]), minlength=4)
    assert counts.tolist() == np.bincount(cosine).tolist()  # every row kept, with its class


def test_agnews_takes_the_first_rows_of_each_class_and_their_descriptions(tmp_path, monkeypatch, capsys):
    rows = [f'"{i % 3 + 1}","title {i}","description {i}"' for i in range(30)]
    write(tmp_path / "ag_news_csv" / "train.csv", "\n".join(rows) + "\n")
    write(tmp_path / "ag_news_csv" / "test.csv", '"1","a","b"\n"2","c","d"\n"3","e",""\n')
    write(tmp_path / "ag_news_csv" / "classes.txt", "A\nB\nC\n")
    monkeypatch.setattr("src.data.agnews.PER_CLASS", 4)
    splits = load_dataset("agnews", str(tmp_path), seed=3)
    kept = sorted(splits.train.texts + splits.validation.texts, key=lambda t: int(t.split()[1]))
    assert kept == [f"description {i}" for i in range(12)]  # rows 0..11: 4 of each class
    # the paper's text is the description; the title only stands in for an empty one (and is counted)
    assert splits.test.texts == ["b", "d", "e"]
    assert "1 rows have an empty description" in capsys.readouterr().err
    assert first_per_class(np.array([1, 0, 1, 1, 0]), 2, 2).tolist() == [0, 1, 2, 4]


# ---- WOS-46985 on a small file in its layout ---------------------------------------------

def test_wos_loader_splits_and_keeps_texts_with_their_labels(tmp_path):
    labels = [i % 5 for i in range(100)]
    write(tmp_path / "WOS46985" / "X.txt", "".join(f"abstract number {i} of class {y}\n" for i, y in enumerate(labels)))
    write(tmp_path / "WOS46985" / "Y.txt", "".join(f"{y}\n" for y in labels))
    splits = load_dataset("wos", str(tmp_path), seed=1)
    assert splits.num_classes == 5 and (len(splits.train), len(splits.validation), len(splits.test)) == (64, 16, 20)
    for split in (splits.train, splits.validation, splits.test):
        assert [int(t.split()[-1]) for t in split.texts] == split.gold.tolist()
    everything = splits.train.texts + splits.validation.texts + splits.test.texts
    assert sorted(everything) == sorted(f"abstract number {i} of class {y}" for i, y in enumerate(labels))
    # the paper's test split: the file's last 20%, whatever the seed; train/validation seeded
    assert splits.test.texts == [f"abstract number {i} of class {labels[i]}" for i in range(80, 100)]
    other = load_dataset("wos", str(tmp_path), seed=2)
    assert other.test.texts == splits.test.texts and other.train.texts != splits.train.texts


# ---- the user's own files -------------------------------------------------------------

def test_csv_string_labels_sorted_and_validation_held_out(tmp_path):
    rows = [f"text {i},{['spam', 'ham', 'eggs'][i % 3]},{['spam', 'ham', 'eggs'][(i * 7) % 3]}" for i in range(50)]
    write(tmp_path / "train.csv", "text,label,gold\n" + "\n".join(rows) + "\n")
    splits = load_dataset("csv", str(tmp_path), seed=0)
    assert splits.class_names == ["eggs", "ham", "spam"]
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (40, 10, 0)
    assert splits.test.gold is None and splits.real_noise
    names = dict(zip(splits.train.texts, splits.train.noisy))
    assert splits.class_names[names["text 1"]] == "ham"
    same = load_dataset("csv", str(tmp_path), seed=0)
    assert same.validation.texts == splits.validation.texts
    assert load_dataset("csv", str(tmp_path), seed=1).validation.texts != splits.validation.texts


def test_csv_jsonl_integer_labels_and_classes_file(tmp_path):
    write(tmp_path / "train.jsonl", "".join(json.dumps({"text": f"t{i}", "label": i % 2}) + "\n" for i in range(20)))
    write(tmp_path / "valid.csv", "label,text\n1,v one\n0,v zero\n")
    write(tmp_path / "test.csv", "text,gold\nx,1\ny,0\n")
    out = describe("csv", str(tmp_path), None, 0.2, 0)
    assert out["class_names"] == ["0", "1"] and sizes(out) == (20, 2, 2)
    assert out["splits"]["train"]["noise_rate"] is None  # no gold: unknown, not zero
    write(tmp_path / "classes.txt", "negative\npositive\n")
    out = describe("csv", str(tmp_path), None, 0.2, 0)
    assert out["class_names"] == ["negative", "positive"] and out["splits"]["test"]["class_counts"] == [1, 1]


def test_csv_synthetic_noise_needs_gold(tmp_path):
    write(tmp_path / "train.csv", "text,label\n" + "".join(f"t{i},{i % 2}\n" for i in range(20)))
    with pytest.raises(UserError, match="no gold labels"):
        describe("csv", str(tmp_path), "SN", 0.2, 0)
    write(tmp_path / "train.csv", "text,label,gold\n" + "".join(f"t{i},{i % 2},{i % 2}\n" for i in range(400)))
    assert describe("csv", str(tmp_path), None, 0.2, 0)["splits"]["train"]["noise_rate"] == 0.0
    assert abs(describe("csv", str(tmp_path), "ASN", 0.3, 0)["splits"]["train"]["noise_rate"] - 0.3) < 0.08


# ---- --describe from the command line --------------------------------------------------

def test_describe_prints_one_json_object_and_loads_no_model(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = shared_data("semeval")
    code = main(["--describe", "--dataset", "semeval", "--path", str(path), "--bert", str(tmp_path / "none")])
    assert code == 0  # a --bert that does not exist is never touched
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"dataset", "num_classes", "class_names", "splits"}
    assert set(out["splits"]["train"]) == {"size", "class_counts", "noise_rate", "dropped", "trusted"}
    assert list(tmp_path.iterdir()) == []  # nothing written


# ---- the preprocessing cache ------------------------------------------------------------

class CountingEncode:
    def __init__(self):
        self.calls = 0

    def __call__(self, tokenizer, texts, max_length):
        self.calls += 1
        return encode(tokenizer, texts, max_length)


def same(a, b) -> bool:
    return torch.equal(a.input_ids, b.input_ids) and np.array_equal(a.lengths, b.lengths)


@pytest.fixture
def tokenizer(tiny_bert):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bert)


def test_cache_reuses_matching_entries_only(tokenizer, tmp_path):
    splits = apply_noise(load_dataset("demo", None, 0), "SN", 0.2, 0)
    encode, cache = CountingEncode(), tmp_path / "cache"
    kwargs = {"cache_dir": cache, "noise_type": "SN", "noise_ratio": 0.2, "seed": 0}
    first = cached_encode(encode, tokenizer, splits, 8, reuse=True, **kwargs)  # none yet: built
    again = cached_encode(encode, tokenizer, splits, 8, reuse=True, **kwargs)
    assert encode.calls == 1 and same(again, first) and len(first) == 1000
    assert first.lengths.max() == 8  # truncated to the maximum length
    cached_encode(encode, tokenizer, splits, 8, reuse=False, **kwargs)  # --saved_dataset n
    assert encode.calls == 2
    for change in ({"noise_ratio": 0.3}, {"seed": 1}, {"noise_type": "ASN"}):
        cached_encode(encode, tokenizer, splits, 8, reuse=True, **{**kwargs, **change})
    cached_encode(encode, tokenizer, splits, 6, reuse=True, **kwargs)
    assert encode.calls == 6 and len(list((cache / "data").glob("*.npz"))) == 5


def test_damaged_or_stale_cache_is_rebuilt_with_a_warning(tokenizer, tmp_path, capsys):
    splits = load_dataset("demo", None, 0)
    encode = CountingEncode()
    kwargs = {"cache_dir": tmp_path, "noise_type": None, "noise_ratio": 0.2, "seed": 0, "reuse": True}
    good = cached_encode(encode, tokenizer, splits, 16, **kwargs)
    file = cache_file(tmp_path, cache_key(splits, tokenizer, 16, None, 0.2, 0))
    file.write_bytes(file.read_bytes()[:200])  # truncated
    assert same(cached_encode(encode, tokenizer, splits, 16, **kwargs), good)
    assert encode.calls == 2 and "damaged" in capsys.readouterr().err
    assert same(cached_encode(encode, tokenizer, splits, 16, **kwargs), good) and encode.calls == 2  # healed
    splits.test.texts[0] = "a different text"  # same key, other texts: never trusted
    changed = cached_encode(encode, tokenizer, splits, 16, **kwargs)
    assert encode.calls == 3 and not same(changed, good) and "rebuilding" in capsys.readouterr().err


# ---- end to end: the user's files without test or gold -----------------------------------

FAST = ["--epochs", "1", "--total_iter", "1", "--train_batch_size", "16", "--n_model", "2", "--no-progress"]


def demo_rows(split, count, gold=True):
    from src.data.demo import TOPICS

    names = list(TOPICS)
    data = load_dataset("demo", None, 0)
    part = getattr(data, split)
    header = "text,label,gold" if gold else "text,label"
    rows = [f"{t},{names[y]},{names[y]}" if gold else f"{t},{names[(y + i) % 4] if i % 5 == 0 else names[y]}"
            for i, (t, y) in enumerate(zip(part.texts[:count], part.gold[:count]))]
    return header + "\n" + "\n".join(rows) + "\n"


def test_csv_run_without_test_or_gold_completes(tiny_bert, tmp_path):
    from src.config import parse_config
    from src.pipeline import run

    write(tmp_path / "data" / "train.csv", demo_rows("train", 120, gold=False))
    record = run(parse_config(["--dataset", "csv", "--path", str(tmp_path / "data"), "--bert", tiny_bert,
                               *FAST, "--cache_dir", str(tmp_path / "cache"), "--saved_dataset", "y"]))
    assert record["data"]["test"] == 0 and record["data"]["validation"] == 24
    assert record["accuracy_before"] is None and record["accuracy_after"] is None
    assert record["data"]["train_noise_rate"] is None and record["marking"] == [None, None]
    assert record["data"]["class_names"] == ["food", "sports", "technology", "weather"]
    assert len(list((tmp_path / "cache" / "data").glob("csv-*.npz"))) == 1  # the preprocessing cache


def test_csv_run_with_unlabelled_and_with_gold_test(tiny_bert, tmp_path):
    from src.config import parse_config
    from src.pipeline import run

    data = tmp_path / "data"
    write(data / "train.csv", demo_rows("train", 100))
    write(data / "valid.csv", demo_rows("validation", 30))
    write(data / "test.csv", "text\n" + "\n".join(load_dataset("demo", None, 0).test.texts[:20]) + "\n")
    args = ["--dataset", "csv", "--path", str(data), "--bert", tiny_bert, *FAST, "--cache_dir", str(tmp_path / "c")]
    record = run(parse_config(args))
    assert record["data"]["test"] == 20 and record["accuracy_after"] is None
    write(data / "test.csv", demo_rows("test", 20))
    record = run(parse_config(args))
    # the gold test labels are read: an accuracy over the 20 test rows, and marking diagnostics
    assert record["accuracy_after"] == record["stage2"][-1]["test_accuracy"]
    assert record["accuracy_after"] * 20 == pytest.approx(round(record["accuracy_after"] * 20))
    assert record["marking"][0]["marked"] == int(0.2 * 130)


def test_encode_in_chunks_with_cut_texts_equals_tokenising_whole_texts(tokenizer):
    """Cutting long texts before tokenising, and tokenising in chunks, changes no id."""
    words = ["what", "is", "the", "how", "who"]
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, size=n)) for n in (1, 3, 7, 30, 200)]
    texts += ["what" + " " * 500 + "is the", "who " * 3 + "x" * 300]  # a cut prefix that is short of tokens
    whole = tokenizer(texts, truncation=True, max_length=12, padding="max_length", return_tensors="np")
    for chunk_size in (1, 3, 100):
        encoded = encode(tokenizer, texts, 12, chars_per_token=2, chunk_size=chunk_size)
        lengths = whole["attention_mask"].sum(1)
        np.testing.assert_array_equal(encoded.lengths, lengths)
        np.testing.assert_array_equal(encoded.input_ids.numpy(), whole["input_ids"][:, : lengths.max()])
