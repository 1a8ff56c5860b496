"""Write a `csv` data-set folder with synthetic label noise and the gold labels beside it.

The noisy labels are exactly those `main.py --dataset D --noise_type T --noise_ratio R --seed S`
gives (same loader, same seeded noise), so `--dataset csv --path <out>` with `--noise_ratio auto`
can be checked against a known noise rate. Columns: text, label (noisy for train and validation,
gold for test), gold; labels are class names.

Example (SemEval with 40% symmetric noise):
  python scripts/make_noisy_csv.py --dataset semeval --path ../shared/datasets/semeval \
      --noise_type SN --noise_ratio 0.4 --out /tmp/semeval_sn40
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FILES = {"train": "train.csv", "validation": "valid.csv", "test": "test.csv"}


def write_split(file: Path, texts: list[str], labels, gold, class_names: list[str]) -> None:
    with open(file, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["text", "label", "gold"])
        for text, label, true in zip(texts, labels, gold):
            writer.writerow([text, class_names[label], class_names[true]])


def main(argv: list[str] | None = None) -> None:
    from src.data import apply_noise, load_dataset, noise_rate
    from src.utils.noise import NOISE_TYPES

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True, help="a data set with gold labels, e.g. semeval")
    parser.add_argument("--path", default=None, help="its folder (as for main.py)")
    parser.add_argument("--noise_type", choices=NOISE_TYPES, default="SN")
    parser.add_argument("--noise_ratio", type=float, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="folder to write train.csv, valid.csv, test.csv")
    args = parser.parse_args(argv)

    splits = apply_noise(load_dataset(args.dataset, args.path, args.seed), args.noise_type,
                         args.noise_ratio, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, split in splits.items():
        write_split(out / FILES[name], split.texts, split.noisy, split.gold, splits.class_names)
        rate = noise_rate(split)
        print(f"{out / FILES[name]}: {len(split)} rows, noise rate {rate:.4f}")


if __name__ == "__main__":
    main()
