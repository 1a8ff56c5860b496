"""Write the first N records of each split of a WRENCH data set to a new folder (for benchmarks).

    python scripts/wrench_slice.py ../shared/datasets/trec/wrench /tmp/trec_slice --train 600 --valid 100 --test 200

The same slice the test suite uses for its real-data run; label.json is copied as is. With a
seed, `write_slice` draws the records at random instead (the experiment grids' subsets).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np


def chosen_keys(keys: list[str], count: int, seed: int | None = None) -> list[str]:
    """The first `count` keys, or with `seed` `count` keys drawn at random with it; file order kept."""
    if seed is None or count >= len(keys):
        return keys[:count]
    rows = np.sort(np.random.default_rng(seed).choice(len(keys), size=count, replace=False))
    return [keys[i] for i in rows]


def write_slice(source: Path, out: Path, counts: dict[str, int | None], seed: int | None = None) -> Path:
    """Of each `name` (train.json, ...) of `source`, into `out`: counts[name] records (`chosen_keys`),
    or with None the file as it is; label.json is copied as it is."""
    out.mkdir(parents=True, exist_ok=True)
    for name, count in counts.items():
        if count is None:
            shutil.copyfile(source / name, out / name)
            continue
        records = json.loads((source / name).read_text())
        (out / name).write_text(json.dumps({k: records[k] for k in chosen_keys(list(records), count, seed)}))
    if (source / "label.json").is_file():
        shutil.copyfile(source / "label.json", out / "label.json")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="folder with train.json, valid.json, test.json")
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=600)
    parser.add_argument("--valid", type=int, default=100)
    parser.add_argument("--test", type=int, default=200)
    args = parser.parse_args(argv)
    counts = {"train.json": args.train, "valid.json": args.valid, "test.json": args.test}
    missing = [name for name in counts if not (args.source / name).is_file()]
    if missing:
        print(f"error: {args.source} lacks {', '.join(missing)}", file=sys.stderr)
        return 2
    if min(counts.values()) < 1:
        print("error: --train, --valid and --test must be at least 1", file=sys.stderr)
        return 2
    print(f"wrote {write_slice(args.source, args.out, counts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
