"""Tokenised texts (padded once, cut to each batch's longest text) and the orders in which the
stages visit them: shuffled training batches, length-sorted evaluation batches, and the
length-sorted micro-batches a training batch may be split into."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from src.utils.common import to_device


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
