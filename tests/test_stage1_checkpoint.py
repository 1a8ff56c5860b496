"""--stage1_checkpoints: a stage 1 stopped after an epoch and run again gives the uninterrupted result."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from src.data.texts import TokenizedTexts
from src.stage1.train_stage1 import Stage1Settings, train_stage1
from src.storage import stage1_cache
from src.storage.row_file import RowFile
from src.storage.stage1_cache import CHECKPOINT, Stage1Checkpoint, trajectory_path


class Stopped(Exception):
    """Stands for the end of a process (a kill, an interruption) right after a checkpoint."""


class StopAfter(Stage1Checkpoint):
    """A checkpoint that stops training once it has saved `epochs` epochs."""

    def __init__(self, directory, key, epochs: int | None) -> None:
        super().__init__(directory, key)
        self.stop_at = epochs

    def save(self, state: dict) -> None:
        super().save(state)
        if state["epochs_done"] == self.stop_at:
            raise Stopped


def tiny_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    n, width = 40, 12
    lengths = rng.integers(3, width + 1, size=n)
    ids = torch.as_tensor(rng.integers(5, 50, size=(n, width)))
    ids[torch.arange(width)[None, :] >= torch.as_tensor(lengths)[:, None]] = 0
    return TokenizedTexts(ids, lengths), rng.integers(0, 3, size=n)


def new_models():
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=3)  # with dropout
    models = []
    for m in range(2):
        torch.manual_seed(m)
        models.append(BertForSequenceClassification(config))
    return models


def fit(directory, checkpoint=None):
    texts, labels = tiny_data()
    torch.manual_seed(123)  # the dropout stream starts here, in every process alike
    return train_stage1(new_models(), texts, labels[:32], labels[24:32],
                        Stage1Settings(epochs=3, batch_size=8, eval_batch_size=64, lr=1e-3, seed=0),
                        show_progress=False, checkpoint=checkpoint,
                        new_trajectory=lambda m, shape: RowFile.create(trajectory_path(directory, m), shape))


def test_a_stage1_stopped_after_an_epoch_goes_on_to_the_uninterrupted_result(tmp_path):
    (tmp_path / "whole").mkdir()
    whole = fit(tmp_path / "whole")
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(Stopped):
        fit(staging, StopAfter(staging, "k", epochs=1))
    resumed = fit(staging, StopAfter(staging, "k", epochs=None))
    assert resumed.history[0]["seconds"] == pytest.approx(
        torch.load(staging / CHECKPOINT, weights_only=True)["history"][0]["seconds"])  # epoch 1 not rerun
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in whole.history]
    np.testing.assert_array_equal(resumed.probs, whole.probs)
    for ours, theirs in zip(resumed.embeddings, whole.embeddings, strict=True):
        np.testing.assert_array_equal(ours[:], theirs[:])  # every epoch's rows, the first epoch's too


def test_a_checkpoint_of_another_stage1_or_without_its_trajectories_is_not_used(tmp_path, capsys):
    staging = tmp_path / "s"
    staging.mkdir()
    with pytest.raises(Stopped):
        fit(staging, StopAfter(staging, "k", epochs=1))
    assert Stage1Checkpoint(staging, "other").load() is None
    assert "not this stage 1's checkpoint" in capsys.readouterr().err
    os.remove(trajectory_path(staging, 1))
    assert Stage1Checkpoint(staging, "k").load() is None
    assert "model 1's trajectory file is missing" in capsys.readouterr().err


def fake_result(directory):
    rows = RowFile.create(trajectory_path(directory, 0), (4, 2, 3))
    rows[:, 0] = np.ones((4, 3), np.float16)
    return stage1_cache.Stage1Result([rows], np.full((1, 4, 2), 0.5, np.float32), [{"epoch": 1}], 1.0)


def test_the_cache_keeps_a_stopped_runs_checkpoint_and_a_later_run_takes_it_over(tmp_path):
    key = stage1_cache.cache_key({"a": 1})
    seen = []

    def stopping(directory, checkpoint):
        checkpoint.save({"epochs_done": 1, "models": []})
        raise Stopped

    with pytest.raises(Stopped):
        stage1_cache.load_or_train(tmp_path, {"a": 1}, stopping, checkpoints=True)
    ours = tmp_path / f"{key}.partial-{os.getpid()}"
    assert (ours / CHECKPOINT).is_file()  # kept
    ended = tmp_path / f"{key}.partial-999999999"  # as if another process had stopped there
    ours.rename(ended)
    stage1_cache._remove_dead_staging(tmp_path)
    assert ended.is_dir()  # kept while its key has no entry

    def resuming(directory, checkpoint):
        seen.append(checkpoint.load()["epochs_done"])
        return fake_result(directory)

    _, info = stage1_cache.load_or_train(tmp_path, {"a": 1}, resuming, checkpoints=True)
    assert seen == [1] and not info["hit"] and not ended.exists()
    assert not list(tmp_path.glob("*.partial-*"))


def test_without_checkpoints_a_stopped_runs_directory_goes_and_an_ended_one_is_not_taken_over(tmp_path):
    key = stage1_cache.cache_key({"a": 1})
    ended = tmp_path / f"{key}.partial-999999999"
    ended.mkdir()
    Stage1Checkpoint(ended, key).save({"epochs_done": 1, "models": []})
    (tmp_path / key).mkdir()  # its key's entry exists: the checkpoint is of no use any more
    stage1_cache._remove_dead_staging(tmp_path)
    assert not ended.exists()

    def stopping(directory, checkpoint):
        assert checkpoint is None  # none handed out without checkpoints; a stray file still goes
        Stage1Checkpoint(directory, key).save({"epochs_done": 1, "models": []})
        raise Stopped

    with pytest.raises(Stopped):
        stage1_cache.load_or_train(tmp_path / "c", {"a": 1}, stopping, checkpoints=False)
    assert not list((tmp_path / "c").glob("*.partial-*"))


def test_a_run_stopped_after_an_epoch_and_run_again_gives_the_uninterrupted_run(tiny_bert, tmp_path, monkeypatch,
                                                                                capsys):
    from src.config import parse_config
    from src.pipeline import run

    args = ["--bert", tiny_bert, "--epochs", "3", "--total_iter", "2", "--train_batch_size", "16", "--no-progress"]
    whole = run(parse_config([*args, "--cache_dir", str(tmp_path / "a")]))
    save = Stage1Checkpoint.save

    def stop_after_the_second(self, state):
        save(self, state)
        if state["epochs_done"] == 2:
            raise Stopped

    monkeypatch.setattr(Stage1Checkpoint, "save", stop_after_the_second)
    resumed_args = [*args, "--cache_dir", str(tmp_path / "b"), "--stage1_checkpoints"]
    with pytest.raises(Stopped):
        run(parse_config(resumed_args))
    monkeypatch.setattr(Stage1Checkpoint, "save", save)
    capsys.readouterr()
    resumed = run(parse_config(resumed_args))
    assert "stage 1: continuing after epoch 2/3" in "".join(capsys.readouterr())
    assert [e["train_loss"] for e in resumed["stage1"]] == [e["train_loss"] for e in whole["stage1"]]
    assert resumed["accuracy_after"] == whole["accuracy_after"]
    assert resumed["stage1_cache"]["key"] == whole["stage1_cache"]["key"]  # the flag changes no result
    assert not list((tmp_path / "b" / "stage1").glob("*.partial-*"))
