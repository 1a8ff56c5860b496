"""Forms of a training batch that run faster with the same result: length-sorted micro-batches
whose gradients add up to the batch's, and an attention mask prepared in the form SDPA takes."""

from __future__ import annotations

import numpy as np
import torch

# Fixed cost of one extra micro-batch, in tokens: a MiniLM forward+backward in fp32 on a CPU
# costs a fixed time plus a time per token, and the fixed part is worth about this many padding
# tokens (benchmarks/RESULTS.md). Where that does not hold (bf16, GPUs) `--split_batches auto`
# leaves batches whole (src/utils/common.py: resolve_split_batches).
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
