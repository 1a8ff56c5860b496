"""Stage-1 batching: length-split micro-batches give the same training as whole batches."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from src.model.train_stage1 import MICROBATCH_COST_TOKENS, TokenizedTexts, split_by_length, train_stage1


def padded_cost(lengths: np.ndarray, groups: list[np.ndarray], cost_per_part: float) -> float:
    return sum(len(g) * lengths[g].max() + cost_per_part for g in groups)


def brute_force_best(lengths: np.ndarray, cost_per_part: float) -> float:
    """Cheapest split of the sorted lengths over all 2^(n-1) ways to cut it into runs."""
    order = np.argsort(lengths, kind="stable")
    n = len(order)
    best = np.inf
    for cuts in itertools.product([False, True], repeat=n - 1):
        bounds = [0, *[i + 1 for i, c in enumerate(cuts) if c], n]
        groups = [order[a:b] for a, b in zip(bounds, bounds[1:])]
        best = min(best, padded_cost(lengths, groups, cost_per_part))
    return best


@pytest.mark.parametrize("cost_per_part", [0.0, 5.0, 20.0, 1e9])
def test_split_by_length_is_an_optimal_partition(cost_per_part):
    rng = np.random.default_rng(0)
    for _ in range(20):
        lengths = rng.integers(3, 40, size=9)
        groups = split_by_length(lengths, cost_per_part)
        assert sorted(np.concatenate(groups).tolist()) == list(range(len(lengths)))  # each row once
        for shorter, longer in zip(groups, groups[1:]):  # runs of the length order
            assert lengths[shorter].max() <= lengths[longer].min()
        assert padded_cost(lengths, groups, cost_per_part) == pytest.approx(brute_force_best(lengths, cost_per_part))
    assert len(split_by_length(np.array([5, 30, 7, 12]), 1e9)) == 1  # splitting never pays
    equal = split_by_length(np.array([4, 9, 4, 9, 9]), 0.0)  # free splits: no padding at all
    assert [sorted(g.tolist()) for g in equal] == [[0, 2], [1, 3, 4]]


def test_split_batches_trains_like_whole_batches():
    """Without dropout, accumulating the micro-batches' gradients is the whole batch's update."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=3,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    rng = np.random.default_rng(0)
    n, width = 48, 30
    lengths = rng.integers(3, width + 1, size=n)
    ids = torch.as_tensor(rng.integers(5, 50, size=(n, width)))
    ids[torch.arange(width)[None, :] >= torch.as_tensor(lengths)[:, None]] = 0  # pad id 0
    texts = TokenizedTexts(ids, lengths)
    labels = rng.integers(0, 3, size=n)

    def fit(split: bool):
        models = []
        for m in range(2):
            torch.manual_seed(m)
            models.append(BertForSequenceClassification(config))
        return train_stage1(models, texts, labels[:32], labels[32:40], epochs=2, batch_size=16,
                            eval_batch_size=64, lr=1e-3, seed=0, show_progress=False, split_batches=split)

    whole, split = fit(False), fit(True)
    assert [h["train_loss"] for h in split.history] == pytest.approx([h["train_loss"] for h in whole.history],
                                                                      rel=1e-4)
    np.testing.assert_allclose(split.probs, whole.probs, atol=1e-4)
    np.testing.assert_allclose(split.embeddings.astype(np.float32), whole.embeddings.astype(np.float32),
                               atol=2e-3)
    # and splitting really happens on lengths like these
    assert len(split_by_length(lengths[:16], MICROBATCH_COST_TOKENS)) > 1


def test_device_defaults_of_batching():
    from src.utils.common import resolve_eval_batch_size, resolve_split_batches

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_split_batches("auto", cpu, "fp32") and not resolve_split_batches("auto", cuda, "fp32")
    assert not resolve_split_batches("auto", cpu, "bf16")
    assert resolve_split_batches("on", cuda, "bf16") and not resolve_split_batches("off", cpu, "fp32")
    assert resolve_eval_batch_size(None, cpu) == 128 and resolve_eval_batch_size(None, cuda) == 512
    assert resolve_eval_batch_size(64, cuda) == 64
