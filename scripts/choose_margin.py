"""The suggestion margin for runs without trusted rows, chosen on validation gold labels.

Reads the labels CSVs of finished runs that had no trusted rows and whose validation rows have
gold labels (the WRENCH sets), and prints, for each margin of a grid, how often `suggested_label`
would agree with gold on the validation rows of each run, and the mean over the runs. Only
validation rows are read: the margin is never chosen on test, nor on the train rows a run
reports its diagnostics on. The margin with the best mean (the largest among equals) is the
candidate for `DEFAULT_MARGIN` in src/pipeline.py.

  python scripts/choose_margin.py cache/runs/*-labels.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

MARGINS = np.round(np.arange(0.0, 1.0001, 0.05), 2)


def validation_agreement(path: Path, margins: np.ndarray) -> np.ndarray | None:
    """[len(margins)] the share of the file's labelled validation rows whose suggestion at each
    margin is the gold label; None without such rows, or when a row has a trusted label."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "validation" and r["noisy_label"]]
    if not rows or not rows[0].get("gold") or any(r.get("trusted_label") for r in rows):
        return None
    given = np.array([r["noisy_label"] for r in rows])
    best = np.array([r["cleaned_label"] for r in rows])
    gold = np.array([r["gold"] for r in rows])
    # 0 where best = given; rounded as the file's 4-decimal probabilities are
    gap = np.round([float(r["cleaned_prob"]) - float(r["given_label_prob"]) for r in rows], 4)
    return np.array([(np.where((best != given) & (gap > m), best, given) == gold).mean() for m in margins])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("labels", nargs="+", type=Path, help="labels CSVs (cache/runs/<run_id>-labels.csv)")
    args = parser.parse_args(argv)
    curves = {path.name: validation_agreement(path, MARGINS) for path in args.labels}
    curves = {name: curve for name, curve in curves.items() if curve is not None}
    if not curves:
        print("error: no labels CSV without trusted rows and with validation gold labels", file=sys.stderr)
        return 2
    mean = np.mean(list(curves.values()), axis=0)
    print("margin  " + "  ".join(f"{m:.2f}" for m in MARGINS))
    for name, curve in curves.items():
        print(f"{name}\n        " + "  ".join(f"{v:.3f}" for v in curve))
    print("mean    " + "  ".join(f"{v:.3f}" for v in mean))
    best = MARGINS[np.flatnonzero(mean == mean.max()).max()]
    print(f"best margin on validation: {best:.2f} (mean agreement {mean.max():.4f}; margin 0: {mean[0]:.4f}, "
          f"keeping every label: {mean[-1]:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
