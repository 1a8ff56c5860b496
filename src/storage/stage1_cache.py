"""Reuse of stage-1 results: every stage-2 variant on the same data, noise and seed shares one run.

A result lives in `<root>/<key>/` as trajectories_<m>.npy (model m's embeddings, [N, E, D]
float16, read by rows: `RowFile`), probs.npy ([M, N, C] float32) and result.json (history,
timings, and the settings the key was made from). The key is a hash of everything that changes
stage 1's output: the token ids (data set, files, max length, tokenizer), the noisy
train/validation labels (noise type, rate, seed) and the verified ones stage 1 trains with, the
model's identity, the training settings, the device type, the library versions and the source of
every `src` module stage 1 imports (`stage1_sources`, found from the import statements). Stage 1
writes into a staging directory `<key>.partial-<pid>`, result.json last, which then replaces the entry
in one rename: a run killed mid-way leaves no entry (its staging directory is removed by the
next run), and a run started again reuses every stage 1 that finished. result.json holds a
SHA-256 of every other file of the entry, verified on reuse: a damaged entry is trained again
with a one-line warning, never trusted. When two runs finish the same entry, the second keeps
the first's (the same settings give the same result).

With `--stage1_checkpoints`, the staging directory also holds `checkpoint.pt`, the training state
after the last finished epoch (`Stage1Checkpoint`); a run with the same key started after the
one writing it stopped (killed, interrupted, out of time) takes that directory over and goes on
from there, and such a directory is kept until an entry with its key exists.
"""

from __future__ import annotations

import ast
import errno
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from src.errors import warn
from src.stage1.train_stage1 import Stage1Result
from src.storage.files import atomic_write_json
from src.storage.row_file import RowFile  # the cache keeps trajectories as files read by rows

SRC = Path(__file__).resolve().parents[1]
# Where the method's stage 1 starts: this module and every `src` module it imports, transitively, are
# the code whose edits change stage 1's numbers (an edit there makes every old entry a miss), with the
# speed layer's stage-1 modules, which the pipeline adds (the method never imports them).
STAGE1_ENTRY = ["src.stage1.train_stage1"]


def module_file(module: str) -> Path | None:
    """The file of `src` module `module` (a package: its __init__.py), or None if there is none."""
    path = SRC.parent.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def src_imports(path: Path) -> set[str]:
    """The `src` names a source file imports, anywhere in it (`import src.a.b`, `from src.a import
    b`: src.a, and src.a.b where b may be a module)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in names if name == "src" or name.startswith("src.")}


def imported_modules(path: Path) -> set[str]:
    """The `src` modules a source file imports and the packages above each, which Python runs first."""
    found = set()
    for name in src_imports(path):
        parts = name.split(".")
        found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return {name for name in found if module_file(name) is not None}


def stage1_sources(entry: list[str] = STAGE1_ENTRY) -> list[Path]:
    """Every source file stage 1 runs: the import closure of `entry` within `src`, sorted."""
    seen, todo = set(), list(entry)
    while todo:
        if (name := todo.pop()) not in seen:
            seen.add(name)
            todo += imported_modules(module_file(name))
    return sorted(module_file(name) for name in seen)


def trajectory_path(directory: str | Path, model: int) -> Path:
    """Where model `model`'s trajectory file ([N, E, D] float16, `RowFile`) lives in `directory`."""
    return Path(directory) / f"trajectories_{model}.npy"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read a chunk at a time (trajectory files run to gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def array_digest(rows: list[list[int]] | np.ndarray) -> str:
    """Digest of a list of integer rows (token ids) or of a label array; row bounds included."""
    if isinstance(rows, np.ndarray):
        return _sha(np.ascontiguousarray(rows, dtype=np.int64).tobytes())
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    flat = np.fromiter((t for r in rows for t in r), dtype=np.int64, count=int(lengths.sum()))
    return _sha(lengths.tobytes() + b"|" + flat.tobytes())


def model_identity(name: str, resolved_path: str) -> dict:
    """A hub name as given; a local directory by its config and the size/mtime of its weights."""
    path = Path(resolved_path)
    if not path.is_dir():
        return {"name": name}
    weights = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin"))
    return {
        "name": name,
        "config": _sha((path / "config.json").read_bytes()),
        "weights": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in weights],
    }


def code_identity(entry: list[str] = STAGE1_ENTRY) -> dict:
    """What identifies the code of a stage-1 run: the source of every file stage 1 runs (the import
    closure of `entry`) and the versions of torch and transformers."""
    import torch
    import transformers

    return {
        "source": _sha(b"".join(str(p.relative_to(SRC)).encode() + b"\0" + p.read_bytes()
                                for p in stage1_sources(entry))),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def cache_key(parts: dict) -> str:
    """A short stable hash of the JSON-serialisable `parts` (dict order does not matter)."""
    return _sha(json.dumps(parts, sort_keys=True, default=str).encode())[:24]


def load(root: str | Path, key: str) -> Stage1Result | None:
    """The stored result for `key`, or None when there is none, or (with a warning) when the
    entry is damaged. The trajectories stay on disk: the result holds a `RowFile` per model."""
    entry = Path(root) / key
    if not entry.is_dir():
        return None
    embeddings = []
    try:
        meta = json.loads((entry / "result.json").read_text())
        if not isinstance(meta, dict) or meta.get("key") != key:
            raise ValueError("result.json is not this entry's")
        files = meta["files"]
        if not isinstance(files, dict) or sorted(files) != _entry_files(len(files) - 1):
            raise ValueError("result.json does not list the entry's files")
        for name in files:
            if file_digest(entry / name) != files[name]:
                raise ValueError(f"{name} differs from its checksum")
        probs = np.load(entry / "probs.npy")
        if probs.ndim != 3 or len(probs) != len(files) - 1 or not np.isfinite(probs).all():
            raise ValueError("probs.npy is not the models' class probabilities")
        embeddings = [RowFile(trajectory_path(entry, m)) for m in range(len(probs))]
        if any(list(t.shape) != meta["shape"] for t in embeddings):
            raise ValueError("a trajectory file has the wrong shape")
        return Stage1Result(embeddings, probs, list(meta["history"]), float(meta["plm_seconds"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        for rows in embeddings:
            rows.close()
        reason = f"result.json lacks {exc}" if isinstance(exc, KeyError) else str(exc)
        warn(f"{entry}: damaged stage-1 entry ({reason}); training stage 1 again")
        return None


def _entry_files(n_model: int) -> list[str]:
    """The files of an entry with `n_model` models besides result.json, sorted."""
    return sorted(["probs.npy", *(trajectory_path("", m).name for m in range(n_model))])


def save(root: str | Path, key: str, result: Stage1Result, parts: dict, staging: str | Path | None = None) -> None:
    """Store `result` as the entry `key`, replacing any entry there.

    `staging` is the directory the result's trajectory files were written to by stage 1
    (`load_or_train`); trajectories held elsewhere (arrays) are written into it first.
    """
    root = Path(root)
    staging = Path(staging) if staging is not None else _staging_dir(root, key)
    staging.mkdir(parents=True, exist_ok=True)
    for m, trajectory in enumerate(result.embeddings):
        target = trajectory_path(staging, m)
        if isinstance(trajectory, RowFile) and trajectory.path == target:
            trajectory.close()  # written in place; closed before the directory is renamed
        else:
            RowFile.from_array(target, trajectory[:]).close()
    np.save(staging / "probs.npy", result.probs)
    files = _entry_files(len(result.embeddings))
    atomic_write_json(staging / "result.json", {  # last: its presence marks a complete entry
        "key": key, "shape": list(result.embeddings[0].shape), "history": result.history,
        "plm_seconds": result.plm_seconds, "parts": parts,
        "files": {name: file_digest(staging / name) for name in files},
    })
    entry = root / key
    old = root / f"{key}.old-{uuid.uuid4().hex[:8]}"
    if entry.exists():
        try:
            entry.rename(old)
        except FileNotFoundError:  # another run moved it away first
            pass
    try:
        staging.rename(entry)
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        # Another run with the same key finished it in between: the same settings, the same
        # result, so its entry is kept and ours goes.
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


CHECKPOINT = "checkpoint.pt"


class Stage1Checkpoint:
    """The training state after the last finished epoch of the stage 1 being trained into
    `directory` (its staging directory), for `train_stage1`: written after each epoch (to a
    temporary file, then renamed), read back by a later run with the same `key`. Read with
    `weights_only=True`: tensors and plain values, nothing executed."""

    def __init__(self, directory: str | Path, key: str) -> None:
        self.directory, self.key = Path(directory), key

    @property
    def path(self) -> Path:
        return self.directory / CHECKPOINT

    def load(self) -> dict | None:
        """The stored state, or None when there is none or (with a warning) it cannot be used."""
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, weights_only=True)
            if not isinstance(state, dict) or state.get("key") != self.key:
                raise ValueError("not this stage 1's checkpoint")
            missing = [m for m in range(len(state["models"])) if not trajectory_path(self.directory, m).is_file()]
            if missing:
                raise ValueError(f"model {missing[0]}'s trajectory file is missing")
        except Exception as exc:  # noqa: BLE001 (any unreadable file: train from the start instead)
            warn(f"{self.path}: unusable stage-1 checkpoint ({exc}); training stage 1 from the start")
            return None
        return state

    def trajectory(self, m: int) -> RowFile:
        """Model m's trajectory file as the interrupted run left it, open for writing the next epochs."""
        return RowFile(trajectory_path(self.directory, m), writable=True)

    def save(self, state: dict) -> None:
        partial = self.path.with_name(CHECKPOINT + ".tmp")
        torch.save({**state, "key": self.key}, partial)
        os.replace(partial, self.path)  # the previous epoch's state until this one is whole


def _staging_dir(root: Path, key: str) -> Path:
    return root / f"{key}.partial-{os.getpid()}"


def _staging_key(path: Path) -> str:
    """The key of the entry the staging directory `path` (`_staging_dir`) was made for."""
    return path.name.rsplit(".partial-", 1)[0]


def _dead(path: Path) -> bool:
    """Whether the process that named the staging directory `path` has ended (False when unsure)."""
    if os.name != "posix":  # os.kill(pid, 0) only asks on POSIX (on Windows it terminates)
        return False
    try:
        os.kill(int(path.name.rsplit("-", 1)[1]), 0)
    except ProcessLookupError:
        return True
    except (ValueError, OSError):
        pass  # not ours to judge: a live process, or a name we did not make
    return False


def _remove_dead_staging(root: Path) -> None:
    """Staging directories of runs (with any key) that died before finishing; one holding a
    checkpoint stays until its key's entry exists (a later run may go on from it)."""
    for path in root.glob("*.partial-*"):
        if _dead(path) and (not (path / CHECKPOINT).is_file() or (root / _staging_key(path)).is_dir()):
            shutil.rmtree(path, ignore_errors=True)


def _take_over_interrupted(root: Path, key: str, staging: Path) -> bool:
    """Make the staging directory of an ended run of `key` that holds a checkpoint ours (renamed
    to `staging`); False when there is none."""
    if (staging / CHECKPOINT).is_file():  # this process's own, from a try that stopped
        return True
    for path in root.glob(f"{key}.partial-*"):
        if path != staging and _dead(path) and (path / CHECKPOINT).is_file():
            shutil.rmtree(staging, ignore_errors=True)
            try:
                path.rename(staging)  # atomic: of two runs taking it over, one gets it
                return True
            except OSError:
                continue
    return False


def load_or_train(
    root: str | Path, parts: dict, train: Callable[[Path, Stage1Checkpoint | None], Stage1Result],
    reuse: bool = True, checkpoints: bool = False,
) -> tuple[Stage1Result, dict]:
    """Stage 1 from the cache when `reuse` and an entry matches `parts`; else train and store.

    `train(directory, checkpoint)` writes its trajectory files into `directory` (a staging
    directory that becomes the entry). `checkpoint` is None unless `checkpoints` (and `reuse`: a
    run that reuses nothing keeps nothing): then a `Stage1Checkpoint` in `directory`, which is that
    of an ended run of the same key holding one where there is one (training goes on from it),
    and which is kept when training stops. Returns the result, read back from the entry, and
    {"key", "hit"}.
    """
    root = Path(root)
    key = cache_key(parts)
    if root.is_dir():
        _remove_dead_staging(root)
    result = load(root, key) if reuse else None
    if result is not None:
        return result, {"key": key, "hit": True}
    root.mkdir(parents=True, exist_ok=True)
    staging = _staging_dir(root, key)
    checkpoints = checkpoints and reuse
    if not (checkpoints and _take_over_interrupted(root, key, staging)):
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
    try:
        save(root, key, train(staging, Stage1Checkpoint(staging, key) if checkpoints else None), parts, staging)
    except BaseException:
        if not (checkpoints and (staging / CHECKPOINT).is_file()):  # else kept, to go on from
            shutil.rmtree(staging, ignore_errors=True)
        raise
    result = load(root, key)
    if result is None:
        raise OSError(f"stage 1: the result just stored in {root / key} cannot be read back")
    return result, {"key": key, "hit": False}
