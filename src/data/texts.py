"""Tokenised texts: every split tokenised once (padded on the right, true lengths kept), and
cut to each batch's longest text when a batch is taken."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from src.runtime import to_device


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
        scaled-dot-product attention takes (the speed layer's `accepts_prepared_mask`).
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


def encode(tokenizer, texts: list[str], max_length: int, pad_to_max_length: bool = False,
           chars_per_token: int = 8, chunk_size: int = 1024) -> TokenizedTexts:
    """Tokenise every text once (truncated, padded on the right), keeping the true lengths.

    The tokenizer reads a whole text even when it keeps only `max_length` tokens, and 20news
    has messages of 50,000+ characters; so each text is first cut to `max_length *
    chars_per_token` characters. Exact: a cut text whose prefix gives fewer than `max_length`
    tokens is tokenised again whole. Texts go through the tokenizer `chunk_size` at a time into
    one preallocated array: the tokenizer's per-text objects (tokens, offsets, overflow) for a
    whole data set at once would hold far more host memory than the ids.
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
