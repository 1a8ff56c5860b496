"""Stage 1 as CUDA graphs: full training batches and the embedding passes, each replayed with
one launch instead of hundreds, one graph per (padded width, masked) key."""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from src.data.texts import TokenizedTexts
from src.model.plm import pass_no_mask_without_padding
from src.model.stage1_step import clip_and_step, forward_backward, forward_cls
from src.utils.common import capture_cuda_graph, captured_or_none, copy_to

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
