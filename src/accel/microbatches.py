"""Length-sorted micro-batches: a training batch run as groups of similar length whose gradients
add up to the batch's, with less padding."""

from __future__ import annotations

import numpy as np

# Fixed cost of one extra micro-batch, in tokens: a MiniLM forward+backward in fp32 on a CPU
# costs a fixed time plus a time per token, and the fixed part is worth about this many padding
# tokens (benchmarks/RESULTS.md). Where that does not hold (bf16, GPUs) `--split_batches auto`
# leaves batches whole (src/runtime.py: resolve_split_batches).
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
