"""A trusted sample (rows someone verified): read from a column or from validation's gold labels,
counted, the noise-rate estimate with its interval, never marked, in the kNN prior with the
verified label, reported on, and never on test. Also the frozen-embedding estimator and the
picture of the cleaning."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from main import main
from src.data import load_dataset
from src.dynamics.marking import mark_noisy
from src.noise_rate import frozen_noise_rates, frozen_oof_proba
from src.stats import trusted_noise_rate, wilson_interval

FAST = ["--epochs", "2", "--total_iter", "2", "--train_batch_size", "16", "--no-progress"]
FLAGS = ["--text_column", "message", "--label_column", "llm_label", "--gold_column", "true_label",
         "--trusted_column", "checked", "--abstain_label", "-1"]


def write_file(path: Path, n: int, flip_every: int = 4, abstain_every: int = 20, checked: int = 30,
               offset: int = 0) -> dict:
    """n demo texts under other column names: every `flip_every`-th label wrong, every
    `abstain_every`-th an abstention (-1), the first `checked` rows verified. Returns the counts."""
    from src.data.demo import TOPICS

    names, data = list(TOPICS), load_dataset("demo", None, 0).train
    path.parent.mkdir(parents=True, exist_ok=True)
    counts = {"abstained": 0, "trusted": 0, "trusted_wrong": 0}
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "message", "llm_label", "true_label", "checked"])
        for i in range(n):
            text, y = data.texts[offset + i], int(data.gold[offset + i])
            wrong = i % flip_every == 1
            label = names[(y + 1) % len(names)] if wrong else names[y]
            abstained = i % abstain_every == 0
            counts["abstained"] += abstained
            verified = names[y] if i < checked else ""
            if verified and not abstained:
                counts["trusted"] += 1
                counts["trusted_wrong"] += wrong
            out.writerow([i, text, "-1" if abstained else label, names[y], verified])
    return counts


def describe(tmp_path, capsys, *extra: str) -> dict:
    assert main(["--dataset", "csv", "--path", str(tmp_path / "d"), *FLAGS, *extra, "--describe"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_seeded_share_of_the_checked_rows_calibrates_and_the_others_train_stage_1_verified():
    from src.stage1.trusted import calibration_rows, stage1_labels

    trusted = np.array([-1, 2, 0, -1, 1, 1, 0, 2, -1, 0])  # rows 0-5 train, 6-9 validation
    given = np.array([0, 1, 0, 2, 1, 0, 2, 2, 1, 0])
    kept = calibration_rows(trusted, 0.5, seed=0)
    assert kept.sum() == 4 and not kept[trusted < 0].any()  # round(0.5 * 7) of the checked rows
    assert (kept == calibration_rows(trusted, 0.5, seed=0)).all()
    assert any((kept != calibration_rows(trusted, 0.5, seed=s)).any() for s in range(1, 5))
    assert not calibration_rows(trusted, 0, 0).any() and (calibration_rows(trusted, 1, 0) == (trusted >= 0)).all()
    labels = stage1_labels(given, trusted, kept, n_train=6)
    for row in range(10):
        if trusted[row] >= 0 and not kept[row]:  # checked, not calibrating: its verified label
            assert labels[row] == trusted[row]
        elif row < 6:  # train: its given label, as a row nobody checked
            assert labels[row] == given[row]
        else:  # validation: not trained on, as the paper's
            assert labels[row] == -1


def test_describe_counts_trusted_rows_and_estimates_the_noise(tmp_path, capsys):
    train = write_file(tmp_path / "d" / "train.csv", 200, checked=60)  # 5% abstentions
    valid = write_file(tmp_path / "d" / "valid.csv", 40, checked=10, offset=200)
    out = describe(tmp_path, capsys)
    splits = out["splits"]
    assert {k: v["dropped"] for k, v in splits.items()} == {"train": 10, "validation": 2, "test": 0}
    assert {k: v["trusted"] for k, v in splits.items()} == {"train": train["trusted"], "validation": valid["trusted"],
                                                             "test": 0}
    assert train["trusted"] == 57  # 60 checked, 3 of them abstained (their verified label unused)
    estimate = out["trusted_noise_estimate"]
    wrong = train["trusted_wrong"] + valid["trusted_wrong"]
    assert estimate["rows"] == train["trusted"] + valid["trusted"] and estimate["wrong"] == wrong
    assert estimate["rate"] == pytest.approx(wrong / estimate["rows"])
    low, high = estimate["interval"]
    assert low < estimate["rate"] < high


def test_trusted_validation_trusts_validation_gold(tmp_path, capsys):
    write_file(tmp_path / "d" / "train.csv", 100, checked=0)
    write_file(tmp_path / "d" / "valid.csv", 40, checked=0, abstain_every=1000)  # row 0 abstains
    out = describe(tmp_path, capsys, "--trusted", "validation")
    assert out["splits"]["validation"]["trusted"] == 39 and out["splits"]["train"]["trusted"] == 0
    # validation labels: every 4th wrong (i % 4 == 1) -> 10 of 39
    assert out["trusted_noise_estimate"]["wrong"] == 10


def fails(args: list[str], capsys, *expected: str) -> None:
    assert main(args) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("warning: ")]
    assert len(err) == 1 and err[0].startswith("error: "), err
    for text in expected:
        assert text in err[0], err[0]


def test_bad_trusted_inputs_are_one_error_line_and_write_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_file(tmp_path / "d" / "train.csv", 60)
    base = ["--dataset", "csv", "--path", str(tmp_path / "d"), *FLAGS[:8], "--abstain_label", "-1",
            "--bert", "minilm", "--cache_dir", str(tmp_path / "cache"), "--figure_dir", str(tmp_path / "fig")]
    fails([*base, "--trusted_column", "checkd"], capsys, "no column 'checkd'", "message, llm_label")
    fails([*base, "--trusted", "test"], capsys, "test split can never be trusted")
    fails([*base, "--trusted", "train"], capsys, "only `validation`")
    # a verified label that is not a class
    rows = (tmp_path / "d" / "train.csv").read_text().splitlines()
    rows[2] = rows[2].rsplit(",", 1)[0] + ",no_such_class"  # row 1 (row 0 is an abstention)
    (tmp_path / "d" / "train.csv").write_text("\n".join(rows) + "\n")
    fails([*base, "--trusted_column", "checked"], capsys, "trusted 'no_such_class' is not a class")
    write_file(tmp_path / "d" / "train.csv", 60)
    # a verified label on a test row
    write_file(tmp_path / "d" / "test.csv", 20, checked=3, offset=60)
    fails([*base, "--trusted_column", "checked"], capsys, "test split", "never be trusted")
    (tmp_path / "d" / "test.csv").unlink()
    # --trusted validation where validation has no gold labels
    with open(tmp_path / "d2.csv", "w") as f:
        f.write("message,llm_label\n" + "".join(f"text {i},{'ab'[i % 2]}\n" for i in range(30)))
    (tmp_path / "d2").mkdir()
    (tmp_path / "d2.csv").rename(tmp_path / "d2" / "train.csv")
    fails(["--dataset", "csv", "--path", str(tmp_path / "d2"), "--text_column", "message", "--label_column",
           "llm_label", "--trusted", "validation", "--bert", "minilm", "--cache_dir", str(tmp_path / "cache")],
          capsys, "--trusted validation", "no gold labels")
    fails(["--trusted_column", "checked"], capsys, "--trusted_column", "not of --dataset demo")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "fig").exists()


def test_wilson_interval_matches_hand_computed_values():
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
    assert wilson_interval(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-5)
    assert wilson_interval(232, 500) == pytest.approx((0.42073, 0.50782), abs=1e-5)
    assert trusted_noise_rate(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 0]))["rate"] == 0.5
    assert trusted_noise_rate(np.zeros(0, int), np.zeros(0, int))["rate"] is None


def test_trusted_rows_are_never_marked_and_the_share_is_of_the_others():
    scores = np.array([9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    eligible = np.ones(10, dtype=bool)
    eligible[[0, 2]] = False  # the two highest-scoring rows are trusted
    marked = mark_noisy(scores, 0.25, eligible=eligible)  # floor(0.25 * 8) = 2 of the 8 others
    assert marked.tolist() == [False, True, False, True] + [False] * 6
    assert mark_noisy(scores, 0.25).tolist() == [True, True] + [False] * 8  # unchanged without trust


def test_frozen_estimator_is_out_of_fold_and_reads_planted_noise():
    rng = np.random.default_rng(0)
    # pure noise features: in-sample a logistic regression would fit many labels; out of fold it
    # cannot do better than chance, so the disagreement is near 1 - 1/C
    labels = rng.integers(0, 4, 400)
    proba = frozen_oof_proba(rng.normal(size=(400, 50)), labels, 4)
    assert proba.shape == (400, 4) and np.allclose(proba.sum(1), 1)
    assert (proba.argmax(1) != labels).mean() > 0.6
    # separable classes with 30% of the labels resampled: about 22.5% wrong
    gold = rng.integers(0, 4, 800)
    features = rng.normal(size=(800, 8)) + 4 * np.eye(8)[gold]
    noisy = gold.copy()
    flip = rng.random(800) < 0.3
    noisy[flip] = rng.integers(0, 4, flip.sum())
    truth = (noisy != gold).mean()
    for value in frozen_noise_rates(features, noisy, 4).values():
        assert abs(value - truth) < 0.05


def test_frozen_estimator_handles_a_class_too_small_to_stratify():
    labels = np.array([0] * 30 + [1] * 30 + [2] * 2)
    features = np.random.default_rng(0).normal(size=(62, 4)) + 4 * np.eye(4)[labels]  # separable classes
    proba = frozen_oof_proba(features, labels, 3)  # unstratified folds: class 2 has 2 rows for 5 folds
    assert proba.shape == (62, 3) and np.allclose(proba.sum(1), 1)
    assert (proba[:60].argmax(1) == labels[:60]).mean() > 0.9  # still a working out-of-fold classifier


def test_cleaning_figure_with_and_without_gold_and_many_classes(tmp_path):
    from src.outputs.figures import plot_cleaning

    rng = np.random.default_rng(0)
    for classes, gold in ((4, True), (40, False)):
        given, cleaned = rng.integers(0, classes, 300), rng.integers(0, classes, 300)
        scores = rng.normal(size=(2, 300))
        marked = np.stack([mark_noisy(s, 0.2) for s in scores])
        path = tmp_path / f"c{classes}.png"
        plot_cleaning(path, scores, marked, given, cleaned, [f"class {k}" for k in range(classes)],
                      rng.integers(0, classes, 300) if gold else None)
        assert path.stat().st_size > 20_000
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def read_labels(cache: Path) -> list[dict]:
    with open(next((cache / "runs").glob("*-labels.csv")), newline="") as f:
        return list(csv.DictReader(f))


def test_trusted_sample_decides_the_estimate_the_marking_and_the_prior(tiny_bert, tmp_path, monkeypatch, capsys):
    import src.pipeline as pipeline

    write_file(tmp_path / "d" / "train.csv", 160, checked=40)
    write_file(tmp_path / "d" / "valid.csv", 40, checked=0, offset=160)
    votes, taught = [], []  # the labels each kNN prior votes with; those stage 1 trains with
    original, original_stage1 = pipeline.knn_predict_proba, pipeline.train_stage1
    monkeypatch.setattr(pipeline, "train_stage1", lambda models, texts, labels, *a, **k:
                        taught.append(np.array(labels)) or original_stage1(models, texts, labels, *a, **k))
    monkeypatch.setattr(pipeline, "knn_predict_proba",
                        lambda embedded, labels, *a, **k: votes.append(np.array(labels)) or original(
                            embedded, labels, *a, **k))
    cache = tmp_path / "cache"
    args = ["--dataset", "csv", "--path", str(tmp_path / "d"), *FLAGS, "--noise_ratio", "auto",
            "--bert", tiny_bert, *FAST, "--cache_dir", str(cache), "--figure_dir", str(tmp_path / "fig")]
    assert main(args) == 0
    log = capsys.readouterr().out.strip().splitlines()
    (record_file,) = (cache / "runs").glob("*[0-9a-f].json")
    record = json.loads(record_file.read_text())
    trusted = record["trusted"]
    assert record["noise_ratio_source"] == "trusted" and trusted["source"] == "column checked"
    assert record["noise_ratio_used"] == pytest.approx(trusted["wrong"] / trusted["rows"])
    assert {"frozen_lr", "frozen_cj", "knn_last"} <= set(record["noise_ratio_estimates"])
    rows = read_labels(cache)
    labelled = [r for r in rows if r["noisy_label"]]
    checked = [r for r in labelled if r["trusted_label"]]
    assert len(checked) == trusted["rows"] == 38  # 40 checked, 2 of them abstained
    assert all(r["marked_noisy"] == "0" for r in checked)  # never marked
    marked = sum(r["marked_noisy"] == "1" for r in labelled)
    untrusted = len(labelled) - len(checked)
    assert 0 < marked and all(q["marked"] <= int(trusted["rate"] * untrusted) for q in record["marking"])
    # the prior votes with the verified label on trusted rows and the given one elsewhere
    names = record["data"]["class_names"]
    expected = [names.index(r["trusted_label"] or r["noisy_label"]) for r in labelled]
    assert len(votes) == 2 + 5 * 2 and all(v.tolist() == expected for v in votes[:2])
    # half the trusted rows (seeded) calibrate the suggestion; the others train stage 1 verified
    given = np.array([names.index(r["noisy_label"]) for r in labelled])
    verified = np.array([names.index(r["trusted_label"]) if r["trusted_label"] else -1 for r in labelled])
    is_checked = verified >= 0
    from src.stage1.trusted import calibration_rows

    kept = calibration_rows(verified, 0.5, seed=0)
    assert trusted["calibration_rows"] == kept.sum() == 19 and trusted["stage1_rows"] == 19
    (labels1,) = taught  # validation rows (none checked) are not trained on
    in_train = np.arange(len(labelled)) < record["data"]["train"]
    assert (labels1 == np.where(is_checked & ~kept, verified, np.where(in_train, given, -1))).all()
    assert (verified != given)[is_checked & ~kept].any()  # some wrong given labels were taught verified
    # the suggestion's cross-fitting: 5 more fits, in each of which one fold of the calibration rows
    # votes with its given label; every calibration row does so in exactly one fold, per model
    unverified = np.stack([v != np.array(expected) for v in votes[2:]])  # [10, N] voting with a given label
    assert not unverified[:, ~kept].any()
    as_given = np.stack([v == given for v in votes[2:]])[:, kept]
    assert (as_given.sum(0) >= 2).all() and unverified.sum() > 0  # 2 models; some given labels are wrong
    suggestion = record["suggestion"]
    assert suggestion["margin_source"] == "trusted" and suggestion["estimate"]["given_right"]["of"] == 19
    assert all(r["suggested_label"] == r["trusted_label"] and r["label_issue"] == str(int(r["trusted_label"] !=
               r["noisy_label"])) for r in checked)
    assert suggestion["changes"] == sum(r["label_issue"] == "1" for r in labelled)
    assert trusted["given_agrees"] == pytest.approx(np.mean([r["noisy_label"] == r["trusted_label"] for r in checked]))
    assert trusted["cleaned_agrees"] == pytest.approx(np.mean([r["cleaned_label"] == r["trusted_label"]
                                                               for r in checked]))
    # the last two log lines name the labels file and the picture, which exists
    assert log[-2].startswith("cleaned labels:") and log[-2].endswith("-labels.csv")
    assert log[-1] == f"picture of the cleaning: {record['figure']}"
    assert Path(record["figure"]).parent == tmp_path / "fig" and Path(record["figure"]).stat().st_size > 20_000


def test_worked_example_file_describes_as_the_docs_say(tmp_path, capsys):
    """docs/own-data.md's worked example: the file make_noisy_csv.py writes, and --describe on it."""
    import importlib.util

    file = Path(__file__).resolve().parents[1] / "scripts" / "make_noisy_csv.py"
    spec = importlib.util.spec_from_file_location("make_noisy_csv", file)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main(["--dataset", "demo", "--noise_type", "SN", "--noise_ratio", "0.3", "--out", str(tmp_path / "d"),
                 "--text_column", "message", "--label_column", "llm_label", "--gold_column", "true_label",
                 "--abstain_share", "0.05", "--abstain_label", "-1", "--trusted_rows", "100",
                 "--trusted_column", "checked"])
    capsys.readouterr()
    header = (tmp_path / "d" / "train.csv").read_text().splitlines()[0]
    assert header == "message,llm_label,true_label,checked"
    out = describe(tmp_path, capsys)
    splits = out["splits"]
    assert [splits[k]["size"] for k in ("train", "validation", "test")] == [460, 114, 400]
    assert [splits[k]["dropped"] for k in ("train", "validation")] == [20, 6]
    assert [splits[k]["trusted"] for k in ("train", "validation", "test")] == [100, 0, 0]
    estimate = out["trusted_noise_estimate"]
    assert (estimate["rows"], estimate["wrong"]) == (100, 29)
    assert estimate["interval"] == pytest.approx([0.210, 0.385], abs=1e-3)


def test_per_label_marking_shares_come_from_the_trusted_rows_given():
    """The cross-fitting hands mark_and_prior the trusted labels without a fold's rows: the shares
    are then computed without them; with no trusted row at all, from stage 1's confident joint."""
    from types import SimpleNamespace

    from src.noise_rate import confident_class_shares, trusted_class_shares
    from src.pipeline import Evidence, Rows, marking_shares

    given = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    trusted = np.array([1, 1, 0, -1, 1, -1, -1, -1])  # label 0: 2 of 3 checked wrong; label 1: 0 of 1
    probs = np.array([[[0.9, 0.1]] * 2 + [[0.2, 0.8]] * 6])  # [M=1, N, C]
    evidence = Evidence(SimpleNamespace(probs=probs), None, None, 0.25, given, given, Rows(6, 2, 0), 2,
                        per_class_marking=True)
    np.testing.assert_allclose(marking_shares(evidence, trusted), trusted_class_shares(
        given[trusted >= 0], trusted[trusted >= 0], 2, 0.25))
    fold_out = trusted.copy()
    fold_out[[0, 1]] = -1  # the fold with the two wrong labels counted as unchecked
    assert marking_shares(evidence, fold_out)[0] < marking_shares(evidence, trusted)[0]
    np.testing.assert_allclose(marking_shares(evidence, np.full(8, -1)),
                               confident_class_shares(probs[0], given, 2, 0.25))
    assert marking_shares(dataclasses.replace(evidence, per_class_marking=False), trusted) is None


def test_the_validation_accuracy_is_the_prediction_on_the_calibration_rows(tiny_bert, tmp_path, monkeypatch):
    """--method base has no stage 2: its cross-fitted prediction on the calibration rows is its
    stage-1 prediction there, the labels file's cleaned_label. And where, cross-fitted, the
    changes do not beat the given labels, only the checked rows' labels change."""
    import src.pipeline as pipeline
    from src.stage1.trusted import calibration_rows

    monkeypatch.setattr(pipeline, "changes_help", lambda quality: False)

    write_file(tmp_path / "d" / "train.csv", 160, checked=40)
    cache = tmp_path / "cache"
    assert main(["--dataset", "csv", "--path", str(tmp_path / "d"), *FLAGS, "--noise_ratio", "auto",
                 "--method", "base", "--bert", tiny_bert, *FAST, "--cache_dir", str(cache),
                 "--figure_dir", str(tmp_path / "fig")]) == 0
    (record_file,) = (cache / "runs").glob("*[0-9a-f].json")
    estimate = json.loads(record_file.read_text())["suggestion"]["estimate"]
    labelled = [r for r in read_labels(cache) if r["noisy_label"]]
    verified = np.array([int(bool(r["trusted_label"])) * 2 - 1 for r in labelled])  # -1: nobody checked
    kept = calibration_rows(verified, 0.5, seed=0)
    right = sum(r["cleaned_label"] == r["trusted_label"] for r, k in zip(labelled, kept, strict=True) if k)
    assert estimate["prediction_right"]["of"] == kept.sum() == 19
    assert estimate["prediction_right"]["count"] == right
    record = json.loads(record_file.read_text())["suggestion"]
    assert record["margin"] == 1.0 and record["changes_help"] is False
    assert all(r["label_issue"] == "0" or r["trusted_label"] for r in labelled)
    assert record["changes"] == record["changes_checked"] > 0
