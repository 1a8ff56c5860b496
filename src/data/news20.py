"""20 Newsgroups (bydate) from a local copy.

`--path` (default `datasets/20news`) may name: the `20news-bydate.tar.gz` archive (or a folder
holding it), or a folder with the extracted `20news-bydate-train/` and `20news-bydate-test/`.
Train is the official train split shuffled with the seed, first 80% train and last 20%
validation; test is the official test split.

sklearn's cache `20news-bydate_py3.pkz` is never read: it is a pickle, and unpickling a file
from a data folder runs whatever code the file names. Nothing is downloaded either: without a
copy the run stops and says where to put one.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np

from src.data.base import Split, Splits, require_dir, seeded_train_validation
from src.errors import UserError

ARCHIVE = "20news-bydate.tar.gz"
URL = "http://qwone.com/~jason/20Newsgroups/20news-bydate.tar.gz"  # the publisher's
SKLEARN_CACHE = "20news-bydate_py3.pkz"


def _from_archive(archive: Path) -> dict[str, dict[str, list[str]]]:
    """{'train'|'test': {group: [texts in file-name order]}} read straight from the tarball."""
    out: dict[str, dict[str, list[tuple[str, str]]]] = {"train": {}, "test": {}}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                parts = Path(member.name).parts
                if not member.isfile() or len(parts) < 3:
                    continue
                split = {"20news-bydate-train": "train", "20news-bydate-test": "test"}.get(parts[-3])
                if split is None:
                    continue
                text = tar.extractfile(member).read().decode("latin1")
                out[split].setdefault(parts[-2], []).append((parts[-1], text))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UserError(f"{archive}: not a readable 20news-bydate archive ({exc})") from None
    return {s: {g: [t for _, t in sorted(files)] for g, files in groups.items()} for s, groups in out.items()}


def _from_folders(root: Path) -> dict[str, dict[str, list[str]]]:
    out = {}
    for split in ("train", "test"):
        folder = root / f"20news-bydate-{split}"
        out[split] = {
            group.name: [f.read_bytes().decode("latin1") for f in sorted(group.iterdir()) if f.is_file()]
            for group in sorted(folder.iterdir())
            if group.is_dir()
        }
    return out


def _source(path: Path) -> Path | None:
    """The file or folder the data will be read from, None when there is none."""
    for candidate in (path, path / ARCHIVE):
        if candidate.is_file() and candidate.suffix != ".pkz":
            return candidate
    if (path / "20news-bydate-train").is_dir() and (path / "20news-bydate-test").is_dir():
        return path
    return None


def _read(path: Path) -> dict[str, dict[str, list[str]]]:
    source = _source(path)
    if source is None:
        pickled = " (20news-bydate_py3.pkz, sklearn's pickled cache, is not read: unpickling runs code)" \
            if path.is_file() or (path / SKLEARN_CACHE).is_file() else ""
        raise UserError(f"{path}: no 20news data{pickled}; put {ARCHIVE} ({URL}) or its extracted "
                        f"20news-bydate-train/ and 20news-bydate-test/ folders there, or name their "
                        f"folder with --path")
    if source.is_dir():
        return _from_folders(source)
    return _from_archive(source)


def load_20news(path: str | None, seed: int) -> Splits:
    # Without --path: the default folder, only looked at (never created, nothing downloaded).
    root = require_dir(path, "20news") if path else Path("datasets/20news")
    data = _read(root)
    class_names = sorted(data["train"])
    if len(class_names) != 20 or sorted(data["test"]) != class_names:
        raise UserError(f"{path}: expected the 20 newsgroups in both train and test, found {len(class_names)}")

    def flatten(groups):
        texts = [t for name in class_names for t in groups[name]]
        labels = np.concatenate([np.full(len(groups[name]), k) for k, name in enumerate(class_names)])
        return texts, labels.astype(np.int64)

    train_texts, train_labels = flatten(data["train"])
    (tr_x, tr_y), (va_x, va_y) = seeded_train_validation(train_texts, train_labels, seed)
    te_x, te_y = flatten(data["test"])
    return Splits(
        "20news", class_names,
        Split(tr_x, None, tr_y), Split(va_x, None, va_y), Split(te_x, te_y, te_y),
        files=[str(_source(root) or root)],
    )
