"""CUDA graphs: stage 1's full training batches and embedding passes, one graph per (padded
width, masked) key, and stage 2's full-batch update, each replayed with one launch instead of
hundreds; and the capture itself (`capture_cuda_graph`)."""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Any, Callable

import numpy as np
import torch

from src.accel.models import pass_no_mask_without_padding
from src.data.texts import TokenizedTexts
from src.stage1.stage1_step import clip_and_step, forward_backward, forward_cls
from src.stage2.network import DirichletVAE
from src.stage2.train_stage2 import stage2_update

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


def copy_to(buffer: torch.Tensor, host: torch.Tensor) -> None:
    """Copy a host tensor into a (device) buffer in place, without the host waiting (`to_device`)."""
    if buffer.device.type == "cuda":
        buffer.copy_(host.pin_memory(), non_blocking=True)
    else:
        buffer.copy_(host)


def capture_cuda_graph(step: Callable[[], Any], optimizer: torch.optim.Optimizer | None = None,
                       warmup_steps: int = 3, pool=None) -> tuple[torch.cuda.CUDAGraph, Any]:
    """One call of `step` captured as a CUDA graph; returns the graph and what the captured
    call returned (its tensors are rewritten by each replay).

    Capturing needs a few eager warm-up calls first (on a side stream: lazy initialisation,
    an optimizer's state). When `step` is a training update through `optimizer` (built with
    capturable=True), the warm-up updates are undone: weights and optimizer state are put back
    as they were (state created by the warm-up is zeroed: a fresh optimizer's), so the graph's
    first replay is the first update. Afterwards the parameters' .grad are the graph's own
    buffers: an eager step in between must first set them to None (or zero them). If a warm-up
    call fails, everything is put back the same way and the error is raised (as it is when the
    capture fails, which changes nothing).
    `pool` lets graphs that never run at the same time share their memory.
    """
    params = [] if optimizer is None else [p for group in optimizer.param_groups for p in group["params"]]
    saved_params = [p.detach().clone() for p in params]
    saved_state = {} if optimizer is None else {
        p: {k: v.clone() for k, v in state.items() if isinstance(v, torch.Tensor)}
        for p, state in optimizer.state.items()}

    def undo_updates() -> None:
        if optimizer is None:
            return
        with torch.no_grad():
            for p, value in zip(params, saved_params):
                p.copy_(value)
            for p, state in optimizer.state.items():
                for key, value in state.items():
                    if not isinstance(value, torch.Tensor):
                        continue
                    if p in saved_state:
                        value.copy_(saved_state[p][key])
                    else:
                        value.zero_()
        optimizer.zero_grad(set_to_none=True)

    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup_steps):
                if optimizer is not None:
                    optimizer.zero_grad(set_to_none=True)
                step()
        torch.cuda.current_stream().wait_stream(side)
    except Exception:
        torch.cuda.synchronize()
        undo_updates()
        raise
    undo_updates()
    # Capturing records kernels without running them: nothing more to undo, so the copies go
    # (and the side stream's cached blocks, of no use to the other streams).
    saved_params.clear()
    saved_state.clear()
    torch.cuda.empty_cache()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool):
        out = step()
    return graph, out


def captured_or_none(what: str, build):
    """`build()`, or None with a warning that `what` runs without CUDA graphs where capturing
    fails (the caller then runs those steps eagerly, the same way)."""
    try:
        return build()
    except RuntimeError as exc:
        warnings.warn(f"{what} without CUDA graphs ({type(exc).__name__}: {exc})", stacklevel=3)
        return None


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

    A MiniLM step of two models is about a thousand small kernels, and launching them one by one
    takes the host longer than the GPU takes to run them: eager training waits on the host. A
    graph is replayed with one launch. Shapes are fixed in a graph, so there is one per padded width (`keys`, from
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


class GraphedStep:
    """The stage-2 update of a full batch (forward, backward, Adam) replayed as one CUDA graph.

    A step of two small VAEs is ~200 kernels of a few microseconds each, so on a GPU the host's
    launching is the cost, not the arithmetic. Each call copies the batch into the graph's
    fixed input buffers and replays it. The uniform draws of the Dirichlet samples are inputs
    drawn outside, in the eager order, so graphed and eager training see the same numbers.
    The optimizer must be built with capturable=True; the warm-up updates that capturing needs
    are undone (`capture_cuda_graph`).
    """

    def __init__(self, vaes: list[DirichletVAE], optimizer: torch.optim.Optimizer,
                 noisy_onehot: torch.Tensor, priors: list[torch.Tensor], beta: float,
                 batch_size: int, input_dim: int, z_dtype: torch.dtype = torch.float32) -> None:
        device = noisy_onehot.device
        num_classes = noisy_onehot.shape[1]
        self.z = [torch.zeros(batch_size, input_dim, dtype=z_dtype, device=device) for _ in vaes]
        self.eps = [torch.full((batch_size, num_classes), 0.5, device=device) for _ in vaes]
        self.local = torch.arange(batch_size, device=device)
        self.lambda_t = torch.zeros((), device=device)

        def step() -> torch.Tensor:
            return stage2_update(vaes, optimizer, self.z, self.local, noisy_onehot, priors, beta,
                                 self.lambda_t, self.eps)

        self.graph, self.loss = capture_cuda_graph(step, optimizer)

    def __call__(self, zs: list[torch.Tensor], local: torch.Tensor, eps: list[torch.Tensor]) -> torch.Tensor:
        for buffer, value in zip([*self.z, *self.eps, self.local], [*zs, *eps, local]):
            buffer.copy_(value)
        self.graph.replay()
        return self.loss
