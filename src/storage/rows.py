"""Reading a trajectory store a chunk of rows at a time: the plain functions the method's stages
use on stage 1's per-model [N, E, D] trajectories, whether numpy arrays or the speed layer's
on-disk `RowFile`s (anything that slices like an array by rows)."""

from __future__ import annotations

import numpy as np

# Rows per chunk when a whole column is written or read: a few MB at a time.
CHUNK_BYTES = 8 << 20


def rows_per_chunk(rows) -> int:
    """How many rows of `rows` (a RowFile or an array) make about CHUNK_BYTES."""
    row_bytes = int(np.prod(rows.shape[1:], dtype=np.int64)) * np.dtype(rows.dtype).itemsize
    return max(1, CHUNK_BYTES // max(1, row_bytes))


def row_chunks(rows, stop: int | None = None, chunk_rows: int | None = None):
    """(start, rows[start : start + chunk]) for the first `stop` rows of a RowFile or an array,
    `chunk_rows` at a time (by default about CHUNK_BYTES of rows)."""
    stop = len(rows) if stop is None else stop
    chunk_rows = chunk_rows or rows_per_chunk(rows)
    for start in range(0, stop, chunk_rows):
        yield start, rows[start : min(stop, start + chunk_rows)]


def column(rows, index: int, stop: int | None = None) -> np.ndarray:
    """`rows[:stop, index]` as a new array, read a chunk of rows at a time (a RowFile or an array):
    e.g. one epoch's embeddings [stop, D] out of a trajectory file [N, E, D]."""
    stop = len(rows) if stop is None else stop
    out = np.empty((stop, *rows.shape[2:]), rows.dtype)
    for start, chunk in row_chunks(rows, stop):
        out[start : start + len(chunk)] = chunk[:, index]
    return out
