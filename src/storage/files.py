"""Files put in place whole: atomic writes (a temporary file beside the target, renamed), the
staged files of a run (all of them in place, or none), JSON, and the writable-folder check."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def atomic_file(path: str | Path, staged: list | None = None):
    """A binary file object that replaces `path` only when the block ends without error.

    Written to a temporary file beside `path`, then renamed: never a half-written result,
    even when the process is killed mid-write. With `staged`, the complete temporary file is
    not renamed but appended to it as (temporary, path), for the caller to rename together
    with other files (`StagedFiles`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from the user's group
        with os.fdopen(fd, "wb") as f:
            yield f
        if staged is None:
            os.replace(tmp, path)
        else:
            staged.append((Path(tmp), path))
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None and exc.errno:  # a write's error names no file
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


class StagedFiles:
    """Files and folders written under temporary names beside their places, and put in place
    together by `staged_files`: all of them, or (when anything fails) none of them."""

    def __init__(self) -> None:
        self.staged: list[tuple[Path, Path]] = []  # (temporary, final), renamed in this order
        self.lines: list[tuple[Path, str]] = []  # appended to their logs once every file is in place
        self.shared: list[tuple[Path, Path]] = []  # files other runs also write: renamed last

    def open(self, path: str | Path):
        """A binary file object for `path` (as `atomic_file`), put in place at the end."""
        return atomic_file(path, self.staged)

    def open_shared(self, path: str | Path):
        """As `open`, for a file that other runs replace too: never removed once in place."""
        return atomic_file(path, self.shared)

    def folder(self, path: str | Path) -> Path:
        """An empty temporary folder that becomes `path` at the end (which must not exist)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700, as for files
        self.staged.append((tmp, path))
        return tmp

    def append_line(self, path: str | Path, line: str) -> None:
        self.lines.append((Path(path), line))


@contextlib.contextmanager
def staged_files():
    """Yields a `StagedFiles`; when the block ends without error its files are renamed into
    place, then its log lines appended, then its shared files renamed. Any failure on the way
    removes every temporary and every file already in place: nothing of it is kept."""
    files, placed = StagedFiles(), []
    try:
        yield files
        for tmp, path in files.staged:
            os.replace(tmp, path)
            placed.append(path)
        for path, line in files.lines:
            append_line(path, line)
        for tmp, path in files.shared:
            os.replace(tmp, path)
    except BaseException:
        for path in [tmp for tmp, _ in files.staged + files.shared] + placed:
            _remove(path)
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _umask() -> int:
    """The process's umask (only readable by setting it; set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_writable_dir(path: str | Path, flag: str) -> None:
    """A one-line error before any work when the folder `path` (named by `flag`) cannot be
    created or written: under a file or a dangling symbolic link, or in a folder this user
    cannot write. Writes nothing."""
    from src.errors import UserError

    path = Path(path).absolute()
    existing = path
    while not os.path.exists(existing) and existing != existing.parent:  # (False on any OSError)
        if os.path.islink(existing):  # mkdir would fail on it (FileExistsError), after the run
            raise UserError(f"{flag} {path}: {existing} is a symbolic link to {os.readlink(existing)}, "
                            f"which does not exist")
        existing = existing.parent
    if not os.path.isdir(existing):
        raise UserError(f"{flag} {path}: cannot be a folder, {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: {existing} is not writable")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)


def json_bytes(obj) -> bytes:
    """`obj` as indented JSON (numpy numbers and arrays, and paths, as JSON values)."""
    return json.dumps(obj, indent=2, default=_json_default).encode()


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_bytes(path, json_bytes(obj))


def append_line(path: str | Path, line: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line.rstrip("\n") + "\n")


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
