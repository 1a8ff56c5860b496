"""Stage 1: co-regularised fine-tuning of M classifiers that records every epoch's embeddings.

After each epoch every train, validation and test example is embedded by every model
(eval mode, no dropout): the last layer's [CLS] vector goes into that model's trajectory
([N, E, D] float16, a `RowFile` on disk or an array), and the last epoch's class probabilities
are kept for inference. Rows are always in the fixed order train, validation, test.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from src.data.texts import TokenizedTexts
from src.errors import UserError
from src.model.microbatches import MICROBATCH_COST_TOKENS, accepts_prepared_mask, split_by_length
from src.model.plm import compile_model, load_classifier
from src.model.stage1_graphs import (
    GraphedEmbedding,
    GraphedStage1Steps,
    build_embedding_graphs,
    build_graphs,
    cuda_graphs_blocker,
    describe_keys,
)
from src.model.stage1_step import clip_and_step, forward_backward, forward_cls, lr_lambda, stage1_optimizer
from src.utils.batches import length_sorted_batches, shuffled_batches
from src.utils.common import host_memory_mb, release_freed_host_memory, to_device
from src.utils.row_file import RowFile


def new_classifiers(model_name: str, num_classes: int, n_model: int, seed: int) -> list:
    """The M classifiers stage 1 starts from: the pretrained body, a differently seeded head each."""
    models = []
    for m in range(n_model):
        torch.manual_seed(seed * 1000 + m)  # a different head for each model
        models.append(load_classifier(model_name, num_classes))
    return models


def trajectory_path(directory: str | Path, model: int) -> Path:
    """Where model `model`'s trajectory file ([N, E, D] float16, `RowFile`) lives in `directory`."""
    return Path(directory) / f"trajectories_{model}.npy"


@dataclass
class Stage1Result:
    # per model, [N, E, D] float16 (rows train | validation | test): each example's [CLS]
    # embedding at every epoch, an array or a RowFile on disk (`trajectory_dir`)
    embeddings: list
    probs: np.ndarray  # [M, N, C] float32, softmax of the last-epoch classifiers
    history: list[dict] = field(default_factory=list)  # per epoch: loss, val accuracy, seconds
    plm_seconds: float = 0.0  # wall time in the language models' passes and optimiser steps
    # (on CUDA, kernels run asynchronously: this counts launch time until the next sync)
    host_mb: dict = field(default_factory=dict)  # resident host memory at points of the setup


@torch.inference_mode()
def embed(models, texts: TokenizedTexts, batches, device, precision, pad_to_max: bool = False,
          prepared_mask: bool = False, graphs: GraphedEmbedding | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """[CLS] embeddings [M, N, D] and class probabilities [M, N, C] of every example.

    With `graphs`, the batches they cover replay a CUDA graph of all models' forward passes."""
    n = len(texts)
    cls_out, prob_out = None, None
    for model in models:
        model.eval()
    for index in batches:
        key = None if graphs is None else graphs.key_for(index, texts.lengths)
        if key is not None:
            outputs = graphs(texts, index, key)
        else:
            batch = texts.batch(index, device, pad_to_max, prepared_mask)
            outputs = [forward_cls(model, batch, device, precision) for model in models]
        if cls_out is None:  # allocate once the sizes are known
            (cls, logits) = outputs[0]
            cls_out = torch.empty(len(models), n, cls.shape[-1], dtype=torch.float16, device=device)
            prob_out = torch.empty(len(models), n, logits.shape[-1], dtype=torch.float32, device=device)
        where = to_device(torch.as_tensor(index), device)
        for m, (cls, logits) in enumerate(outputs):
            cls_out[m, where] = cls.to(torch.float16)
            prob_out[m, where] = logits.float().softmax(-1)
    return cls_out.cpu(), prob_out.cpu()


def train_epoch(
    runners: list, texts: TokenizedTexts, batches, train_labels: np.ndarray, alpha: float,
    optimizer: torch.optim.Optimizer, scheduler, *, device: torch.device, precision: str,
    clip_gradient_norm: float, pad_to_max: bool = False, prepared_mask: bool = False,
    split_batches: bool = False, show_progress: bool = False, graphs: GraphedStage1Steps | None = None,
) -> tuple[torch.Tensor, float]:
    """One pass of co-regularised updates over `batches` (arrays of train rows), with an
    optimizer from `stage1_optimizer`. With `graphs`, the batches they cover replay a CUDA
    graph and the others run eagerly.

    Returns the summed batch losses (a tensor on `device`) and the seconds spent in the steps.
    Nothing here waits for the GPU (except the progress bar's loss, every 20 steps), so on
    CUDA the host queues the next step while the GPU runs the last one.
    """
    total_loss = torch.zeros((), device=device)
    seconds = 0.0
    if graphs is not None:
        graphs.alpha.fill_(alpha)
    for step, index in enumerate(batches):
        tick = time.perf_counter()
        key = None if graphs is None else graphs.key_for(index, texts.lengths)
        if key is not None:
            loss = graphs(texts, index, train_labels[index], key)
        else:
            groups = ([index[g] for g in split_by_length(texts.lengths[index], MICROBATCH_COST_TOKENS)]
                      if split_batches and not pad_to_max else [index])
            optimizer.zero_grad(set_to_none=True)  # after a replay .grad are the graph's buffers
            loss = torch.zeros((), device=device)
            for group in groups:
                batch = texts.batch(group, device, pad_to_max, prepared_mask)
                labels = to_device(torch.as_tensor(train_labels[group]), device)
                # The loss is a mean over the batch: each group's share is weighted by its size.
                loss += forward_backward(runners, batch, labels, alpha, len(group) / len(index),
                                         device=device, precision=precision)
            clip_and_step(optimizer, clip_gradient_norm)
            optimizer.zero_grad(set_to_none=True)  # no gradients held between steps
        scheduler.step()
        seconds += time.perf_counter() - tick
        total_loss += loss
        if show_progress and step % 20 == 0 and hasattr(batches, "set_postfix"):  # a tqdm bar
            batches.set_postfix(loss=f"{loss.item():.3f}")
    return total_loss, seconds


def train_stage1(
    models: list[torch.nn.Module],
    texts: TokenizedTexts,
    train_labels: np.ndarray,
    val_labels: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    eval_batch_size: int,
    lr: float,
    weight_decay: float = 0.0,
    alpha_t_hi: float = 5.0,
    clip_gradient_norm: float = 1.0,
    lr_schedule: str = "linear",
    device: torch.device | None = None,
    precision: str = "fp32",
    seed: int = 0,
    show_progress: bool = True,
    pad_to_max: bool = False,
    split_batches: bool = False,
    compile_models: bool = False,
    cuda_graphs: bool = False,
    trajectory_dir: str | Path | None = None,
) -> Stage1Result:
    """Fine-tune `models` on the first len(train_labels) rows of `texts`; embed all rows each epoch.

    With `trajectory_dir`, the embeddings go to one file per model there (trajectories_<m>.npy,
    `RowFile`), written as each epoch ends, so the process does not hold them; else to arrays.

    `texts` holds train, validation and test rows in that order. `pad_to_max` pads every batch
    to the maximum length instead of its longest text (only to measure what dynamic padding saves).
    `split_batches` runs each training batch as length-sorted micro-batches (`split_by_length`)
    and accumulates their gradients: the same batches and updates, with less padding.
    `cuda_graphs` (on CUDA, without `compile_models`) replays full training batches and the
    embedding passes as CUDA graphs (`GraphedStage1Steps`, `GraphedEmbedding`); where capturing
    fails, they run eagerly, with a warning.
    """
    device = device or torch.device("cpu")
    n_train, n_val = len(train_labels), len(val_labels)
    n_all = len(texts)
    num_models = len(models)
    host_mb = {"models_loaded": host_memory_mb()}
    for model in models:
        model.to(device)
    release_freed_host_memory()  # the models' host copies
    host_mb["models_on_device"] = host_memory_mb()
    # torch.compile fuses the many small kernels of each layer; the originals keep the weights.
    runners = [compile_model(model, dynamic=True) for model in models] if compile_models else models
    prepared_mask = all(accepts_prepared_mask(model) for model in models)
    if cuda_graphs:
        why_not = cuda_graphs_blocker(device, prepared_mask) or ("--compile" if compile_models else None)
        if why_not and device.type == "cuda":
            tqdm.write(f"stage 1: eager steps, no CUDA graphs ({why_not})")
        cuda_graphs = why_not is None
    optimizer = stage1_optimizer(models, lr, weight_decay, capturable=cuda_graphs)
    steps_per_epoch = -(-n_train // batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(epochs * steps_per_epoch, steps_per_epoch, lr_schedule))
    eval_batches = length_sorted_batches(texts.lengths, eval_batch_size)
    rng = np.random.default_rng([seed, 1])
    epoch_batches = [shuffled_batches(n_train, batch_size, rng) for _ in range(epochs)]
    graphs, eval_graphs = None, None
    if cuda_graphs:
        tick = time.perf_counter()
        graphs = build_graphs(runners, optimizer, texts, [b for bs in epoch_batches for b in bs], batch_size,
                              device=device, precision=precision, clip_gradient_norm=clip_gradient_norm)
        if graphs is not None:
            eval_graphs = build_embedding_graphs(runners, texts, eval_batches, eval_batch_size, graphs.pool,
                                                 device=device, precision=precision)
            host_mb["graphs_captured"] = host_memory_mb()
            tqdm.write(f"stage 1: CUDA graphs of training batches {describe_keys(graphs.graphs)} and of "
                       f"embedding batches {describe_keys(eval_graphs.graphs if eval_graphs else [])} tokens "
                       f"wide, captured in {time.perf_counter() - tick:.1f}s")

    embeddings = None  # per model [N, E, D], made after the first embedding pass (which gives D)
    history, plm_seconds = [], 0.0
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for epoch in range(epochs):
        start = time.perf_counter()
        alpha = 0.0 if epoch < epochs // 10 else alpha_t_hi  # no co-regularisation at first
        for model in models:
            model.train()
        batches = epoch_batches[epoch]
        bar = tqdm(batches, desc=f"stage 1 epoch {epoch + 1}/{epochs}", leave=False,
                   disable=not show_progress)
        total_loss, seconds = train_epoch(
            runners, texts, bar, train_labels, alpha, optimizer, scheduler, device=device,
            precision=precision, clip_gradient_norm=clip_gradient_norm, pad_to_max=pad_to_max,
            prepared_mask=prepared_mask, split_batches=split_batches, show_progress=show_progress,
            graphs=graphs)
        plm_seconds += seconds

        tick = time.perf_counter()
        cls, probs = embed(runners, texts, eval_batches, device, precision, pad_to_max, prepared_mask, eval_graphs)
        sync()
        plm_seconds += time.perf_counter() - tick
        if embeddings is None:
            shape = (n_all, epochs, cls.shape[-1])
            embeddings = [np.empty(shape, np.float16) if trajectory_dir is None
                          else RowFile.create(trajectory_path(trajectory_dir, m), shape)
                          for m in range(num_models)]
        for m, trajectory in enumerate(embeddings):
            trajectory[:, epoch] = cls[m].numpy()
        val_pred = probs[:, n_train : n_train + n_val].mean(0).argmax(-1).numpy()
        seconds = time.perf_counter() - start
        history.append({
            "epoch": epoch + 1,
            "train_loss": total_loss.item() / len(batches),
            "val_accuracy_noisy": float((val_pred == val_labels).mean()) if n_val else None,
            "seconds": seconds,
            "host_mb": host_memory_mb(),  # resident at the epoch's end (where host memory goes)
        })
        if not math.isfinite(history[-1]["train_loss"]):  # diverged: nothing after this means anything
            raise UserError(f"stage 1 epoch {epoch + 1}/{epochs}: the training loss is "
                            f"{history[-1]['train_loss']}; nothing was kept (lower --lr or "
                            f"--clip_gradient_norm, or try --precision fp32)")
        tqdm.write(f"stage 1 epoch {epoch + 1}/{epochs}: loss {history[-1]['train_loss']:.4f}"
                   f"  val acc (noisy labels) {history[-1]['val_accuracy_noisy']:.4f}  {seconds:.1f}s")
    optimizer.zero_grad(set_to_none=True)  # gradients may be views of the graphs' pool: let it go
    return Stage1Result(embeddings, probs.numpy(), history, plm_seconds, host_mb)
