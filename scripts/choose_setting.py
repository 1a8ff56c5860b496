"""Which DyGen setting to apply to your data, chosen on your trusted rows, never on test.

Reads the records (cache/runs/<run_id>.json) of finished runs on the same data with trusted rows
kept out of stage 1 (`--trusted_column` or `--trusted validation`, `--calibration_share` > 0):
the paper's DyGen and any opt-in settings (`--mark_share per_class`, `--prior_balance class`,
`--mark_score loss`, ...), one or more seeds each. Prints, per setting, how often on those rows
(cross-fitted: no row informs its own estimate) its suggested labels and its prediction P(y | x)
were right, and names the setting whose suggested labels were right most often (mean over its
seeds; on a tie the first in report order, the paper's DyGen first: the rule `scripts/experiments.py`
reports the grids by), with its labels CSVs.

  python scripts/choose_setting.py cache/runs/*.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from src.errors import UserError  # noqa: E402
from src.outputs.report import best_dygen, by_method, is_dygen_setting, mean_validation_score  # noqa: E402

# The flags that fix the rows, their labels and which of them are trusted: runs compared must share them.
DATA_FLAGS = ("dataset", "path", "text_column", "label_column", "gold_column", "abstain_label", "trusted_column",
              "trusted", "calibration_share", "noise_type", "noise_ratio")


def read_records(paths: list[Path]) -> list[dict]:
    """The run records at `paths` (JSON, never executed), each with the path it was read from;
    refused: a file that is not a run record, runs on other data, two runs of one setting and seed."""
    records = []
    for path in paths:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: not readable as JSON ({exc})") from None
        if not (isinstance(record, dict) and "method_label" in record and "run_id" in record
                and isinstance(record.get("config"), dict) and "seed" in record["config"]):
            raise UserError(f"{path}: not a run record (cache/runs/<run_id>.json)")
        records.append({**record, "_path": path})
    first = records[0]
    for record in records[1:]:
        differs = [f for f in DATA_FLAGS if record["config"].get(f) != first["config"].get(f)]
        if differs:
            raise UserError(f"{record['_path']} and {first['_path']}: runs on other data (--{differs[0]} "
                            f"{record['config'].get(differs[0])} against {first['config'].get(differs[0])}); "
                            f"pass the runs of one data set")
    seen: dict[tuple, Path] = {}
    for record in records:
        key = (record["method_label"], record["config"]["seed"])
        if key in seen:
            raise UserError(f"{seen[key]} and {record['_path']}: two runs of {key[0]} with seed {key[1]}; "
                            f"pass one")
        seen[key] = record["_path"]
    return records


def labels_file(record: dict) -> Path:
    """The run's labels CSV, beside its record."""
    return record["_path"].with_name(f"{record['run_id']}-labels.csv")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("records", nargs="+", type=Path, help="run records (cache/runs/<run_id>.json)")
    args = parser.parse_args(argv)
    try:
        methods = by_method(read_records(args.records))
        if all(mean_validation_score(runs, "suggested_right") is None
               for label, runs in methods.items() if is_dygen_setting(label)):
            raise UserError("no DyGen run with trusted rows kept out of stage 1 (--trusted_column or --trusted "
                            "validation, --calibration_share > 0): nothing on validation tells the settings apart")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    chosen = best_dygen(methods, "suggested_right")

    def percent(runs: dict[int, dict], score: str) -> str:
        value = mean_validation_score(runs, score)
        return "–" if value is None else f"{100 * value:.1f}"

    print("cross-fitted on the trusted rows kept out of stage 1, mean over seeds (%):")
    print(f"{'setting':52} {'seeds':>7} {'suggested right':>16} {'given right':>12} {'prediction right':>17}")
    for label, runs in methods.items():
        mark = "*" if label == chosen else " "
        print(f"{mark} {label:50} {len(runs):>7} {percent(runs, 'suggested_right'):>16} "
              f"{percent(runs, 'given_right'):>12} {percent(runs, 'prediction_right'):>17}")
    print(f"chosen: {chosen} (the most right suggested labels among the DyGen settings; on a tie the first above)")
    for seed, record in sorted(methods[chosen].items()):
        path = labels_file(record)
        print(f"labels to apply (seed {seed}): {path}{'' if path.exists() else ' (not beside the record)'}")
    if not all(is_dygen_setting(label) for label in methods):
        print("(baselines and ablations are shown, not chosen)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
