"""The schedules as the loops apply them, the pipeline's wiring between stages, the
co-regularisation directions pinned to hand-computed values, and test data kept out of training."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from src import pipeline
from src.accel import SpeedLayer
from src.config import parse_config
from src.data.batches import shuffled_batches
from src.dynamics.euclidean_dist import distance_trajectories, dynamics_score
from src.dynamics.marking import cross_entropy_scores, mark_noisy
from src.prior.generate_prior import npc_anchors
from src.stage1 import train_stage1 as stage1_module
from src.stage1.stage1_step import coregularized_loss
from src.stage2 import train_stage2 as stage2_module
from src.stage2.network import coregularization
from src.storage.rows import column

FAST = ["--epochs", "2", "--total_iter", "2", "--train_batch_size", "16", "--no-progress"]


# ---- co-regularisation: which KL, pinned to numbers worked out by hand ----------------------

def test_stage1_coregularization_is_kl_of_the_mean_to_each_model():
    # p1 = (1/2, 1/2), p2 = (3/4, 1/4), p_mean = (5/8, 3/8), label 0, alpha 2
    logits = torch.tensor([[[0.0, 0.0]], [[math.log(3.0), 0.0]]])  # [M=2, B=1, C=2]
    ce = (-math.log(0.5) - math.log(0.75)) / 2
    kl_mean_to_p1 = 0.625 * math.log(0.625 / 0.5) + 0.375 * math.log(0.375 / 0.5)  # KL(p_mean || p1)
    kl_mean_to_p2 = 0.625 * math.log(0.625 / 0.75) + 0.375 * math.log(0.375 / 0.25)
    expected = ce + 2.0 * (kl_mean_to_p1 + kl_mean_to_p2) / 2  # 0.560097...
    reverse = ce + 2.0 * (0.5 * math.log(0.5 / 0.625) + 0.5 * math.log(0.5 / 0.375)
                          + 0.75 * math.log(0.75 / 0.625) + 0.25 * math.log(0.25 / 0.375)) / 2
    got = coregularized_loss(logits, torch.tensor([0]), alpha=2.0).item()
    assert got == pytest.approx(expected, abs=1e-6) and got == pytest.approx(0.560097, abs=1e-6)
    assert abs(got - reverse) > 1e-3  # KL(p_m || p_mean) would give 0.558059


def test_stage2_coregularization_is_kl_of_the_mean_to_each_model():
    # alpha (2, 3) and (3, 2): abar = (1/3, 2/3) and (2/3, 1/3), mean (1/2, 1/2)
    alphas = torch.tensor([[[2.0, 3.0]], [[3.0, 2.0]]], dtype=torch.float64)
    expected = 2 * (0.5 * math.log(0.5 / (1 / 3)) + 0.5 * math.log(0.5 / (2 / 3)))  # 0.117783
    reverse = 2 * ((1 / 3) * math.log((1 / 3) / 0.5) + (2 / 3) * math.log((2 / 3) / 0.5))  # 0.113266
    got = coregularization(alphas).item()
    assert got == pytest.approx(expected, abs=1e-9) and got == pytest.approx(0.117783, abs=1e-6)
    assert abs(got - reverse) > 1e-3


# ---- schedules, as the loops apply them ----------------------------------------------------

def _tiny_stage1_inputs():
    from transformers import BertConfig, BertForSequenceClassification

    from src.data.texts import TokenizedTexts

    config = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16, num_labels=3)
    rng = np.random.default_rng(0)
    ids = torch.as_tensor(rng.integers(5, 30, size=(12, 6)))
    texts = TokenizedTexts(ids, np.full(12, 6))
    labels = rng.integers(0, 3, 12)
    models = [BertForSequenceClassification(config) for _ in range(2)]
    return models, texts, labels


def test_stage1_trains_on_the_rows_given_a_label_in_the_papers_order_without_checked_rows(monkeypatch):
    from src.data.batches import shuffled_batches

    seen, original = [], stage1_module.train_epoch
    monkeypatch.setattr(stage1_module, "train_epoch", lambda steps, batches, *a, **k:
                        original(steps, seen.append([b.copy() for b in batches]) or seen[-1], *a, **k))
    models, texts, labels = _tiny_stage1_inputs()
    given = np.r_[labels[:8], [-1] * 2]  # 8 train rows, 2 validation rows not trained (the paper)
    settings = stage1_module.Stage1Settings(epochs=2, batch_size=3, eval_batch_size=16, lr=1e-3, seed=5)
    stage1_module.train_stage1(models, texts, given, labels[8:10], settings, show_progress=False)
    rng = np.random.default_rng([5, 1])
    assert all([b.tolist() for b in got] == [b.tolist() for b in shuffled_batches(8, 3, rng)] for got in seen)
    seen.clear()  # train rows 1 and 3 left out, validation row 9 trained (a checked row)
    models, _, _ = _tiny_stage1_inputs()
    checked = np.r_[labels[:8], [-1, labels[9]]]
    checked[[1, 3]] = -1
    stage1_module.train_stage1(models, texts, checked, labels[8:10], settings, show_progress=False)
    assert all(sorted(np.concatenate(got).tolist()) == [0, 2, 4, 5, 6, 7, 9] for got in seen)
    assert [len(b) for b in seen[0]] == [3, 3, 1]


@pytest.mark.parametrize("epochs, zeros", [(3, 0), (10, 1), (20, 2)])
def test_stage1_alpha_is_zero_for_the_first_tenth_of_epochs(monkeypatch, epochs, zeros):
    seen, original = [], stage1_module.train_epoch
    monkeypatch.setattr(stage1_module, "train_epoch",
                        lambda steps, batches, alpha, *a, **k:
                        seen.append(alpha) or original(steps, batches, alpha, *a, **k))
    models, texts, labels = _tiny_stage1_inputs()
    stage1_module.train_stage1(models, texts, np.r_[labels[:8], [-1] * 2], labels[8:10], stage1_module.Stage1Settings(
        epochs=epochs, batch_size=8, eval_batch_size=16, lr=1e-3, alpha_t_hi=4.0), show_progress=False)
    assert seen == [0.0] * zeros + [4.0] * (epochs - zeros)


@pytest.mark.parametrize("total_iter, warmup, zeros", [(10, 0.1, 1), (10, 0.3, 3), (4, 0.0, 0), (5, 1.0, 5)])
def test_stage2_lambda_is_zero_during_the_warmup_epochs(monkeypatch, total_iter, warmup, zeros):
    seen, original = [], stage2_module.train_epoch
    monkeypatch.setattr(stage2_module, "train_epoch",
                        lambda *a, **k: seen.append(a[4]) or original(*a, **k))  # a[4]: lambda_t
    rng = np.random.default_rng(0)
    n, classes = 20, 3
    labels = rng.integers(0, classes, n)
    embeddings = [rng.normal(size=(n, 2, 4)).astype(np.float16) for _ in range(2)]
    priors = [np.full((n, classes), 1.3) for _ in range(2)]
    trajectories = stage2_module.Trajectories(embeddings, torch.device("cpu"))
    stage2_module.train_stage2(trajectories, np.arange(n), labels, priors, classes, stage2_module.Stage2Settings(
        total_iter=total_iter, batch_size=8, lr=1e-3, lambda_t=2.5, warmup_epochs=warmup), show_progress=False)
    assert seen == [0.0] * zeros + [2.5] * (total_iter - zeros)


# ---- the pipeline's wiring between the stages ----------------------------------------------

@pytest.mark.parametrize("method", [[], ["--method", "npc"], ["--no_dynamics"], ["--mark_score", "loss"]])
def test_stages_get_the_rows_epochs_and_models_they_should(tiny_bert, tmp_path, monkeypatch, method):
    captured: dict = {"knn": [], "prior": []}
    originals = {name: getattr(pipeline, name) for name in
                 ("knn_predict_proba", "dirichlet_prior", "train_stage2", "denoise", "load_or_train")
                 if hasattr(pipeline, name)}
    load_or_train = pipeline.stage1_cache.load_or_train

    def spy_stage1(*a, **k):
        result = load_or_train(*a, **k)
        captured["stage1"] = result[0]
        return result

    def spy_knn(embedded, labels, left_out, num_classes, **k):
        captured["knn"].append((np.array(embedded), np.array(labels), np.array(left_out), k))
        return originals["knn_predict_proba"](embedded, labels, left_out, num_classes, **k)

    def spy_prior(*a, **k):
        out = originals["dirichlet_prior"](*a, **k)
        captured["prior"].append(out)
        return out

    def spy_stage2(trajectories, train_index, noisy, priors, *a, **k):
        captured["stage2"] = (trajectories, np.array(train_index), np.array(noisy), [np.array(p) for p in priors])
        return originals["train_stage2"](trajectories, train_index, noisy, priors, *a, **k)

    def spy_denoise(vaes, trajectories, index, noisy_probs, *a, **k):
        captured.setdefault("denoise", []).append((np.array(index), np.array(noisy_probs)))
        return originals["denoise"](vaes, trajectories, index, noisy_probs, *a, **k)

    monkeypatch.setattr(pipeline.stage1_cache, "load_or_train", spy_stage1)
    monkeypatch.setattr(pipeline, "knn_predict_proba", spy_knn)
    monkeypatch.setattr(pipeline, "dirichlet_prior", spy_prior)
    monkeypatch.setattr(pipeline, "train_stage2", spy_stage2)
    monkeypatch.setattr(pipeline, "denoise", spy_denoise)
    record = pipeline.run(parse_config(["--bert", tiny_bert, *FAST, *method, "--cache_dir", str(tmp_path)]))

    stage1 = captured["stage1"]
    n_train, n_val, n_test = (record["data"][k] for k in ("train", "validation", "test"))
    n_fit = n_train + n_val
    npc, no_dynamics = "--method" in method, "--no_dynamics" in method
    by_loss = no_dynamics or "--mark_score" in method  # marked by each model's last-epoch loss
    given_fit = _given_labels(tmp_path / "runs", record["data"]["class_names"])  # [n_fit]
    knn_epoch = -1 if npc else 0  # DyGen's and the ablation's kNN: first epoch; NPC's: last
    assert len(captured["knn"]) == len(stage1.embeddings) == record["plan"]["n_model"]
    for m, (embedded, labels, left_out, options) in enumerate(captured["knn"]):
        np.testing.assert_array_equal(embedded, column(stage1.embeddings[m], knn_epoch, n_fit))  # model m's
        assert options["rows"] == n_train and len(labels) == n_fit
        if npc:  # fitted on NPC's anchors: train rows only, one per class and batch at most
            assert left_out[n_train:].all() and (~left_out).sum() <= -(-n_train // 16) * 4
            # NPC calibrates the classifier's prediction ŷ, not the given label: the kNN votes
            # with ŷ, and the anchors are the most confident rows of each predicted class
            prediction = stage1.probs[m, :n_fit].argmax(-1)
            np.testing.assert_array_equal(labels, prediction)
            batches = shuffled_batches(n_train, 16, np.random.default_rng([0, 3]))
            np.testing.assert_array_equal(~left_out[:n_train], npc_anchors(stage1.probs[m, :n_train],
                                                                          prediction[:n_train], batches))
            assert record["npc_label"] == "prediction"
        else:
            assert left_out.sum() == int(0.2 * n_fit)  # the marked share (by dynamics or by loss)
            if by_loss:
                scores = cross_entropy_scores(stage1.probs[m, :n_fit], given_fit)
            else:
                scores = dynamics_score(distance_trajectories(stage1.embeddings[m][:n_fit], torch.as_tensor(given_fit),
                                                              record["data"]["num_classes"])).numpy()
            np.testing.assert_array_equal(left_out, mark_noisy(scores, 0.2))
    trajectories, train_index, noisy, priors = captured["stage2"]
    np.testing.assert_array_equal(train_index, np.arange(n_train))  # stage 2: train rows only
    given = given_fit[:n_train]
    if npc:  # the VAE reconstructs ŷ; this run's ŷ differs from the given label on some rows
        prediction = stage1.probs[0, :n_train].argmax(-1)
        np.testing.assert_array_equal(noisy, prediction)
        assert (prediction != given).any()
    else:
        np.testing.assert_array_equal(noisy, given)
    assert len(noisy) == n_train and len(priors) == len(stage1.embeddings)
    for m, prior in enumerate(priors):  # model m's prior is the one built from model m's kNN
        np.testing.assert_array_equal(prior, captured["prior"][m])
        rows = np.array([0, 5, n_train - 1])
        z = trajectories(m, rows).numpy()
        epochs = slice(-1, None) if (npc or no_dynamics) else slice(None)
        np.testing.assert_array_equal(z, np.asarray(stage1.embeddings[m][rows])[:, epochs].reshape(3, -1)
                                      .astype(np.float32))
    test_rows = np.arange(n_fit, n_fit + n_test)
    index, noisy_probs = [call for call in captured["denoise"] if call[0][0] == n_fit][-1]  # the test rows'
    np.testing.assert_array_equal(index, test_rows)
    np.testing.assert_array_equal(noisy_probs, stage1.probs[:, test_rows])


def test_test_data_cannot_change_training(tiny_bert, tmp_path, monkeypatch):
    """Permuted test texts and replaced test labels: the same stage 1 on train rows, the same
    cleaned train labels. (The stage-1 cache key covers the test texts, so both runs train.)"""
    original = pipeline.load_dataset

    def with_other_test(name, path, seed, columns=None):
        splits = original(name, path, seed, columns)
        order = np.random.default_rng(0).permutation(len(splits.test))
        test = splits.test
        other = dataclasses.replace(test, texts=[test.texts[i] for i in order],
                                    gold=(test.gold[order] + 1) % splits.num_classes,
                                    noisy=None if test.noisy is None else (test.noisy[order] + 1) % splits.num_classes)
        return dataclasses.replace(splits, test=other)

    stage1 = []
    load_or_train = pipeline.stage1_cache.load_or_train
    monkeypatch.setattr(pipeline.stage1_cache, "load_or_train",
                        lambda *a, **k: stage1.append(load_or_train(*a, **k)) or stage1[-1])
    args = ["--bert", tiny_bert, *FAST]
    first = pipeline.run(parse_config([*args, "--cache_dir", str(tmp_path / "a")]))
    monkeypatch.setattr(pipeline, "load_dataset", with_other_test)
    second = pipeline.run(parse_config([*args, "--cache_dir", str(tmp_path / "b")]))
    assert not first["stage1_cache"]["hit"] and not second["stage1_cache"]["hit"]
    assert first["accuracy"] != second["accuracy"] or first["accuracy_before"] != second["accuracy_before"]
    n_fit = first["data"]["train"] + first["data"]["validation"]
    (a, _), (b, _) = stage1
    assert [h["train_loss"] for h in a.history] == pytest.approx([h["train_loss"] for h in b.history], abs=1e-6)
    np.testing.assert_allclose(a.probs[:, :n_fit], b.probs[:, :n_fit], atol=1e-5)
    for ours, theirs in zip(a.embeddings, b.embeddings, strict=True):
        np.testing.assert_allclose(np.asarray(ours[:n_fit], np.float32), np.asarray(theirs[:n_fit], np.float32),
                                   atol=2e-3)
    cleaned = [_cleaned_labels(tmp_path / d / "runs") for d in ("a", "b")]
    assert cleaned[0] == cleaned[1] and len(cleaned[0]) == n_fit
    assert first["marking"] == second["marking"]


def _given_labels(runs_dir, class_names: list[str]) -> np.ndarray:
    """The given (noisy) label ids of the train and validation rows, from the run's labels CSV."""
    import csv

    (path,) = runs_dir.glob("*-labels.csv")
    with open(path, newline="") as f:
        return np.array([class_names.index(r["noisy_label"]) for r in csv.DictReader(f) if r["split"] != "test"])


def _cleaned_labels(runs_dir) -> list[tuple[str, str]]:
    import csv

    (path,) = runs_dir.glob("*-labels.csv")
    with open(path, newline="") as f:
        return [(r["split"], r["cleaned_label"]) for r in csv.DictReader(f) if r["split"] != "test"]


def test_a_run_gives_the_same_numbers_with_the_speed_layer_on_and_off(tiny_bert, tmp_path, monkeypatch):
    """The whole pipeline with its speed-ups (here on a CPU: the prepared SDPA mask, the VAE's
    block layers) and with the plain method alone (EagerSteps, ConcatLinear): the same run up to
    float rounding. (--split_batches off: micro-batches would draw dropout in another order.)"""
    args = ["--bert", tiny_bert, *FAST, "--split_batches", "off"]
    fast = pipeline.run(parse_config([*args, "--cache_dir", str(tmp_path / "fast")]))
    monkeypatch.setattr(SpeedLayer, "stage1_steps", lambda self, runtime: None)  # the method's own steps
    monkeypatch.setattr(SpeedLayer, "stage2_steps", lambda self, runtime: None)
    plain = pipeline.run(parse_config([*args, "--cache_dir", str(tmp_path / "plain")]))
    assert [h["train_loss"] for h in plain["stage1"]] == pytest.approx([h["train_loss"] for h in fast["stage1"]],
                                                                     rel=1e-4)
    assert [h["loss"] for h in plain["stage2"]] == pytest.approx([h["loss"] for h in fast["stage2"]], rel=1e-5)
    assert plain["accuracy_before"] == fast["accuracy_before"]
    assert plain["accuracy_after"] == fast["accuracy_after"] and plain["cleaning"] == fast["cleaning"]
