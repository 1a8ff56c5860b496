"""RowFile: an on-disk array read by rows gives what the array itself gives."""

from __future__ import annotations

import numpy as np
import pytest

from src.accel.host_memory import host_memory_mb
from src.storage import rows as row_reading
from src.storage.row_file import RowFile
from src.storage.rows import column


@pytest.fixture
def array() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((257, 3, 5)).astype(np.float16)  # [N, E, D]


def test_reads_equal_the_array(array, tmp_path):
    rows = RowFile.from_array(tmp_path / "a.npy", array)
    assert rows.shape == array.shape and rows.dtype == np.float16 and len(rows) == 257
    np.testing.assert_array_equal(rows[:], array)
    np.testing.assert_array_equal(rows[10:20], array[10:20])
    np.testing.assert_array_equal(rows[250:999], array[250:])  # clipped like numpy
    assert rows[5:5].shape == (0, 3, 5)
    for index in ([7, 2, 7, 256], [-1, 0], np.arange(30, 40), np.array([], dtype=np.int64)):
        np.testing.assert_array_equal(rows[np.asarray(index)], array[np.asarray(index)])
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), array)  # a plain .npy file


def test_column_writes_and_reads_by_chunks(array, tmp_path, monkeypatch):
    monkeypatch.setattr(row_reading, "CHUNK_BYTES", 7 * 30)  # 7 rows a chunk: uneven chunks
    rows = RowFile.create(tmp_path / "b.npy", array.shape)
    for epoch in (2, 0, 1):
        rows[:, epoch] = array[:, epoch]
    np.testing.assert_array_equal(RowFile(tmp_path / "b.npy")[:], array)
    np.testing.assert_array_equal(column(rows, 1, 100), array[:100, 1])
    np.testing.assert_array_equal(column(array, -1), array[:, -1])  # the same on an array


def test_bad_use_is_refused(array, tmp_path):
    rows = RowFile.from_array(tmp_path / "c.npy", array)
    with pytest.raises(IndexError):
        rows[np.array([257])]
    with pytest.raises(IndexError):
        rows[::2]
    with pytest.raises(TypeError):  # opened for reading
        rows[:, 0] = array[:, 0]
    (tmp_path / "d.npy").write_bytes(b"not an array")
    with pytest.raises(ValueError, match="not a .npy"):
        RowFile(tmp_path / "d.npy")
    whole = (tmp_path / "c.npy").read_bytes()
    (tmp_path / "e.npy").write_bytes(whole[:-30])  # the last row cut off
    with pytest.raises(ValueError, match="shorter"):
        RowFile(tmp_path / "e.npy")


@pytest.mark.skipif(host_memory_mb() is None, reason="reads /proc/self/status (Linux)")
def test_writing_and_reading_do_not_hold_the_file(tmp_path):
    """Columns written and rows read leave the file to the page cache, not to the process:
    resident memory grows by far less than the 64 MB file."""
    before = host_memory_mb()["rss"]
    big = RowFile.create(tmp_path / "big.npy", (4096, 8, 1024))  # 64 MB of float16
    for epoch in range(8):
        big[:, epoch] = np.full((4096, 1024), epoch, np.float16)
    got = column(RowFile(big.path), 3)  # 8 MB: every row read once
    for start in range(0, 4096, 64):
        big[np.arange(start, start + 32)]
    assert host_memory_mb()["rss"] - before < 40
    assert (got == 3).all()


def test_create_allocates_the_disk_blocks(tmp_path, monkeypatch):
    """A sparse file fails only when a mapped write finds the disk full: SIGBUS, no message.
    Allocated at creation, a full disk is an OSError there."""
    import errno
    import os

    if not hasattr(os, "posix_fallocate"):
        pytest.skip("no posix_fallocate on this system")
    rows = RowFile.create(tmp_path / "a.npy", (4096, 4, 64))
    size = (tmp_path / "a.npy").stat().st_size
    assert os.stat(tmp_path / "a.npy").st_blocks * 512 >= size
    rows.close()

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(OSError, match="No space left"):
        RowFile.create(tmp_path / "b.npy", (4096, 4, 64))
