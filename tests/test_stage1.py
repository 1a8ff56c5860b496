"""Stage-1 batching: length-split micro-batches give the same training as whole batches."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from src.accel.microbatches import MICROBATCH_COST_TOKENS, split_by_length
from src.data.texts import TokenizedTexts
from src.stage1.train_stage1 import Stage1Settings, train_stage1


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
        from src.accel.stage1 import Stage1Speedups

        models = []
        for m in range(2):
            torch.manual_seed(m)
            models.append(BertForSequenceClassification(config))
        return train_stage1(models, texts, np.r_[labels[:32], [-1] * 8], labels[32:40],
                            Stage1Settings(epochs=2, batch_size=16, eval_batch_size=64, lr=1e-3, seed=0),
                            show_progress=False, speedups=Stage1Speedups(split_batches=True) if split else None)

    whole, split = fit(False), fit(True)
    assert [h["train_loss"] for h in split.history] == pytest.approx([h["train_loss"] for h in whole.history],
                                                                      rel=1e-4)
    np.testing.assert_allclose(split.probs, whole.probs, atol=1e-4)
    for ours, theirs in zip(split.embeddings, whole.embeddings, strict=True):
        assert ours.shape == (len(texts), 2, config.hidden_size)  # [N, E, D]
        np.testing.assert_allclose(ours.astype(np.float32), theirs.astype(np.float32), atol=2e-3)
    # and splitting really happens on lengths like these
    assert len(split_by_length(lengths[:16], MICROBATCH_COST_TOKENS)) > 1


def test_device_defaults_of_batching():
    from src.runtime import resolve_eval_batch_size, resolve_split_batches

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_split_batches("auto", cpu, "fp32") and not resolve_split_batches("auto", cuda, "fp32")
    assert not resolve_split_batches("auto", cpu, "bf16")
    assert resolve_split_batches("on", cuda, "bf16") and not resolve_split_batches("off", cpu, "fp32")
    assert resolve_eval_batch_size(None, cpu) == 128 and resolve_eval_batch_size(None, cuda) == 128
    assert resolve_eval_batch_size(None, cuda, cuda_graphs=False) == 512
    assert resolve_eval_batch_size(None, cpu, cuda_graphs=False) == 128
    assert resolve_eval_batch_size(64, cuda) == 64


def tiny_classifier(attn_implementation: str = "sdpa", dropout: float = 0.0, seed: int = 0):
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=3,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    config._attn_implementation = attn_implementation
    torch.manual_seed(seed)
    return BertForSequenceClassification(config).eval()


def padded_texts(lengths: list[int], width: int) -> TokenizedTexts:
    rng = np.random.default_rng(1)
    ids = torch.as_tensor(rng.integers(5, 50, size=(len(lengths), width)))
    ids[torch.arange(width)[None, :] >= torch.as_tensor(lengths)[:, None]] = 0
    return TokenizedTexts(ids, np.array(lengths))


def test_batches_carry_a_mask_only_when_padded_and_every_form_gives_the_same_outputs():
    from src.accel.models import accepts_prepared_mask

    cpu = torch.device("cpu")
    texts = padded_texts([7, 7, 4, 7, 2], width=9)
    full = texts.batch(np.array([0, 1, 3]), cpu)  # all 7 long: trimmed to 7, nothing padded
    assert full["input_ids"].shape == (3, 7) and "attention_mask" not in full
    usual = texts.batch(np.array([0, 2, 4]), cpu)
    assert usual["attention_mask"].shape == (3, 7) and usual["attention_mask"].sum().item() == 13
    prepared = texts.batch(np.array([0, 2, 4]), cpu, prepared_mask=True)
    assert prepared["attention_mask"].shape == (3, 1, 1, 7) and prepared["attention_mask"].dtype == torch.bool
    assert torch.equal(prepared["attention_mask"][:, 0, 0].long(), usual["attention_mask"])

    model = tiny_classifier("sdpa")
    assert accepts_prepared_mask(model) and not model.training
    with torch.no_grad():
        np.testing.assert_allclose(model(**prepared).logits, model(**usual).logits, atol=1e-6)
        ones = {"attention_mask": torch.ones_like(full["input_ids"]), **full}
        np.testing.assert_allclose(model(**full).logits, model(**ones).logits, atol=1e-6)
    # eager attention adds the mask as a number: a boolean one would be wrong, and is refused
    assert not accepts_prepared_mask(tiny_classifier("eager"))


def test_graph_keys_round_widths_up_keep_those_used_often_and_unpadded_batches_apart():
    from src.accel.cuda_graphs import graph_for, graph_keys

    def batch(longest: int, shortest: int) -> np.ndarray:
        return np.array([shortest, longest, longest])

    batches = ([batch(150, 90)] * 10 + [batch(150, 150)] * 8 + [batch(40, 5)] * 9 + [batch(33, 33)] * 2
               + [batch(3, 1)] * 7)
    # 150 with padding -> masked 150 (160 capped); all 150 -> unmasked 150; 40 and 33 -> masked 64
    # (11 batches: a batch all 33 long is unpadded, but not at the maximum width); 3 -> 32 (7: too few)
    assert graph_keys(batches, max_width=150, step=32, min_batches=8) == [(64, True), (150, False), (150, True)]
    assert graph_keys(batches, max_width=150, step=32, min_batches=7) == [
        (32, True), (64, True), (150, False), (150, True)]
    assert graph_keys(batches, max_width=150, step=32, min_batches=9) == [(64, True), (150, True)]
    assert graph_keys([], max_width=150) == []

    keys = [(64, True), (150, False), (150, True)]
    assert graph_for(keys, np.array([150, 150])) == (150, False)
    assert graph_for(keys, np.array([150, 149])) == (150, True)
    assert graph_for(keys, np.array([33, 33])) == (64, True)  # no unmasked graph of 33
    assert graph_for([(150, False)], np.array([150, 149])) is None
    assert graph_for([(64, True)], np.array([65])) is None


def test_a_tensor_alpha_gives_the_same_loss_and_this_torch_schedules_a_tensor_lr():
    from src.accel.cuda_graphs import scheduler_updates_tensor_lr
    from src.stage1.stage1_step import coregularized_loss

    logits = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 1, 0])
    for alpha in (0.0, 2.5):
        torch.testing.assert_close(coregularized_loss(logits, labels, torch.tensor(alpha)),
                                   coregularized_loss(logits, labels, alpha))
    # the co-regularisation term, computed apart in numpy: 2.5 * mean over models and rows of KL(p_mean || p_m)
    p = torch.softmax(logits, -1).double().numpy()  # [M, B, C]
    mean = p.mean(0)
    kl = (mean * (np.log(mean) - np.log(p))).sum(-1).mean()
    added = coregularized_loss(logits, labels, 2.5) - coregularized_loss(logits, labels, 0.0)
    assert added.item() == pytest.approx(2.5 * kl, rel=1e-5) and kl > 1e-3
    assert scheduler_updates_tensor_lr()  # else the CUDA graphs would be silently off


def train_with_and_without_graphs(device: torch.device, check_no_sync: bool = False):
    """Stage-1 training of two tiny models, eagerly and with graphs for the full batches (two
    padded widths and the unmasked full width; the partial batches eager): (eager models,
    losses), (graphed ..., graphs)."""
    from src.accel.cuda_graphs import build_graphs
    from src.accel.stage1 import Stage1Speedups
    from src.stage1.stage1_step import lr_lambda, stage1_optimizer
    from src.stage1.train_stage1 import train_epoch

    rng = np.random.default_rng(6)
    short, long = rng.integers(2, 31, size=64), rng.integers(33, 64, size=72)
    texts = padded_texts(list(short) + list(long) + [64] * 48, width=64)  # the last cut at 64
    labels = rng.integers(0, 3, size=len(texts))
    epochs, batch_size = 3, 16

    def epoch_batches(epoch: int) -> list[np.ndarray]:  # short, long and full texts apart: three graphs
        order = np.random.default_rng(epoch).permutation
        groups = [order(64), 64 + order(72), 136 + order(48)]
        return [g[i : i + batch_size] for g in groups for i in range(0, len(g), batch_size)]

    all_batches = [epoch_batches(e) for e in range(epochs)]
    steps = sum(len(b) for b in all_batches)

    def fit(graph: bool):
        models = [tiny_classifier("sdpa", seed=m).to(device).train() for m in range(2)]
        # the speed layer's steps, with graphs built here (off CUDA `Stage1Speedups` builds none)
        runner = Stage1Speedups().build(models, texts, labels, [], [], Stage1Settings(
            epochs=epochs, batch_size=batch_size, eval_batch_size=16, lr=1e-2), device)
        runner.optimizer = optimizer = stage1_optimizer(models, 1e-2, capturable=graph)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(steps, steps // epochs, "linear"))
        graphs = build_graphs(models, optimizer, texts, [b for bs in all_batches for b in bs], batch_size,
                              device=device, precision="fp32", clip_gradient_norm=1.0) if graph else None
        runner.graphs = graphs
        losses = []
        for epoch, batches in enumerate(all_batches):
            if graph and check_no_sync and epoch == epochs - 1:
                torch.cuda.synchronize()
                torch.cuda.set_sync_debug_mode("error")
            try:
                total, _ = train_epoch(runner, batches, 0.0 if epoch == 0 else 5.0, scheduler)
            finally:
                if check_no_sync:
                    torch.cuda.set_sync_debug_mode("default")
            losses.append(total.item())
        return models, losses, graphs

    return fit(False), fit(True)


def assert_same_training(eager, graphed) -> None:
    (eager_models, eager_losses, _), (graphed_models, graphed_losses, graphs) = eager, graphed
    assert sorted(graphs.graphs) == [(32, True), (64, False), (64, True)]
    assert graphs.replays == 3 * 11  # 11 full batches an epoch
    assert graphed_losses == pytest.approx(eager_losses, rel=1e-4)
    for a, b in zip(eager_models, graphed_models):
        for (name, p), q in zip(a.named_parameters(), b.parameters()):
            # A key bias adds the same amount to every score of a query: softmax cancels it, so
            # its gradient is 0 up to rounding, and AdamW turns that rounding into updates.
            if not name.endswith("attention.self.key.bias"):
                torch.testing.assert_close(q, p, rtol=1e-3, atol=1e-4, msg=name)


class RecomputedGraph:
    """A CUDA graph's stand-in on the CPU: replaying runs the step again and writes its results
    into the tensors the capture returned, as a graph rewrites its outputs. (A graph's backward
    writes fresh gradients rather than adding to what is there: they are cleared first.)"""

    def __init__(self, step, out, optimizer) -> None:
        self.step, self.out, self.optimizer = step, out, optimizer

    def replay(self) -> None:
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
        new = self.step()
        pairs = [(self.out, new)] if isinstance(new, torch.Tensor) else [
            (a, b) for old, fresh in zip(self.out, new) for a, b in zip(old, fresh)]
        for old, fresh in pairs:
            old.copy_(fresh)


def capture_on_cpu(step, optimizer=None, warmup_steps=3, pool=None):
    """`capture_cuda_graph` for the CPU: one call (whose update is undone, as capturing runs
    nothing) gives the outputs; replays recompute."""
    params = [] if optimizer is None else [p for g in optimizer.param_groups for p in g["params"]]
    saved = [p.detach().clone() for p in params]
    state = {} if optimizer is None else {p: {k: v.clone() for k, v in s.items()} for p, s in optimizer.state.items()}
    out = step()
    with torch.no_grad():
        for p, value in zip(params, saved):
            p.copy_(value)
        for p, s in ({} if optimizer is None else optimizer.state).items():
            for k, v in s.items():
                v.copy_(state[p][k]) if p in state else v.zero_()
    if optimizer is not None:
        optimizer.zero_grad(set_to_none=True)
    return RecomputedGraph(step, out, optimizer), out


@pytest.mark.slow  # trains or compiles models
def test_graph_plumbing_trains_like_eager_steps_on_cpu(monkeypatch):
    """The graphed code paths (padded widths, input buffers, the alpha input, the tensor learning
    rate, eager partial batches, filled-up embedding batches) with each replay recomputed on the
    CPU: the same training and embeddings as the eager paths. (The capture itself: CUDA tests.)"""
    from src.accel import cuda_graphs
    from src.accel.cuda_graphs import build_embedding_graphs
    from src.data.batches import length_sorted_batches

    monkeypatch.setattr(cuda_graphs, "capture_cuda_graph", capture_on_cpu)
    monkeypatch.setattr(torch.cuda, "graph_pool_handle", lambda: None)
    masking_utils = pytest.importorskip("transformers.masking_utils")
    monkeypatch.setitem(masking_utils.AttentionMaskInterface._global_mapping, "sdpa", masking_utils.sdpa_mask)
    cpu = torch.device("cpu")
    assert_same_training(*train_with_and_without_graphs(cpu))
    # capturing an unmasked graph first has transformers pass no mask there (`pass_no_mask_without_padding`)
    assert getattr(masking_utils.ALL_MASK_ATTENTION_FUNCTIONS["sdpa"], "skips_unpadded", False)

    models = [tiny_classifier("sdpa", dropout=0.1, seed=m).train() for m in range(2)]
    texts = padded_texts(list(np.random.default_rng(7).integers(2, 64, size=100)) + [64] * 30, width=64)
    batches = length_sorted_batches(texts.lengths, 16)  # the last 2 (16 and 2 texts) all 64 long
    graphs = build_embedding_graphs(models, texts, batches, 16, None, device=cpu, precision="fp32")
    assert sorted(graphs.graphs) == [(32, True), (64, False), (64, True)]
    eager, graphed = embed_with_and_without(models, texts, batches, graphs, cpu)
    for a, b in zip(graphed, eager):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def embed_with_and_without(models, texts, batches, graphs, device):
    """`embed` through the speed layer's steps, without and with the embedding graphs."""
    from src.accel.stage1 import Stage1Speedups
    from src.stage1.train_stage1 import embed

    runner = Stage1Speedups().build(models, texts, np.zeros(len(texts), dtype=np.int64), [], batches,
                                    Stage1Settings(epochs=1, batch_size=16, eval_batch_size=16, lr=1e-3), device)
    eager = embed(runner, len(texts), batches)
    for model in models:
        model.train()  # embed must switch dropout off itself
    runner.eval_graphs = graphs
    return eager, embed(runner, len(texts), batches)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_stage1_cuda_graphs_train_like_eager_steps():
    """Graph replays (two padded widths, masked) plus eager partial batches give the eager
    training: same losses and weights (no dropout, fp32), and the replays never wait for the GPU."""
    assert_same_training(*train_with_and_without_graphs(torch.device("cuda"), check_no_sync=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_embedding_graphs_give_the_eager_embeddings():
    """Replayed embedding passes (eval mode: no dropout; padded widths; a filled-up last batch)
    give the eager [CLS] vectors and probabilities."""
    from src.accel.cuda_graphs import build_embedding_graphs
    from src.data.batches import length_sorted_batches

    cuda = torch.device("cuda")
    models = [tiny_classifier("sdpa", dropout=0.1, seed=m).to(cuda).train() for m in range(2)]
    texts = padded_texts(list(np.random.default_rng(7).integers(2, 64, size=100)) + [64] * 30, width=64)
    batches = length_sorted_batches(texts.lengths, 16)  # the last 2 (16 and 2 texts) all 64 long
    graphs = build_embedding_graphs(models, texts, batches, 16, torch.cuda.graph_pool_handle(), device=cuda,
                                    precision="fp32")
    assert graphs is not None and sorted(graphs.graphs) == [(32, True), (64, False), (64, True)]
    (eager_cls, eager_probs), (graphed_cls, graphed_probs) = embed_with_and_without(models, texts, batches,
                                                                                    graphs, cuda)
    torch.testing.assert_close(graphed_cls, eager_cls, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(graphed_probs, eager_probs, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_steps_never_wait_for_the_gpu():
    """Stage-1 and stage-2 epochs queue their work without a host-device synchronisation."""
    from src.accel.stage1 import Stage1Speedups
    from src.stage1.train_stage1 import train_epoch
    from src.stage2.network import DirichletVAE
    from src.stage2.train_stage2 import Stage2Steps, Trajectories
    from src.stage2.train_stage2 import train_epoch as train_vae_epoch

    cuda = torch.device("cuda")
    models = [tiny_classifier("sdpa", dropout=0.1).to(cuda).train() for _ in range(2)]
    texts = padded_texts(list(np.random.default_rng(2).integers(2, 12, size=64)), width=12)
    labels = np.random.default_rng(3).integers(0, 3, size=64)
    batches = [np.arange(i, i + 16) for i in range(0, 64, 16)]
    runner = Stage1Speedups().build(models, texts, labels, [batches], [], Stage1Settings(
        epochs=1, batch_size=16, eval_batch_size=16, lr=1e-3, precision="bf16"), cuda)
    scheduler = torch.optim.lr_scheduler.LambdaLR(runner.optimizer, lambda step: 1.0)
    prepared = runner.prepared_mask

    def stage1_epoch():
        return train_epoch(runner, batches, 1.0, scheduler)

    stage1_epoch()  # warm-up: lazy initialisation may synchronise once
    trajectories = Trajectories(np.random.default_rng(4).standard_normal((2, 64, 3, 8)).astype(np.float16), cuda)
    vaes = [DirichletVAE(trajectories.input_dim, 3).to(cuda) for _ in range(2)]
    onehot = torch.nn.functional.one_hot(torch.as_tensor(labels), 3).float().to(cuda)
    priors = [torch.full((64, 3), 2.0, device=cuda) for _ in vaes]
    vae_steps = Stage2Steps(vaes, 1e-3, onehot, priors, 1.0)

    def stage2_epoch():
        return train_vae_epoch(vae_steps, trajectories, batches, np.arange(64), 1.0)

    stage2_epoch()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        stage1_epoch()
        stage2_epoch()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert prepared  # BERT with SDPA takes the prepared mask, so the library never reads it


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_stage2_cuda_graph_trains_like_eager_steps():
    """Replaying the captured step (and undoing its warm-up) gives the eager training."""
    from src.accel.stage2 import Stage2Speedups
    from src.stage2.train_stage2 import Stage2Settings, Trajectories, train_stage2

    cuda = torch.device("cuda")
    rng = np.random.default_rng(5)
    n, classes = 100, 4  # 3 full batches of 32 and one of 4 (eager) per epoch
    trajectories = Trajectories(rng.standard_normal((2, n, 3, 8)).astype(np.float16), cuda)  # M x [N, E, D]
    labels = rng.integers(0, classes, size=n)
    priors = [np.full((n, classes), 1.5) + rng.random((n, classes)) for _ in range(2)]

    def fit(graph: bool):
        return train_stage2(trajectories, np.arange(n), labels, priors, classes, Stage2Settings(
            total_iter=3, batch_size=32, lr=1e-2, lambda_t=1.0, warmup_epochs=0.4), show_progress=False,
            speedups=Stage2Speedups(cuda_graphs=True) if graph else None)

    (eager, eager_history), (graphed, graphed_history) = fit(False), fit(True)
    assert [h["loss"] for h in graphed_history] == pytest.approx([h["loss"] for h in eager_history], rel=1e-4)
    for a, b in zip(eager, graphed):
        for (name, p), q in zip(a.named_parameters(), b.parameters()):
            torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=name)


def test_clipping_takes_one_norm_over_all_models_and_the_optimiser_is_the_papers_adam():
    """The paper's code clips `NLLModel.parameters()` (all M models) at 1.0 as one norm and uses
    Adam with eps 1e-9. Gradients of norm 3 and 4 (joint norm 5) are both scaled by 1/5; a
    per-model clip would give norms 1 and 1."""
    from src.stage1.stage1_step import clip_and_step, stage1_optimizer

    models = [torch.nn.Linear(1, 1, bias=False) for _ in range(2)]
    optimizer = stage1_optimizer(models, lr=1e-3)
    assert optimizer.defaults["eps"] == 1e-9 and optimizer.defaults["weight_decay"] == 0.0
    models[0].weight.grad, models[1].weight.grad = torch.tensor([[3.0]]), torch.tensor([[4.0]])
    optimizer.step = lambda: None  # the gradients as the step would see them
    clip_and_step(optimizer, 1.0)
    assert models[0].weight.grad.item() == pytest.approx(0.6) and models[1].weight.grad.item() == pytest.approx(0.8)
