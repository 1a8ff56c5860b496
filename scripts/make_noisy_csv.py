"""Write a `csv` data-set folder with synthetic label noise and the gold labels beside it.

The noisy labels are exactly those `main.py --dataset D --noise_type T --noise_ratio R --seed S`
gives (same loader, same seeded noise), so `--dataset csv --path <out>` with `--noise_ratio auto`
can be checked against a known noise rate. Columns: text, label (noisy for train and validation,
gold for test), gold; labels are class names.

To look like a file from a labelling pipeline, the columns can be renamed (`--text_column` ...),
a seeded share of the train and validation labels replaced by an abstention (`--abstain_share`,
written as `--abstain_label`), and a seeded sample of the labelled train rows given their
verified label in a trusted column (`--trusted_rows`, `--trusted_column`).

Examples:
  python scripts/make_noisy_csv.py --dataset semeval --path ../shared/datasets/semeval \
      --noise_type SN --noise_ratio 0.4 --out /tmp/semeval_sn40
  python scripts/make_noisy_csv.py --dataset demo --noise_type SN --noise_ratio 0.3 --out mydata \
      --text_column message --label_column llm_label --gold_column true_label \
      --abstain_share 0.05 --abstain_label -1 --trusted_rows 100 --trusted_column checked
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FILES = {"train": "train.csv", "validation": "valid.csv", "test": "test.csv"}


def write_split(file: Path, header: list[str], texts: list[str], labels: list[str], gold: list[str],
                trusted: list[str] | None = None) -> None:
    with open(file, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for i, row in enumerate(zip(texts, labels, gold)):
            writer.writerow([*row, *([trusted[i]] if trusted is not None else [])])


def main(argv: list[str] | None = None) -> None:
    from src.data import apply_noise, load_dataset, noise_rate
    from src.data.noise import NOISE_TYPES

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True, help="a data set with gold labels, e.g. semeval")
    parser.add_argument("--path", default=None, help="its folder (as for main.py)")
    parser.add_argument("--noise_type", choices=NOISE_TYPES, default="SN")
    parser.add_argument("--noise_ratio", type=float, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="folder to write train.csv, valid.csv, test.csv")
    parser.add_argument("--text_column", default="text")
    parser.add_argument("--label_column", default="label")
    parser.add_argument("--gold_column", default="gold")
    parser.add_argument("--abstain_share", type=float, default=0.0,
                        help="share of train and validation labels replaced by --abstain_label")
    parser.add_argument("--abstain_label", default="", help="what an abstention is written as (default: empty)")
    parser.add_argument("--trusted_rows", type=int, default=0, help="train rows given their verified label")
    parser.add_argument("--trusted_column", default="checked")
    args = parser.parse_args(argv)

    splits = apply_noise(load_dataset(args.dataset, args.path, args.seed), args.noise_type,
                         args.noise_ratio, args.seed)
    rng = np.random.default_rng([args.seed, 7])  # its own stream: the noise above stays main.py's
    names = splits.class_names
    header = [args.text_column, args.label_column, args.gold_column]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, split in splits.items():
        labels = [names[y] for y in split.noisy]
        if name != "test" and args.abstain_share > 0:
            for i in np.flatnonzero(rng.random(len(labels)) < args.abstain_share):
                labels[i] = args.abstain_label
        trusted = None
        if args.trusted_rows:
            trusted = [""] * len(split)
            labelled = [i for i, label in enumerate(labels) if label != args.abstain_label]
            if name == "train":  # a sample of the rows the labeller labelled, checked by hand
                for i in rng.choice(labelled, size=min(args.trusted_rows, len(labelled)), replace=False):
                    trusted[i] = names[split.gold[i]]
        write_split(out / FILES[name], header + ([args.trusted_column] if trusted is not None else []),
                    split.texts, labels, [names[y] for y in split.gold], trusted)
        print(f"{out / FILES[name]}: {len(split)} rows, noise rate {noise_rate(split):.4f}"
              + (f", {labels.count(args.abstain_label)} abstentions" if name != "test" and args.abstain_share else "")
              + (f", {sum(map(bool, trusted))} trusted" if trusted is not None else ""))


if __name__ == "__main__":
    main()
