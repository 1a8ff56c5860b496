"""Stage 1: co-regularised fine-tuning of M classifiers that records every epoch's embeddings.

After each epoch every train, validation and test example is embedded by every model
(eval mode, no dropout): the last layer's [CLS] vector goes into that model's trajectory
([N, E, D] float16, a `RowFile` on disk or an array), and the last epoch's class probabilities
are kept for inference. Rows are always in the fixed order train, validation, test.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from src.model.plm import compile_model, pass_no_mask_without_padding
from src.utils.common import (
    autocast,
    capture_cuda_graph,
    captured_or_none,
    copy_to,
    fused_optimizer,
    host_memory_mb,
    release_freed_host_memory,
    to_device,
)
from src.utils.row_file import RowFile


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


@dataclass
class TokenizedTexts:
    """All texts padded once by the tokenizer; batches are sliced to their longest member."""

    input_ids: torch.Tensor  # [N, L] padded with the tokenizer's pad id
    lengths: np.ndarray  # [N] true lengths

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, index: np.ndarray, device: torch.device, pad_to_max: bool = False,
              prepared_mask: bool = False) -> dict:
        """Rows `index`, trimmed to the batch's longest text (dynamic padding).

        A batch without padding gets no attention mask at all: the model then attends
        everywhere without reading a mask. Transfers are asynchronous: on CUDA a training step
        never waits for the GPU (a blocking copy, or the library reading a mask's values on the
        host to choose its attention kernel, would make every step wait for the last one;
        `to_device`).
        `prepared_mask` hands the mask over already in the [B, 1, 1, L] boolean form that
        scaled-dot-product attention takes (see `accepts_prepared_mask`).
        """
        lengths = self.lengths[index]
        width = self.input_ids.shape[1] if pad_to_max else int(lengths.max())
        ids, mask = self.rows(index, width)
        batch = {"input_ids": to_device(ids, device)}
        if lengths.min() < width:
            mask = mask[:, None, None, :] if prepared_mask else mask.long()
            batch["attention_mask"] = to_device(mask, device)
        return batch

    def rows(self, index: np.ndarray, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Host tensors of rows `index` cut to `width` tokens: ids [B, width] and the boolean
        mask of real tokens [B, width]."""
        ids = self.input_ids[torch.as_tensor(index), :width]
        mask = torch.arange(width)[None, :] < torch.as_tensor(self.lengths[index])[:, None]
        return ids, mask


@torch.no_grad()
def accepts_prepared_mask(model: torch.nn.Module) -> bool:
    """Whether `model` gives the same outputs for a [B, 1, 1, L] boolean attention mask as for
    the usual [B, L] one (Hugging Face models with SDPA attention take a prepared mask as is;
    eager attention would add it as a number). Checked on a two-row padded input."""
    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        return False
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ids = torch.tensor([[1, 2, 3, 4, 5], [1, 2, 3, 0, 0]], device=device) % model.config.vocab_size
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], device=device)
    try:
        usual = model(input_ids=ids, attention_mask=mask).logits
        prepared = model(input_ids=ids, attention_mask=mask.bool()[:, None, None, :]).logits
        same = usual.shape == prepared.shape and torch.allclose(usual, prepared, atol=1e-5, rtol=1e-4)
    except Exception:  # noqa: BLE001 - any model that cannot take it keeps the usual mask
        same = False
    model.train(was_training)
    return bool(same)


def encode(tokenizer, texts: list[str], max_length: int, pad_to_max_length: bool = False,
           chars_per_token: int = 8, chunk_size: int = 1024) -> TokenizedTexts:
    """Tokenise every text once (truncated, padded on the right), keeping the true lengths.

    The tokenizer reads a whole text even when it keeps only `max_length` tokens, and 20news
    has messages of 50,000+ characters; so each text is first cut to `max_length *
    chars_per_token` characters. Exact: a cut text whose prefix gives fewer than `max_length`
    tokens is tokenised again whole. Texts go through the tokenizer `chunk_size` at a time into
    one preallocated array: the tokenizer's per-text objects (tokens, offsets, overflow) for all
    of 20news took 1 GB of host memory at once.
    """
    tokenizer.padding_side = "right"  # batches are later trimmed on the right
    limit = max_length * chars_per_token
    kwargs = {"truncation": True, "max_length": max_length, "padding": "max_length", "return_tensors": "np",
              "return_token_type_ids": False, "return_attention_mask": True}
    ids = np.empty((len(texts), max_length), dtype=np.int64)
    lengths = np.empty(len(texts), dtype=np.int64)
    for start in range(0, len(texts), chunk_size):
        chunk = texts[start : start + chunk_size]
        out = tokenizer([t[:limit] for t in chunk], **kwargs)
        chunk_ids, chunk_lengths = out["input_ids"], out["attention_mask"].sum(1)
        redo = [i for i, t in enumerate(chunk) if len(t) > limit and chunk_lengths[i] < max_length]
        if redo:
            again = tokenizer([chunk[i] for i in redo], **kwargs)
            chunk_ids[redo], chunk_lengths[redo] = again["input_ids"], again["attention_mask"].sum(1)
        ids[start : start + len(chunk)] = chunk_ids
        lengths[start : start + len(chunk)] = chunk_lengths
    width = max_length if pad_to_max_length or len(texts) == 0 else int(lengths.max())
    return TokenizedTexts(torch.from_numpy(np.ascontiguousarray(ids[:, :width])), lengths)


def length_sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Evaluation batches of similar lengths (least padding); callers scatter back by index."""
    order = np.argsort(lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


# Fixed cost of one extra micro-batch, in tokens: on 2 CPU cores a MiniLM forward+backward in
# fp32 takes about 20 ms + 0.41 ms per token, so a micro-batch pays for itself once it saves ~50
# padding tokens. Where that does not hold (bf16, GPUs) `--split_batches auto` leaves batches
# whole (src/utils/common.py: resolve_split_batches).
MICROBATCH_COST_TOKENS = 64


def split_by_length(lengths: np.ndarray, cost_per_part: float) -> list[np.ndarray]:
    """Positions of one batch in length-sorted groups, minimising padded tokens + cost per group.

    A group is padded to its longest member, so it costs len(group) * max_length tokens. The
    best partition into contiguous runs of the sorted order is found exactly (O(B^2)).
    """
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order].astype(np.float64)
    n = len(order)
    best = np.zeros(n + 1)  # best[j]: cheapest split of the j shortest
    start_of = np.zeros(n + 1, dtype=np.int64)  # where the last group of that split starts
    for j in range(1, n + 1):
        starts = np.arange(j)
        costs = best[:j] + (j - starts) * sorted_lengths[j - 1] + cost_per_part
        start_of[j] = int(np.argmin(costs))
        best[j] = costs[start_of[j]]
    groups, j = [], n
    while j > 0:
        groups.append(order[start_of[j] : j])
        j = start_of[j]
    return groups[::-1]


def shuffled_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def coregularized_loss(logits: torch.Tensor, labels: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """mean_m CE(f_m, y) + alpha * mean_m KL(p_mean || p_m).  logits: [M, B, C], labels: [B].

    alpha may be a tensor (a CUDA graph's input): the KL term is then always computed."""
    logits = logits.float()
    num_models = logits.shape[0]
    ce = F.cross_entropy(logits.flatten(0, 1), labels.repeat(num_models))
    if num_models == 1 or (not isinstance(alpha, torch.Tensor) and alpha == 0):
        return ce
    log_p = F.log_softmax(logits, dim=-1)  # [M, B, C]
    log_mean = torch.logsumexp(log_p, dim=0) - np.log(num_models)  # [B, C]
    kl = (log_mean.exp() * (log_mean - log_p)).sum(-1).mean()  # mean over models and batch
    return ce + alpha * kl


def lr_lambda(total_steps: int, steps_per_epoch: int, schedule: str, warmup_share: float = 0.06):
    """Linear warm-up over 6% of the steps, then linear decay to 0.

    `restart` reproduces the reference code's effective schedule: its second scheduler call
    each epoch reset the step counter, so the warm-up restarted every epoch.
    """
    warmup = max(1, int(warmup_share * total_steps))

    def factor(step: int) -> float:
        if schedule == "restart":
            step = step % steps_per_epoch
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


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


def forward_cls(model, batch: dict, device: torch.device, precision: str,
                cache: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """One model's [CLS] vectors [B, D] and logits [B, C] on a batch."""
    last = LastHiddenState(model)
    try:
        with autocast(device, precision, cache):
            logits = model(**batch).logits
    finally:
        last.remove()
    return last.pop()[:, 0], logits


class GraphedEmbedding:
    """The embedding passes' batches (every model's forward, eval mode) replayed as CUDA graphs,
    one per graph key (`graph_keys`): `embed`, like training, is otherwise bound by the host's
    launching.
    A batch shorter than `batch_size` is filled up with copies of its first row (outputs
    dropped). `pool`: the training graphs' memory pool, which these share (never run at once).
    """

    def __init__(self, runners: list, keys: list[GraphKey], batch_size: int, *, device: torch.device,
                 precision: str, pool) -> None:
        self.batch_size = batch_size
        for runner in runners:
            runner.eval()

        def forward_of(batch: dict):
            @torch.inference_mode()
            def forward() -> list[tuple[torch.Tensor, torch.Tensor]]:
                return [forward_cls(runner, batch, device, precision, cache=False) for runner in runners]
            return forward

        self.inputs, self.graphs, self.outputs = capture_by_key(keys, batch_size, device, forward_of,
                                                                warmup_steps=2, pool=pool)

    def key_for(self, index: np.ndarray, lengths: np.ndarray) -> GraphKey | None:
        return None if len(index) > self.batch_size else graph_for(self.graphs, lengths[index])

    def __call__(self, texts: TokenizedTexts, index: np.ndarray,
                 key: GraphKey) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per model, [CLS] vectors and logits of rows `index` (rewritten by the next replay)."""
        filled = np.concatenate([index, np.full(self.batch_size - len(index), index[0])])
        load_rows(texts, filled, self.inputs[key])
        self.graphs[key].replay()
        return [(cls[: len(index)], logits[: len(index)]) for cls, logits in self.outputs[key]]


class LastHiddenState:
    """The encoder's last layer [B, L, D], caught on its way to the classification head.

    Asking the model for all its hidden states instead would keep every layer's [B, L, D]
    alive until the batch ends.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        encoder = getattr(model, "_orig_mod", model).base_model  # a compiled model's original
        self.value = None
        self.handle = encoder.register_forward_hook(self._keep)

    def _keep(self, module, args, out) -> None:
        self.value = out[0]

    def pop(self) -> torch.Tensor:
        value, self.value = self.value, None
        return value

    def remove(self) -> None:
        self.handle.remove()


def stage1_optimizer(models: list[torch.nn.Module], lr: float, weight_decay: float = 0.0,
                     capturable: bool = False) -> torch.optim.Optimizer:
    """AdamW over the models, one parameter group per model (`train_epoch` clips each group).

    `capturable` (CUDA graphs): each group's learning rate is a tensor on the models' device,
    which the graphs read and the scheduler updates in place."""
    groups = [{"params": list(model.parameters())} for model in models]
    if capturable:
        for group in groups:
            group["lr"] = torch.tensor(float(lr), device=group["params"][0].device)
        return fused_optimizer(torch.optim.AdamW, groups, lr=lr, weight_decay=weight_decay, capturable=True)
    return fused_optimizer(torch.optim.AdamW, groups, lr=lr, weight_decay=weight_decay)


def forward_backward(runners: list, batch: dict, labels: torch.Tensor, alpha: float | torch.Tensor,
                     weight: float, *, device: torch.device, precision: str, cache: bool = True) -> torch.Tensor:
    """Co-regularised loss of one (micro-)batch, times `weight`, back-propagated into the
    models' gradients; returns it detached."""
    with autocast(device, precision, cache):
        logits = torch.stack([run(**batch).logits for run in runners])  # [M, B, C]
    loss = coregularized_loss(logits, labels, alpha) * weight
    loss.backward()
    return loss.detach()


def clip_and_step(optimizer: torch.optim.Optimizer, clip_gradient_norm: float) -> None:
    for group in optimizer.param_groups:  # one clip per model: each model is its own group
        torch.nn.utils.clip_grad_norm_(group["params"], clip_gradient_norm)
    optimizer.step()


# CUDA graphs are captured for training batches padded to a multiple of this many tokens.
GRAPH_WIDTH_STEP = 32
# A padded width gets a graph only if at least this many full batches of the run have it
# (capturing costs a few eager steps).
GRAPH_MIN_BATCHES = 8


# A CUDA graph's key: (width, masked). A masked graph takes batches padded up to its width; an
# unmasked one only batches whose every text has exactly its width (texts cut at the maximum
# length), which then run without a mask, as eager steps do: the flash attention kernel, where a
# mask sends SDPA to the slower memory-efficient one.
GraphKey = tuple[int, bool]


def graph_keys(batch_lengths: list[np.ndarray], max_width: int, step: int = GRAPH_WIDTH_STEP,
               min_batches: int = GRAPH_MIN_BATCHES) -> list[GraphKey]:
    """The graphs worth capturing, given the lengths of the texts of each of the run's batches:
    a batch whose texts all have `max_width` tokens counts for the unmasked graph of that width,
    any other for the masked graph of its longest text rounded up to a multiple of `step` (at
    most `max_width`); a key is kept when at least `min_batches` batches count for it."""

    def key_of(lengths: np.ndarray) -> GraphKey:
        if int(lengths.min()) == max_width:  # nothing padded
            return max_width, False
        return min(-(-int(lengths.max()) // step) * step, max_width), True

    counts = Counter(key_of(lengths) for lengths in batch_lengths)
    return sorted(key for key, count in counts.items() if count >= min_batches)


def graph_for(keys, lengths: np.ndarray) -> GraphKey | None:
    """The graph of `keys` for a batch of texts of `lengths`: the unmasked one of their width if
    none is padded, else the narrowest masked one that holds the longest (None if none does)."""
    longest = int(lengths.max())
    if int(lengths.min()) == longest and (longest, False) in keys:
        return longest, False
    return min(((width, True) for width, masked in keys if masked and width >= longest), default=None)


def describe_keys(keys) -> str:
    """Graph keys for a log line: widths, an unmasked graph's marked "(no mask)"."""
    return "[" + ", ".join(f"{w}{'' if masked else ' (no mask)'}" for w, masked in sorted(keys)) + "]"


def load_rows(texts: TokenizedTexts, index: np.ndarray, buffers: dict) -> None:
    """Rows `index` into a graph's input buffers (`input_buffers`): ids [B, W] and, in a masked
    graph, the prepared mask [B, 1, 1, W]."""
    host_ids, host_mask = texts.rows(index, buffers["input_ids"].shape[1])
    copy_to(buffers["input_ids"], host_ids)
    if "attention_mask" in buffers:
        copy_to(buffers["attention_mask"], host_mask[:, None, None, :])


def scheduler_updates_tensor_lr() -> bool:
    """Whether this torch's schedulers write a tensor learning rate in place (graphs read the
    tensor they were captured with; older versions replaced it with a new one)."""
    param = torch.zeros(1, requires_grad=True)
    lr = torch.tensor(1.0)
    optimizer = torch.optim.SGD([{"params": [param], "lr": lr}])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)
    optimizer.step()
    scheduler.step()
    return optimizer.param_groups[0]["lr"] is lr and float(lr) == 0.5 and float(scheduler.base_lrs[0]) == 1.0


def cuda_graphs_blocker(device: torch.device, prepared_mask: bool) -> str | None:
    """Why stage-1 CUDA graphs cannot be used here, or None when they can. `prepared_mask`:
    whether the models take one (`accepts_prepared_mask`)."""
    if device.type != "cuda":
        return "not on CUDA"
    if not prepared_mask:
        return "the model does not take a prepared attention mask"
    if not scheduler_updates_tensor_lr():
        return "this torch's scheduler replaces a tensor learning rate"
    return None


def input_buffers(batch_size: int, key: GraphKey, device: torch.device) -> dict:
    """A graph's input buffers, the model's keyword arguments: ids [B, W] and, in a masked graph,
    the prepared mask [B, 1, 1, W] (`load_rows` fills them)."""
    width, masked = key
    buffers = {"input_ids": torch.zeros(batch_size, width, dtype=torch.long, device=device)}
    if masked:
        buffers["attention_mask"] = torch.ones(batch_size, 1, 1, width, dtype=torch.bool, device=device)
    return buffers


def capture_by_key(keys: list[GraphKey], batch_size: int, device: torch.device, call_of,
                   **capture_options) -> tuple[dict, dict, dict]:
    """One CUDA graph per key, each reading its own input buffers (`input_buffers`, filled by
    `load_rows`): `call_of(buffers)` gives the call to capture (`capture_cuda_graph` with
    `capture_options`). Widest first: the others fit in its memory. Returns the input buffers,
    the graphs and what each captured call returned, by key."""
    if not all(masked for _, masked in keys):
        pass_no_mask_without_padding()  # else transformers may build a mask while capturing
    inputs, graphs, outputs = {}, {}, {}
    for key in sorted(keys, reverse=True):
        inputs[key] = input_buffers(batch_size, key, device)
        graphs[key], outputs[key] = capture_cuda_graph(call_of(inputs[key]), **capture_options)
    return inputs, graphs, outputs


class GraphedStage1Steps:
    """Full stage-1 training batches (forward, backward, clipping, AdamW) replayed as CUDA graphs.

    A MiniLM step of two models is ~1,250 kernels for ~18 ms of H100 work, but launching them
    one by one takes the host ~44 ms: eager training waits on the host. A graph is replayed
    with one launch. Shapes are fixed in a graph, so there is one per padded width (`keys`, from
    `graph_keys`): a batch runs in the smallest graph at least as wide as its longest text, the
    extra positions masked out (the same maths as its own width), or, when none of its texts is
    padded, in the unmasked graph of their width. All graphs share
    one memory pool (they never run at once) and get their inputs by copy. The optimizer must
    come from `stage1_optimizer(..., capturable=True)`; the warm-up updates that capturing needs
    are undone (`capture_cuda_graph`). The models must take a prepared mask
    (`accepts_prepared_mask`): the library may not read a mask on the host inside a graph.
    """

    def __init__(self, runners: list, optimizer: torch.optim.Optimizer, keys: list[GraphKey], batch_size: int,
                 *, device: torch.device, precision: str, clip_gradient_norm: float) -> None:
        self.batch_size = batch_size
        self.alpha = torch.zeros((), device=device)
        self.labels = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.replays = 0
        self.pool = torch.cuda.graph_pool_handle()
        for runner in runners:
            runner.train()  # dropout is part of what is captured

        def step_of(batch: dict):
            def step() -> torch.Tensor:
                loss = forward_backward(runners, batch, self.labels, self.alpha, 1.0, device=device,
                                        precision=precision, cache=False)
                clip_and_step(optimizer, clip_gradient_norm)
                return loss
            return step

        self.inputs, self.graphs, self.losses = capture_by_key(keys, batch_size, device, step_of,
                                                               optimizer=optimizer, pool=self.pool)

    def key_for(self, index: np.ndarray, lengths: np.ndarray) -> GraphKey | None:
        """The graph a batch runs in (None: eagerly)."""
        return None if len(index) != self.batch_size else graph_for(self.graphs, lengths[index])

    def __call__(self, texts: TokenizedTexts, index: np.ndarray, labels: np.ndarray, key: GraphKey) -> torch.Tensor:
        """One update on the rows `index`; returns the loss (rewritten by the next replay)."""
        load_rows(texts, index, self.inputs[key])
        copy_to(self.labels, torch.as_tensor(labels))
        self.graphs[key].replay()
        self.replays += 1
        return self.losses[key]


def build_graphs(runners: list, optimizer: torch.optim.Optimizer, texts: TokenizedTexts, batches: list,
                 batch_size: int, *, device: torch.device, precision: str,
                 clip_gradient_norm: float) -> GraphedStage1Steps | None:
    """The graphs for the run's full `batches` (`graph_keys`); None, with a warning, where
    capturing fails (training then runs eagerly, the same way)."""
    keys = graph_keys([texts.lengths[b] for b in batches if len(b) == batch_size], texts.input_ids.shape[1])
    if not keys:
        return None
    return captured_or_none("stage 1 runs", lambda: GraphedStage1Steps(
        runners, optimizer, keys, batch_size, device=device, precision=precision,
        clip_gradient_norm=clip_gradient_norm))


def build_embedding_graphs(runners: list, texts: TokenizedTexts, batches: list, batch_size: int, pool, *,
                           device: torch.device, precision: str) -> GraphedEmbedding | None:
    """The embedding passes' graphs, one for each graph key of `batches` (all are used every
    epoch), in `pool`; None, with a warning, where capturing fails."""
    keys = graph_keys([texts.lengths[b] for b in batches], texts.input_ids.shape[1], min_batches=1)
    return captured_or_none("embedding passes run", lambda: GraphedEmbedding(
        runners, keys, batch_size, device=device, precision=precision, pool=pool))


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
        tqdm.write(f"stage 1 epoch {epoch + 1}/{epochs}: loss {history[-1]['train_loss']:.4f}"
                   f"  val acc (noisy labels) {history[-1]['val_accuracy_noisy']:.4f}  {seconds:.1f}s")
    optimizer.zero_grad(set_to_none=True)  # gradients may be views of the graphs' pool: let it go
    return Stage1Result(embeddings, probs.numpy(), history, plm_seconds, host_mb)
