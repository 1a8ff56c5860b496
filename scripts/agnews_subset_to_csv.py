"""Turn COSINE's AG News json subset into an `ag_news_csv` folder that `--dataset agnews` reads.

COSINE (`cosine_agnews/{dev,test}_data.json`) holds 24,000 real rows of AG News train.csv as
`{"text": "title. description", "label": 0..3, ...}`. This writes `<out>/train.csv` in the
publisher's form (class 1..4, title, description) and copies the official `test.csv` and
`classes.txt` beside it. The title is the text up to the first ". "; COSINE had already cut
many descriptions at their first comma, so the rows are real but not byte-identical to the
original file. The paper's 10,000-per-class sample needs the full 120,000-row train.csv.

    python scripts/agnews_subset_to_csv.py /tmp/agnews_subset
    python main.py --describe --dataset agnews --path /tmp/agnews_subset
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "ag_news"


def split_title(text: str) -> tuple[str, str]:
    """COSINE's "title. description" (the description sometimes opened by a stray quote) -> parts."""
    title, sep, description = text.partition(". ")
    if not sep:
        return text.strip().strip('"'), ""
    return title.strip().strip('"'), description.strip().strip('"').strip()


def convert(cosine_files: list[Path], official: Path | None, out: Path) -> int:
    rows = []
    for file in cosine_files:
        for record in json.loads(file.read_text(encoding="utf-8")):
            title, description = split_title(record["text"])
            rows.append([str(int(record["label"]) + 1), title, description])
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train.csv", "w", encoding="utf-8", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    if official is not None:
        for name in ("test.csv", "classes.txt"):
            shutil.copyfile(official / name, out / name)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write train.csv (and test.csv, classes.txt) to")
    parser.add_argument("--cosine", type=Path, default=SHARED / "cosine_agnews",
                        help="folder holding COSINE's dev_data.json and test_data.json")
    parser.add_argument("--official", type=Path, default=SHARED / "ag_news_csv",
                        help="the official ag_news_csv folder to copy test.csv and classes.txt from "
                             "('' to copy nothing)")
    args = parser.parse_args(argv)
    files = [args.cosine / "dev_data.json", args.cosine / "test_data.json"]
    official = args.official if str(args.official) else None
    missing = [f for f in files + ([official / "test.csv", official / "classes.txt"] if official else [])
               if not f.is_file()]
    if missing:
        print(f"error: {missing[0]}: file not found", file=sys.stderr)
        return 2
    n = convert(files, official, args.out)
    print(f"wrote {n} rows to {args.out / 'train.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
