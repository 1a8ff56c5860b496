"""Inputs and faults that used to give wrong results with exit code 0, or a traceback: class
names that look like ids, odd label sets, a NaN loss, a full disk, Ctrl-C; and what the output
files look like to the user (permissions, spreadsheet formulas)."""

from __future__ import annotations

import csv
import errno
import os
import stat

import numpy as np
import pytest
import torch

from main import main
from src.data import load_dataset
from src.errors import UserError


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---- labels and classes.txt ---------------------------------------------------------------

def test_numeric_names_in_classes_file_are_names_not_positions(tmp_path):
    write(tmp_path / "train.csv", "text,label\n" + "".join(f"t{i},{i % 4}\n" for i in range(40)))
    write(tmp_path / "classes.txt", "3\n1\n2\n0\n")
    splits = load_dataset("csv", str(tmp_path), seed=0)
    assert splits.class_names == ["3", "1", "2", "0"]
    for split in (splits.train, splits.validation):
        for text, label in zip(split.texts, split.noisy):
            assert splits.class_names[label] == str(int(text[1:]) % 4), text


def test_classes_without_train_examples_and_names_equal_but_for_case_warn(tmp_path, capsys):
    write(tmp_path / "gaps" / "train.csv", "text,label\n" + "".join(f"t{i},{[0, 1, 3][i % 3]}\n" for i in range(30)))
    assert load_dataset("csv", str(tmp_path / "gaps"), seed=0).class_names == ["0", "1", "2", "3"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: ") and "no train example (2)" in err[0], err

    write(tmp_path / "case" / "train.csv",
          "text,label\n" + "".join(f"t{i},{['food', 'FOOD', 'sports'][i % 3]}\n" for i in range(30)))
    assert load_dataset("csv", str(tmp_path / "case"), seed=0).class_names == ["FOOD", "food", "sports"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'FOOD' and 'food' differ only in case" in err[0], err


def test_labels_are_compared_in_unicodes_composed_form(tmp_path):
    """`café` typed with a combining accent used to be a second class, silently."""
    labels = ["caf\u00e9", "cafe\u0301", "tea"]
    write(tmp_path / "train.csv", "text,label\n" + "".join(f"t{i},{labels[i % 3]}\n" for i in range(30)))
    splits = load_dataset("csv", str(tmp_path), seed=0)
    assert splits.class_names == ["caf\u00e9", "tea"]
    assert sorted(set(splits.train.noisy) | set(splits.validation.noisy)) == [0, 1]


def test_only_ascii_digits_are_class_ids(tmp_path):
    """`３` and `٣` were read as the id 3 (with classes 0, 1 and 2 made up)."""
    write(tmp_path / "train.csv", "text,label\n" + "".join(f"t{i},{['３', '٣'][i % 2]}\n" for i in range(30)))
    assert load_dataset("csv", str(tmp_path), seed=0).class_names == ["٣", "３"]


def test_a_class_that_the_hold_out_leaves_without_train_examples_warns(tmp_path, capsys):
    rows = [f"t{i},{'ab'[i % 2]}\n" for i in range(39)] + ["t39,rare\n"]
    write(tmp_path / "train.csv", "text,label\n" + "".join(rows))
    held_out = 0
    for seed in range(20):
        splits = load_dataset("csv", str(tmp_path), seed=seed)
        err = capsys.readouterr().err
        if 2 not in splits.train.noisy:  # the one `rare` row went to validation
            held_out += 1
            assert "1 of the 3 classes have no train example (rare)" in err, (seed, err)
        else:
            assert err == "", (seed, err)
    assert held_out > 0


def test_one_model_has_nothing_to_co_regularise(capsys):
    from src.config import parse_config

    parse_config(["--n_model", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: --n_model 1") and "nothing to co-regularise" in err[0]
    for quiet in (["--n_model", "1", "--no_coreg"], ["--method", "base"], ["--n_model", "2"]):
        parse_config(quiet)
        assert capsys.readouterr().err == "", quiet


# ---- whole runs: a NaN loss, a full disk, Ctrl-C ------------------------------------------

@pytest.fixture
def run_main(tmp_path, monkeypatch, capsys, tiny_bert):
    """run_main(*args) -> (exit code, stderr lines), in an empty folder, with fast settings."""
    monkeypatch.chdir(tmp_path)

    def go(*args: str):
        code = main(["--bert", tiny_bert, "--epochs", "1", "--total_iter", "1", "--no-progress", *args])
        return code, capsys.readouterr().err.strip().splitlines()

    return go


def no_result_written(tmp_path) -> bool:
    stage1 = tmp_path / "cache" / "stage1"
    return not (tmp_path / "cache" / "runs").exists() and not (stage1.exists() and any(stage1.iterdir()))


def test_nan_loss_in_stage_1_stops_the_run(run_main, tmp_path, monkeypatch):
    from src.stage1 import stage1_step

    real = stage1_step.coregularized_loss  # what every step runner's forward_backward computes
    monkeypatch.setattr(stage1_step, "coregularized_loss", lambda *a, **k: real(*a, **k) * float("nan"))
    code, err = run_main()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: stage 1 epoch 1/1: the training loss is nan"), err
    assert no_result_written(tmp_path)


def test_nan_loss_in_stage_2_stops_training():
    from src.stage2.train_stage2 import Stage2Settings, Trajectories, train_stage2

    embeddings = [np.random.default_rng(0).standard_normal((20, 2, 4)).astype(np.float16)]
    priors = [np.full((20, 3), np.nan, np.float32)]  # what a NaN stage 1 would hand on
    with pytest.raises(UserError, match="stage 2 epoch 1/2: the loss is nan"):
        train_stage2(Trajectories(embeddings, torch.device("cpu")), np.arange(20), np.zeros(20, np.int64), priors,
                     3, Stage2Settings(total_iter=2, batch_size=8, lr=1e-3), show_progress=False)


def test_full_disk_is_one_line_and_leaves_no_entry(run_main, tmp_path, monkeypatch):
    real_save = np.save

    def save(file, *args, **kwargs):
        if ".partial-" in str(file):  # the stage-1 entry being written
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return real_save(file, *args, **kwargs)

    monkeypatch.setattr(np, "save", save)
    code, err = run_main()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: ") and "probs.npy: No space left on device" in err[0], err
    assert no_result_written(tmp_path)


def test_ctrl_c_is_one_line_and_exit_code_130(run_main, monkeypatch):
    from src import pipeline

    def interrupted(config, world):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "run", interrupted)
    assert run_main() == (130, ["interrupted"])


# ---- output files ----------------------------------------------------------------------------

def test_output_files_get_the_users_permissions(tmp_path):
    from src.storage.files import atomic_write_bytes

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "result.json", b"{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "result.json").st_mode) == 0o644  # not mkstemp's 0600


def test_labels_csv_cells_are_never_spreadsheet_formulas(tmp_path):
    from src.outputs.labels_file import label_rows, write_labels_csv

    texts = ["=HYPERLINK(\"http://x\")", "+1", "-2 degrees", "@SUM(A1)", "'quoted", "plain = text"]
    probs = np.tile([[0.9, 0.1]], (len(texts), 1))
    rows = label_rows("train", texts, ["=cmd", "ok"], probs, np.zeros(len(texts), np.int64))
    write_labels_csv(tmp_path / "labels.csv", rows)
    with open(tmp_path / "labels.csv", newline="", encoding="utf-8") as f:
        read = list(csv.DictReader(f))
    assert [r["text"] for r in read] == ["'" + t for t in texts[:5]] + ["plain = text"]
    assert {r["noisy_label"] for r in read} == {r["cleaned_label"] for r in read} == {"'=cmd"}


# ---- a run that fails after stage 1 keeps none of its files ---------------------------------

def no_run_files(tmp_path) -> bool:
    """Nothing of a run in cache/ (but the reusable stage-1 entry), figure/ or model_save/."""
    cache, kept = tmp_path / "cache", []
    for folder in (cache / "runs", tmp_path / "figure", tmp_path / "model_save"):
        kept += list(folder.rglob("*")) if folder.exists() else []
    kept += list(cache.glob("*.logs")) + list(cache.glob("dygen_acc_*"))
    return not kept


def test_weights_that_diverge_in_the_last_step_stop_the_run(run_main, tmp_path, monkeypatch):
    """The loss of every step is finite, but the last update broke the weights: stage 1 used to
    store an entry whose probabilities are NaN, then fail to read it back (a traceback)."""
    from src.stage1 import train_stage1

    real = train_stage1.train_epoch

    def diverged(steps, *args, **kwargs):
        out = real(steps, *args, **kwargs)
        with torch.no_grad():
            for model in steps.models:
                for weight in model.parameters():
                    weight.fill_(float("inf"))
        return out

    monkeypatch.setattr(train_stage1, "train_epoch", diverged)
    code, err = run_main()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: stage 1 epoch 1/1: the models' class probabilities or embeddings are not "
                             "finite"), err
    assert no_result_written(tmp_path)


def test_a_run_record_that_cannot_be_written_leaves_none_of_the_runs_files(run_main, tmp_path, monkeypatch):
    real_replace = os.replace

    def replace(source, target, **kwargs):  # the disk fills up as the run record is put in place
        if str(target).endswith(".json") and os.path.basename(os.path.dirname(target)) == "runs":
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        return real_replace(source, target, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    code, err = run_main()
    assert code == 2 and len(err) == 1 and "No space left on device" in err[0], err
    assert no_run_files(tmp_path)


def test_models_that_cannot_be_saved_are_one_line_and_nothing_of_the_run_is_kept(run_main, tmp_path, monkeypatch):
    """safetensors raises its own error type on a full disk, not an OSError."""
    import transformers.modeling_utils
    from safetensors import SafetensorError

    def full_disk(tensors, filename, **kwargs):
        with open(filename, "wb") as f:
            f.write(b"half")
        raise SafetensorError("Error while serializing: No space left on device (os error 28)")

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", full_disk)
    code, err = run_main("--save_model")
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: --model_dir ") and "No space left on device" in err[0], err
    assert no_run_files(tmp_path)


def test_out_of_memory_in_stage_1_names_the_settings(run_main, tmp_path, monkeypatch):
    from src import pipeline

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(pipeline, "new_classifiers", out_of_memory)
    code, err = run_main("--n_model", "50")
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: stage 1 ran out of") and "--n_model 50" in err[0], err
    assert no_result_written(tmp_path)


# ---- the picture of the cleaning ----------------------------------------------------------

def cleaning_picture(path, class_names: list[str], rows: int = 200) -> None:
    from src.outputs.figures import plot_cleaning

    rng = np.random.default_rng(0)
    c = len(class_names)
    scores = rng.normal(size=(2, rows))
    marked = scores > 1
    plot_cleaning(path, scores, marked, rng.integers(0, c, rows), rng.integers(0, c, rows), class_names,
                  rng.integers(0, c, rows))


def test_class_names_with_dollar_signs_draw_as_text(tmp_path):
    """`$` used to start matplotlib's maths text: a ValueError after the labels CSV was written."""
    cleaning_picture(tmp_path / "dollars.png", ["under_$10", "$10_to_$20", "over $20", r"\frac{a}{b} $x^2$"])
    assert (tmp_path / "dollars.png").stat().st_size > 20_000


def test_label_matrices_show_only_the_most_frequent_classes(tmp_path, monkeypatch):
    """At thousands of classes a C x C image does not fit in memory; beyond 30 the matrices
    keep the 30 most frequent classes and say so."""
    import matplotlib.axes

    from src.outputs.figures import MAX_SHOWN_CLASSES, top_classes

    shown, real_imshow = [], matplotlib.axes.Axes.imshow
    monkeypatch.setattr(matplotlib.axes.Axes, "imshow",
                        lambda ax, image, **kw: shown.append(np.shape(image)) or real_imshow(ax, image, **kw))
    cleaning_picture(tmp_path / "many.png", [f"class {k}" for k in range(45)], rows=400)
    assert shown == [(MAX_SHOWN_CLASSES, MAX_SHOWN_CLASSES)] * 3
    rows, cols = np.array([5, 5, 5, 2, 2, 7]), np.array([5, 2, 9, 2, 2, 1])
    assert top_classes(rows, cols, 10, 2).tolist() == [2, 5] and top_classes(rows, cols, 10, 10).tolist() == list(
        range(10))
