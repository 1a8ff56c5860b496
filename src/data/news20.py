"""20 Newsgroups (bydate) from a local copy, or sklearn's download when online.

`--path` may name: the `20news-bydate.tar.gz` archive (or a folder holding it), a folder with
the extracted `20news-bydate-train/` and `20news-bydate-test/`, or a sklearn data home holding
`20news-bydate_py3.pkz`. Train is the official train split shuffled with the seed, first 80%
train and last 20% validation; test is the official test split.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np

from src.data.base import Split, Splits, require_dir, seeded_train_validation
from src.errors import UserError

ARCHIVE = "20news-bydate.tar.gz"


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


def _from_sklearn(data_home: Path, download: bool) -> dict[str, dict[str, list[str]]]:
    from sklearn.datasets import fetch_20newsgroups

    out = {}
    for split in ("train", "test"):
        bunch = fetch_20newsgroups(data_home=str(data_home), subset=split, shuffle=False,
                                   download_if_missing=download)
        groups: dict[str, list[str]] = {name: [] for name in bunch.target_names}
        for text, target in zip(bunch.data, bunch.target):
            groups[bunch.target_names[target]].append(text)
        out[split] = groups
    return out


def _source(path: Path) -> Path | None:
    """The file or folder the data will be read from, None when there is none (download)."""
    for candidate in (path, path / ARCHIVE, path / "20news-bydate_py3.pkz"):
        if candidate.is_file():
            return candidate
    if (path / "20news-bydate-train").is_dir() and (path / "20news-bydate-test").is_dir():
        return path
    return None


def _read(path: Path) -> dict[str, dict[str, list[str]]]:
    source = _source(path)
    if source is not None and source.is_dir():
        return _from_folders(source)
    if source is not None and source.name.endswith(".pkz"):
        return _from_sklearn(source.parent, download=False)
    if source is not None:
        return _from_archive(source)
    try:  # last resort: sklearn's own download (needs the internet)
        path.mkdir(parents=True, exist_ok=True)
        return _from_sklearn(path, download=True)
    except Exception as exc:  # noqa: BLE001 - any failure here means "no data"
        raise UserError(
            f"{path}: no 20news data found ({ARCHIVE}, extracted 20news-bydate-train/test folders or "
            f"20news-bydate_py3.pkz) and the download failed ({type(exc).__name__})"
        ) from None


def load_20news(path: str | None, seed: int) -> Splits:
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
