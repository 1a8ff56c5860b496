"""Stage 1: co-regularised fine-tuning of M classifiers that records every epoch's embeddings.

After each epoch every train, validation and test example is embedded by every model
(eval mode, no dropout): the last layer's [CLS] vector goes into that model's trajectory
([N, E, D] float16, a `RowFile` on disk or an array), and the last epoch's class probabilities
are kept for inference. Rows are always in the fixed order train, validation, test.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from src.data.batches import length_sorted_batches, shuffled_batches
from src.data.texts import TokenizedTexts
from src.errors import UserError
from src.runtime import to_device
from src.stage1.plm import load_classifier
from src.stage1.stage1_step import clip_and_step, forward_backward, forward_cls, lr_lambda, stage1_optimizer
from src.stage1.trusted import NOT_TRAINED


def new_classifiers(model_name: str, num_classes: int, n_model: int, seed: int) -> list:
    """The M classifiers stage 1 starts from: the pretrained body, a differently seeded head each."""
    models = []
    for m in range(n_model):
        torch.manual_seed(seed * 1000 + m)  # a different head for each model
        models.append(load_classifier(model_name, num_classes))
    return models


@contextlib.contextmanager
def out_of_memory_as_error(config):
    """Running out of host or GPU memory in stage 1 is one line naming the settings that size
    it (`config`: a Config), not a traceback."""
    try:
        yield
    except (MemoryError, RuntimeError) as exc:  # torch.OutOfMemoryError is a RuntimeError
        if isinstance(exc, torch.OutOfMemoryError):
            where = "GPU"
        elif isinstance(exc, MemoryError) or "can't allocate memory" in str(exc):  # torch's CPU allocator
            where = "host"
        else:
            raise
        eval_size = "" if config.eval_batch_size is None else f" {config.eval_batch_size}"
        raise UserError(f"stage 1 ran out of {where} memory with --n_model {config.n_model}, --train_batch_size "
                        f"{config.train_batch_size}, --eval_batch_size{eval_size or ' (default)'}; lower them, or "
                        f"--max_length") from None


@dataclass(frozen=True)
class Stage1Settings:
    """What stage 1 trains with; all of it is part of the stage-1 cache key (`asdict`)."""

    epochs: int
    batch_size: int
    eval_batch_size: int  # the embedding and prediction passes'
    lr: float
    weight_decay: float = 0.0
    alpha_t_hi: float = 5.0  # the co-regularisation weight after the first E/10 epochs
    clip_gradient_norm: float = 1.0
    lr_schedule: str = "linear"  # or "restart" (src/stage1/stage1_step.py: lr_lambda)
    precision: str = "fp32"
    seed: int = 0


@dataclass
class Stage1Result:
    # per model, [N, E, D] float16 (rows train | validation | test): each example's [CLS]
    # embedding at every epoch, an array or what `new_trajectory` made (e.g. a file on disk)
    embeddings: list
    probs: np.ndarray  # [M, N, C] float32, softmax of the last-epoch classifiers
    history: list[dict] = field(default_factory=list)  # per epoch: loss, val accuracy, seconds
    plm_seconds: float = 0.0  # wall time in the language models' passes and optimiser steps
    # (on CUDA, kernels run asynchronously: this counts launch time until the next sync)
    host_mb: dict = field(default_factory=dict)  # resident host memory at points of the setup


class EagerSteps:
    """Stage 1's work on the models, as a reader expects it: one co-regularised update per
    training batch (`train`), every model's forward pass per embedding batch (`embed`).

    The speed layer hands `train_stage1` a subclass that runs the same
    maths faster; this one moves the models to `device` and builds the optimizer (`stage1_optimizer`).
    """

    def __init__(self, models: list, texts: TokenizedTexts, train_labels: np.ndarray, settings: Stage1Settings,
                 device: torch.device, runners: list | None = None,
                 optimizer: torch.optim.Optimizer | None = None) -> None:
        self.models = [model.to(device) for model in models]
        self.runners = runners or self.models  # what is called: the models, or their compiled forms
        self.optimizer = optimizer or stage1_optimizer(self.models, settings.lr, settings.weight_decay)
        self.texts, self.train_labels = texts, train_labels
        self.device, self.precision, self.clip_gradient_norm = device, settings.precision, settings.clip_gradient_norm
        self.host_mb: dict = {}  # resident host memory at points of the set-up (the speed layer's)

    def batch(self, index: np.ndarray) -> dict:
        return self.texts.batch(index, self.device)

    def labels(self, index: np.ndarray) -> torch.Tensor:
        return to_device(torch.as_tensor(self.train_labels[index]), self.device)

    def train(self, index: np.ndarray, alpha: float, weight: float = 1.0) -> torch.Tensor:
        """One update on the training rows `index` (their loss times `weight`); returns that loss
        (on the device)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = forward_backward(self.runners, self.batch(index), self.labels(index), alpha, weight,
                                device=self.device, precision=self.precision)
        clip_and_step(self.optimizer, self.clip_gradient_norm)
        self.optimizer.zero_grad(set_to_none=True)  # no gradients held between steps
        return loss

    def embed(self, index: np.ndarray) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per model, [CLS] vectors [B, D] and logits [B, C] of the rows `index` (eval mode)."""
        batch = self.batch(index)
        return [forward_cls(runner, batch, self.device, self.precision) for runner in self.runners]

    def host_memory(self) -> dict | None:
        return None

    def embedding_batches(self, batches: list) -> list:
        """The embedding batches this process runs: all (one rank of torchrun: its share)."""
        return batches

    def gather(self, outputs: tuple[torch.Tensor, torch.Tensor], batches: list) -> tuple[torch.Tensor, torch.Tensor]:
        """The embedding pass's (cls, probs) with every process's rows: here, this one's."""
        return outputs


@torch.inference_mode()
def embed(steps: EagerSteps, n: int, batches) -> tuple[torch.Tensor, torch.Tensor]:
    """[CLS] embeddings [M, N, D] (float16) and class probabilities [M, N, C] of every example."""
    cls_out, prob_out = None, None
    for model in steps.models:
        model.eval()
    for index in batches:
        outputs = steps.embed(index)
        if cls_out is None:  # allocate once the sizes are known
            (cls, logits) = outputs[0]
            cls_out = torch.empty(len(outputs), n, cls.shape[-1], dtype=torch.float16, device=steps.device)
            prob_out = torch.empty(len(outputs), n, logits.shape[-1], dtype=torch.float32, device=steps.device)
        where = to_device(torch.as_tensor(index), steps.device)
        for m, (cls, logits) in enumerate(outputs):
            cls_out[m, where] = cls.to(torch.float16)
            prob_out[m, where] = logits.float().softmax(-1)
    return cls_out.cpu(), prob_out.cpu()


def train_epoch(steps: EagerSteps, batches, alpha: float, scheduler, show_progress: bool = False,
                ) -> tuple[torch.Tensor, float]:
    """One pass of co-regularised updates over `batches` (arrays of train rows).

    Returns the summed batch losses (a tensor on the device) and the seconds spent in the steps.
    Nothing here waits for the GPU (except the progress bar's loss, every 20 steps).
    """
    total_loss = torch.zeros((), device=steps.device)
    seconds = 0.0
    for step, index in enumerate(batches):
        tick = time.perf_counter()
        loss = steps.train(index, alpha)
        scheduler.step()
        seconds += time.perf_counter() - tick
        total_loss += loss
        if show_progress and step % 20 == 0 and hasattr(batches, "set_postfix"):  # a tqdm bar
            batches.set_postfix(loss=f"{loss.item():.3f}")
    return total_loss, seconds


def training_state(steps: EagerSteps, scheduler, epochs_done: int, history: list[dict], plm_seconds: float) -> dict:
    """Everything the rest of stage 1 depends on after `epochs_done` epochs, for a checkpoint: the
    models' weights, the optimizer's and the schedule's state, and the random state (dropout)."""
    state = {"epochs_done": epochs_done, "models": [model.state_dict() for model in steps.models],
             "optimizer": steps.optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "history": history, "plm_seconds": plm_seconds, "cpu_rng": torch.get_rng_state()}
    if steps.device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(steps.device)
    return state


def restore_training_state(state: dict, steps: EagerSteps, scheduler) -> tuple[int, list[dict], float]:
    """Load a `training_state` into `steps` and `scheduler`; returns (epochs done, history, plm seconds)."""
    for model, weights in zip(steps.models, state["models"], strict=True):
        model.load_state_dict(weights)
    steps.optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["cpu_rng"])
    if "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"], steps.device)
    return int(state["epochs_done"]), list(state["history"]), float(state["plm_seconds"])


def check_finite(where: str, loss: float, cls: torch.Tensor, probs: torch.Tensor) -> None:
    """An epoch whose loss, class probabilities or embeddings are not finite ends the run with one
    line: the weights diverged, and nothing after this means anything."""
    if not math.isfinite(loss):
        raise UserError(f"{where}: the training loss is {loss}; nothing was kept (lower --lr or "
                        f"--clip_gradient_norm, or try --precision fp32)")
    if not (torch.isfinite(probs).all() and torch.isfinite(cls).all()):  # weights broken by the last steps
        raise UserError(f"{where}: the models' class probabilities or embeddings are not finite (the weights "
                        f"diverged); nothing was kept (lower --lr or --clip_gradient_norm, or try --precision fp32)")


def train_stage1(
    models: list[torch.nn.Module],
    texts: TokenizedTexts,
    train_labels: np.ndarray,
    val_labels: np.ndarray,
    settings: Stage1Settings,
    *,
    device: torch.device | None = None,
    show_progress: bool = True,
    new_trajectory=None,
    speedups=None,
    checkpoint=None,
) -> Stage1Result:
    """Fine-tune `models` on the rows of `texts` that `train_labels` gives a label; embed all rows
    each epoch.

    `train_labels` [N_train + N_val]: the label each train and validation row trains with, -1
    (NOT_TRAINED) where it does not (src/stage1/trusted.py: validation rows only where checked by
    hand); `val_labels` [N_val] the validation rows' noisy labels, for the log.
    `new_trajectory(m, shape)` makes the store of model m's embeddings [N, E, D] float16, written
    as each epoch ends (e.g. a file, so that the process does not hold them); by default an array.
    `texts` holds train, validation and test rows in that order. `speedups` (the speed layer's
    `Stage1Speedups`) builds the step runner; without it the steps run as `EagerSteps`.
    `checkpoint` (src/storage/stage1_cache.py: `Stage1Checkpoint`) keeps the `training_state` of
    each finished epoch but the last; where it holds one, training continues from it, with the
    same updates as without the interruption (its trajectories reopened, not made anew).
    """
    device = device or torch.device("cpu")
    epochs, batch_size = settings.epochs, settings.batch_size
    n_val = len(val_labels)
    n_train = len(train_labels) - n_val
    n_all = len(texts)
    num_models = len(models)
    rng = np.random.default_rng([settings.seed, 1])
    trained = np.flatnonzero(train_labels != NOT_TRAINED)  # [R]; without checked rows: range(N_train)
    epoch_batches = [[trained[b] for b in shuffled_batches(len(trained), batch_size, rng)] for _ in range(epochs)]
    eval_batches = length_sorted_batches(texts.lengths, settings.eval_batch_size)
    steps = (EagerSteps(models, texts, train_labels, settings, device) if speedups is None else
             speedups.build(models, texts, train_labels, epoch_batches, eval_batches, settings, device))
    steps_per_epoch = len(epoch_batches[0])
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        steps.optimizer, lr_lambda(epochs * steps_per_epoch, steps_per_epoch, settings.lr_schedule))

    embeddings = None  # per model [N, E, D], made after the first embedding pass (which gives D)
    history, plm_seconds, first_epoch = [], 0.0, 0
    state = checkpoint.load() if checkpoint is not None else None
    if state is not None:  # an interrupted run of this stage 1: go on after its last finished epoch
        first_epoch, history, plm_seconds = restore_training_state(state, steps, scheduler)
        embeddings = [checkpoint.trajectory(m) for m in range(num_models)]
        tqdm.write(f"stage 1: continuing after epoch {first_epoch}/{epochs} from {checkpoint.path}")
    for epoch in range(first_epoch, epochs):
        start = time.perf_counter()
        alpha = 0.0 if epoch < epochs // 10 else settings.alpha_t_hi  # no co-regularisation at first
        for model in steps.models:
            model.train()
        batches = epoch_batches[epoch]
        bar = tqdm(batches, desc=f"stage 1 epoch {epoch + 1}/{epochs}", leave=False,
                   disable=not show_progress)
        total_loss, seconds = train_epoch(steps, bar, alpha, scheduler, show_progress)
        plm_seconds += seconds

        tick = time.perf_counter()
        mine = steps.embedding_batches(eval_batches)
        cls, probs = steps.gather(embed(steps, n_all, mine), mine)  # [M, N, D], [M, N, C] on the host
        plm_seconds += time.perf_counter() - tick  # (the copies to the host waited for the device)
        if embeddings is None:
            shape = (n_all, epochs, cls.shape[-1])
            embeddings = [np.empty(shape, np.float16) if new_trajectory is None else new_trajectory(m, shape)
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
            "host_mb": steps.host_memory(),  # resident at the epoch's end (the speed layer measures it)
        })
        check_finite(f"stage 1 epoch {epoch + 1}/{epochs}", history[-1]["train_loss"], cls, probs)
        tqdm.write(f"stage 1 epoch {epoch + 1}/{epochs}: loss {history[-1]['train_loss']:.4f}"
                   f"  val acc (noisy labels) {history[-1]['val_accuracy_noisy']:.4f}  {seconds:.1f}s")
        if checkpoint is not None and epoch + 1 < epochs:  # (the last epoch's result is the entry itself)
            checkpoint.save(training_state(steps, scheduler, epoch + 1, history, plm_seconds))
    steps.optimizer.zero_grad(set_to_none=True)  # gradients may be views of a graph's memory: let them go
    return Stage1Result(embeddings, probs.numpy(), history, plm_seconds, steps.host_mb)
