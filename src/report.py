"""Aggregation of experiment run records into the summary table (CSV and markdown).

A record is the dict `src.pipeline.run` returns; the experiment runner adds `experiment`
(the grid's name). Rows are grouped by (experiment, data set, noise type, noise ratio, method)
and averaged over seeds.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict

import numpy as np

from src.methods import all_labels

DETECTORS = {"dynamics": "dyn", "loss": "loss", "confident_learning": "cl"}
METRICS = ("precision", "recall", "f1", "roc_auc")
# The order methods appear in: DyGen, its variants and ablations, then the baselines.
METHOD_ORDER = all_labels()
COLUMNS = (["dataset", "noise_type", "noise_ratio", "method", "n_seeds", "acc_mean", "acc_std",
            "acc_stage1_mean"]
           + [f"det_{short}_{metric}" for short in DETECTORS.values() for metric in METRICS]
           + ["experiment", "bert", "epochs", "precision", "seeds"])


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _std(values: list) -> float | None:
    """Sample standard deviation over seeds (ddof 1); 0 for a single seed."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def setting_key(record: dict) -> tuple:
    c = record["config"]
    return (record.get("experiment", ""), c["dataset"], record["resolved"]["noise_type"], c["noise_ratio"])


def summarize(records: list[dict]) -> list[dict]:
    """One row per (experiment, data set, noise type, noise ratio, method), averaged over seeds."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in records:
        groups[(*setting_key(record), record["method_label"])].append(record)

    def order(key):
        method = key[-1]
        return (*[str(k) for k in key[:-1]], METHOD_ORDER.index(method) if method in METHOD_ORDER else 99, method)

    rows = []
    for key in sorted(groups, key=order):
        runs = sorted(groups[key], key=lambda r: r["config"]["seed"])
        experiment, dataset, noise_type, ratio, method = key
        row = {
            "dataset": dataset, "noise_type": noise_type, "noise_ratio": ratio, "method": method,
            "n_seeds": len(runs), "acc_mean": _mean([r["accuracy"] for r in runs]),
            "acc_std": _std([r["accuracy"] for r in runs]),
            "acc_stage1_mean": _mean([r["accuracy_before"] for r in runs]),
            "experiment": experiment, "bert": runs[0]["resolved"]["bert"],
            "epochs": runs[0]["config"]["epochs"], "precision": runs[0]["resolved"].get("precision"),
            "stage2": runs[0].get("plan", {}).get("stage2", True),  # False: the answer is stage 1's
            "seeds": " ".join(str(r["config"]["seed"]) for r in runs),
        }
        for name, short in DETECTORS.items():
            for metric in METRICS:
                row[f"det_{short}_{metric}"] = _mean([(r.get("detection") or {}).get(name, {}).get(metric)
                                                       for r in runs])
        rows.append(row)
    return rows


def to_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row[k]) for k in COLUMNS})
    return out.getvalue()


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _pct(mean: float | None, std: float | None = None) -> str:
    if mean is None:
        return "–"
    return f"{100 * mean:.1f}" + (f" ± {100 * std:.1f}" if std is not None else "")


def _setting_name(row: dict) -> str:
    noise = "real (majority vote)" if row["noise_type"] == "real" else row["noise_type"]
    return f"{row['dataset']}, {noise}, r={row['noise_ratio']}"


def to_markdown(rows: list[dict], detection: bool = True) -> str:
    """Per experiment: an accuracy table (settings x methods) and (`detection`) a noise-detection table."""
    parts = []
    for experiment in sorted({r["experiment"] for r in rows}):
        mine = [r for r in rows if r["experiment"] == experiment]
        methods = [m for m in METHOD_ORDER if any(r["method"] == m for r in mine)]
        methods += sorted({r["method"] for r in mine} - set(methods))
        settings = list(dict.fromkeys(_setting_name(r) for r in mine))
        first = mine[0]
        parts.append(f"### `{experiment}`: test accuracy (%), mean ± std over seeds (no ± for one seed) "
                     f"({first['bert']}, {first['epochs']} stage-1 epochs, {first.get('precision') or 'fp32'})\n")
        parts.append("| setting | seeds | " + " | ".join(methods) + " |")
        parts.append("|---|---|" + "---|" * len(methods))
        for setting in settings:
            cells = {r["method"]: r for r in mine if _setting_name(r) == setting}
            seeds = max(r["n_seeds"] for r in cells.values())
            parts.append(f"| {setting} | {seeds} | " + " | ".join(
                _pct(cells[m]["acc_mean"], cells[m]["acc_std"] if cells[m]["n_seeds"] > 1 else None)
                if m in cells else "not run" for m in methods) + " |")
        parts.append("")
        detected = [r for r in mine if r["method"] in ("dygen", "base") and r["det_dyn_f1"] is not None]
        if detection and detected:
            parts.append(f"### `{experiment}`: noise detection on train+validation, mean over seeds "
                         "(F1 % / ROC AUC %)\n")
            parts.append("| setting | stage 1 | dynamics score | last-epoch loss | confident learning |")
            parts.append("|---|---|---|---|---|")
            for r in detected:
                stage1 = "co-regularised ensemble" if r["method"] == "dygen" else "one PLM (base)"
                parts.append(f"| {_setting_name(r)} | {stage1} | " + " | ".join(
                    f"{_pct(r[f'det_{s}_f1'])} / {_pct(r[f'det_{s}_roc_auc'])}" for s in DETECTORS.values()) + " |")
            parts.append("")
    return "\n".join(parts)
