"""The preprocessing cache: token ids of every split, reused across runs.

An entry lives in `<cache_dir>/data/<dataset>-<key>.npz`, where the key hashes everything
that changes the tokenised splits: the data files read (path, size, modification time),
the tokenizer (its full serialised form when it has one), the maximum length, the noise
settings and the seed. The entry also records a digest of the texts it was built from, so
an entry that does not match the texts at hand is rebuilt rather than trusted; so is a
damaged file (with a warning). Entries are written atomically.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import torch

from src.data.base import Splits, warn
from src.data.texts import TokenizedTexts
from src.storage.files import atomic_write_bytes

VERSION = 1


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of the tokenizer's full definition (vocabulary, normaliser, special tokens)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        definition = json.loads(backend.to_str())
        for transient in ("truncation", "padding"):  # set per call, not part of the tokenizer
            definition.pop(transient, None)
        definition = json.dumps(definition, sort_keys=True)
    else:  # a slow tokenizer: its vocabulary and class
        definition = json.dumps([type(tokenizer).__name__, sorted(tokenizer.get_vocab().items())])
    extra = json.dumps([type(tokenizer).__name__, getattr(tokenizer, "do_lower_case", None),
                        tokenizer.all_special_tokens])
    return hashlib.sha256((definition + extra).encode()).hexdigest()


def texts_digest(texts: list[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


def cache_key(splits: Splits, tokenizer, max_length: int, noise_type: str | None, noise_ratio,
              seed: int) -> dict:
    files = []
    for name in splits.files:
        stat = Path(name).stat()
        files.append([str(Path(name).resolve()), stat.st_size, stat.st_mtime_ns])
    return {"version": VERSION, "dataset": splits.name, "files": files,
            "tokenizer": tokenizer_fingerprint(tokenizer), "max_length": max_length,
            "noise_type": noise_type, "noise_ratio": noise_ratio, "seed": seed}


def cache_file(cache_dir: str | Path, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return Path(cache_dir) / "data" / f"{key['dataset']}-{digest}.npz"


def save_ids(file: Path, texts: TokenizedTexts, key: dict, digest: str) -> None:
    meta = json.dumps({"key": key, "texts_sha256": digest})
    buffer = io.BytesIO()
    np.savez(buffer, input_ids=texts.input_ids.numpy().astype(np.int32), lengths=texts.lengths,
             meta=np.array(meta))
    atomic_write_bytes(file, buffer.getvalue())


def load_ids(file: Path, key: dict, digest: str) -> TokenizedTexts:
    """The cached token ids; ValueError when the entry is damaged or is not for these texts."""
    try:
        with np.load(file, allow_pickle=False) as entry:  # never unpickle a cache file
            input_ids, lengths = entry["input_ids"], entry["lengths"]
            meta = json.loads(str(entry["meta"]))
    except Exception as exc:  # noqa: BLE001 - whatever is wrong with the file, it is not trusted
        raise ValueError(f"unreadable ({type(exc).__name__})") from None
    if meta.get("key") != json.loads(json.dumps(key)) or meta.get("texts_sha256") != digest:
        raise ValueError("it was built from other data")
    if (input_ids.ndim != 2 or lengths.shape != (len(input_ids),) or np.any(lengths < 1)
            or np.any(lengths > input_ids.shape[1])):
        raise ValueError("inconsistent shapes")
    return TokenizedTexts(torch.from_numpy(input_ids.astype(np.int64)), lengths.astype(np.int64))


def cached_encode(encode, tokenizer, splits: Splits, max_length: int, *, cache_dir: str | Path,
                  reuse: bool, noise_type: str | None, noise_ratio, seed: int) -> TokenizedTexts:
    """`encode(tokenizer, texts, max_length)` of train + validation + test, through the cache.

    reuse=True (`--saved_dataset y`) reads a matching entry and builds it when there is none;
    reuse=False tokenises afresh. Either way the entry is (re)written for later runs.
    """
    texts = splits.all_texts()
    key = cache_key(splits, tokenizer, max_length, noise_type, noise_ratio, seed)
    file, digest = cache_file(cache_dir, key), texts_digest(texts)
    if reuse and file.exists():
        try:
            ids = load_ids(file, key, digest)
            if len(ids) == len(texts):
                return ids
            warn(f"{file}: the preprocessing cache holds {len(ids)} texts, not {len(texts)}; rebuilding it")
        except ValueError as exc:
            warn(f"{file}: the preprocessing cache is damaged ({exc}); rebuilding it")
    ids = encode(tokenizer, texts, max_length)
    save_ids(file, ids, key, digest)
    return ids
