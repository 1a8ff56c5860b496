"""An array kept in a .npy file and read by rows, so that the process never holds it whole.

Stage 1's trajectories ([N, E, D] float16 per model: 290 MB for 20news with MiniLM, 1.4 GB at
WOS size) are written once an epoch and then read a few rows at a time (stage 2's batches) or a
chunk of rows at a time (dynamics, prior). Reads go through seek + readinto, not a memory map:
the pages of a mapped file that were touched count as the process's resident memory for as long
as the map lives, while plain reads leave them to the OS page cache.

`RowFile` indexes like the numpy array it stands for, for the forms used here: `rows[a:b]`
and `rows[index]` read into new arrays, `rows[:, j] = values` writes a column of every row.
Code written against that subset takes either one (tests pass plain arrays).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np

from src.storage.rows import row_chunks, rows_per_chunk


class RowFile:
    """A [N, *row_shape] array in the .npy file `path`, read and written by rows."""

    def __init__(self, path: str | Path, writable: bool = False) -> None:
        self.path = Path(path)
        self.writable = writable
        self._file = open(self.path, "r+b" if writable else "rb", buffering=0)  # noqa: SIM115 (kept open)
        try:
            version = np.lib.format.read_magic(self._file)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(self._file)
        except ValueError as exc:
            self._file.close()
            raise ValueError(f"{self.path}: not a .npy array ({exc})") from exc
        if fortran or not shape:
            self._file.close()
            raise ValueError(f"{self.path}: expected a C-ordered array with rows")
        self.offset = self._file.tell()  # where row 0 starts
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        if self.path.stat().st_size < self.offset + len(self) * self.row_bytes:
            self._file.close()
            raise ValueError(f"{self.path}: shorter than its {self.shape} array (cut off while written?)")

    @classmethod
    def create(cls, path: str | Path, shape: tuple[int, ...], dtype=np.float16) -> RowFile:
        """A new zero-filled file of `shape`, open for writing.

        Its disk blocks are allocated now: on a full disk this raises OSError (ENOSPC) here,
        where a sparse file would fail later as SIGBUS inside a mapped write (`__setitem__`).
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=tuple(shape))  # header + size
        except OSError as exc:  # (a write's error names no file)
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        rows = cls(path, writable=True)
        try:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(rows._file.fileno(), 0, path.stat().st_size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # else: left sparse, as before
                rows.close()
                raise OSError(exc.errno, exc.strerror, str(path)) from exc
        return rows

    @classmethod
    def from_array(cls, path: str | Path, array: np.ndarray) -> RowFile:
        """The file for `array`, written a chunk of rows at a time; open for reading."""
        rows = cls.create(path, array.shape, array.dtype)
        for start, chunk in row_chunks(array):
            rows._file.seek(rows.offset + start * rows.row_bytes)
            rows._file.write(np.ascontiguousarray(chunk).data)
        rows.close()
        return cls(path)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def _read_into(self, out: np.ndarray, start: int) -> None:
        """Rows start .. start + len(out) into `out` (C-contiguous)."""
        self._file.seek(self.offset + start * self.row_bytes)
        view = memoryview(out.reshape(-1).view(np.uint8))
        done = 0
        while done < len(view):  # a raw read may return fewer bytes than asked
            count = self._file.readinto(view[done:])
            if not count:
                raise OSError(f"{self.path}: file ends before row {start + len(out)}")
            done += count

    def __getitem__(self, key) -> np.ndarray:
        """`rows[a:b]` (step 1) or `rows[index]` (1-D integers): a new array of those rows."""
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                raise IndexError("RowFile: slices of step 1 only")
            out = np.empty((max(0, stop - start), *self.shape[1:]), self.dtype)
            if len(out):
                self._read_into(out, start)
            return out
        index = np.asarray(key)
        if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
            raise IndexError("RowFile: index with a slice or a 1-D integer array")
        index = np.where(index < 0, index + len(self), index)
        if len(index) and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"RowFile: row index out of range for {len(self)} rows")
        if len(index) > 1 and index[-1] - index[0] == len(index) - 1 and np.all(np.diff(index) == 1):
            return self[int(index[0]) : int(index[-1]) + 1]  # a contiguous range: one read
        out = np.empty((len(index), *self.shape[1:]), self.dtype)
        for i, row in enumerate(index.tolist()):
            self._read_into(out[i], row)
        return out

    def __setitem__(self, key, values: np.ndarray) -> None:
        """`rows[:, j] = values`: column j of every row (values [N, *row_shape[1:]])."""
        if not (self.writable and isinstance(key, tuple) and len(key) == 2 and key[0] == slice(None)
                and isinstance(key[1], (int, np.integer))):
            raise TypeError("RowFile: only `rows[:, j] = values` on a file opened for writing")
        values = np.asarray(values, dtype=self.dtype)
        step = rows_per_chunk(self)
        for start in range(0, len(self), step):
            stop = min(len(self), start + step)
            # A map of just these rows: only their pages are touched, and unmapping (del)
            # leaves them to the page cache.
            chunk = np.memmap(self.path, self.dtype, "r+", self.offset + start * self.row_bytes,
                              (stop - start, *self.shape[1:]))
            chunk[:, key[1]] = values[start:stop]
            del chunk

    def close(self) -> None:
        self._file.close()

    def __repr__(self) -> str:
        return f"RowFile({str(self.path)!r}, shape={self.shape}, dtype={self.dtype})"
