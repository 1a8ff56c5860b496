"""Aggregation of experiment run records into the summary table (CSV and markdown).

A record is the dict `src.pipeline.run` returns; the experiment runner adds `experiment`
(the grid's name) and `setting_tag` (the setting's extra flags, e.g. `trusted`). Rows are
grouped by (experiment, data set, noise type, noise ratio, tag, method) and averaged over
seeds; `per_seed_markdown` keeps the seeds apart.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict

import numpy as np

from src.methods import all_labels, variant_labels

DETECTORS = {"dynamics": "dyn", "loss": "loss", "confident_learning": "cl"}
METRICS = ("precision", "recall", "f1", "roc_auc")
# The order methods appear in: DyGen, its variants and ablations, then the baselines.
METHOD_ORDER = all_labels()
# Train+validation labels compared with gold: the given ones, cleaned_label, suggested_label.
LABELS = ("given", "cleaned", "suggested")
COLUMNS = (["dataset", "noise_type", "noise_ratio", "method", "n_seeds", "acc_mean", "acc_std",
            "acc_stage1_mean"]
           + [f"det_{short}_{metric}" for short in DETECTORS.values() for metric in METRICS]
           + [f"{name}_gold_mean" for name in LABELS] + ["det_suggested_roc_auc", "ratio_used_mean"]
           + ["experiment", "tag", "bert", "epochs", "precision", "seeds"])


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
    """(experiment, data set, noise type, noise ratio, tag): the runs of one setting, all methods and seeds."""
    c = record["config"]
    return (record.get("experiment", ""), c["dataset"], record["resolved"]["noise_type"], c["noise_ratio"],
            record.get("setting_tag", ""))


def agreement(record: dict, name: str) -> float | None:
    """The share of train+validation rows nobody checked whose `name` label (one of LABELS) is the
    gold one (`suggestion.gold`; records made before it: every row, from `cleaning`); None without
    gold, or for suggested_label in those older records."""
    if name not in LABELS:
        raise ValueError(f"unknown label {name!r}")
    gold = (record.get("suggestion") or {}).get("gold")
    if gold:
        return gold.get(f"{name}_agrees_with_gold")
    cleaning = record.get("cleaning") or {}
    return {"given": cleaning.get("noisy_agrees_with_gold"), "cleaned": cleaning.get("cleaned_agrees_with_gold"),
            "suggested": None}[name]


def suggestion_auc(record: dict) -> float | None:
    """ROC AUC of ranking the rows by the cleaned probability of their given label (low first)."""
    return ((((record.get("suggestion") or {}).get("gold") or {}).get("ranking")) or {}).get("roc_auc")


def summarize(records: list[dict]) -> list[dict]:
    """One row per (experiment, data set, noise type, noise ratio, tag, method), averaged over seeds."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in records:
        groups[(*setting_key(record), record["method_label"])].append(record)

    def order(key):
        method = key[-1]
        return (*[str(k) for k in key[:-1]], METHOD_ORDER.index(method) if method in METHOD_ORDER else 99, method)

    rows = []
    for key in sorted(groups, key=order):
        runs = sorted(groups[key], key=lambda r: r["config"]["seed"])
        experiment, dataset, noise_type, ratio, tag, method = key
        row = {
            "dataset": dataset, "noise_type": noise_type, "noise_ratio": ratio, "tag": tag, "method": method,
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
        for name in LABELS:
            row[f"{name}_gold_mean"] = _mean([agreement(r, name) for r in runs])
        row["det_suggested_roc_auc"] = _mean([suggestion_auc(r) for r in runs])
        row["ratio_used_mean"] = _mean([r.get("noise_ratio_used") for r in runs])  # with `auto`: the estimate
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
    return f"{row['dataset']}, {noise}, r={row['noise_ratio']}" + (f", {row['tag']}" if row.get("tag") else "")


def to_markdown(rows: list[dict], detection: bool = True) -> str:
    """Per experiment: an accuracy table (settings x methods) and (`detection`) the train+validation
    tables: noise detection, and the labels' agreement with gold."""
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
        if detection and any(r[f"{name}_gold_mean"] is not None for r in mine for name in LABELS):
            parts += _labels_table(experiment, mine)
    return "\n".join(parts)


def _labels_table(experiment: str, rows: list[dict]) -> list[str]:
    """Per setting and method: how often given -> cleaned_label -> suggested_label agree with gold
    on train+validation, the share marked, and the ROC AUC of the dynamics score and of the
    suggestion's ranking; – where a record lacks the figure (suggested_label: older runs)."""
    lines = [f"### `{experiment}`: train+validation labels, mean over seeds: agreement with gold (%), share "
             "marked noisy (%), ROC AUC (%) of finding the wrong given labels (dynamics score, suggestion's ranking)\n",
             "| setting | method | given | cleaned_label | suggested_label | marked | AUC dynamics | AUC ranking |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {_setting_name(r)} | {r['method']} | " + " | ".join(_pct(r[column]) for column in (
            "given_gold_mean", "cleaned_gold_mean", "suggested_gold_mean", "ratio_used_mean", "det_dyn_roc_auc",
            "det_suggested_roc_auc")) + " |")
    return [*lines, ""]


# ---- per seed: the DyGen setting chosen on validation against every other method, and its labels ----

def _setting_of(key: tuple) -> dict:
    _, dataset, noise_type, ratio, tag = key
    return {"dataset": dataset, "noise_type": noise_type, "noise_ratio": ratio, "tag": tag}


def by_method(records: list[dict]) -> dict[str, dict[int, dict]]:
    """Method label -> seed -> record, the labels in report order."""
    methods: dict[str, dict[int, dict]] = {}
    for record in records:
        methods.setdefault(record["method_label"], {})[record["config"]["seed"]] = record
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    return dict(sorted(methods.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def _by_setting(records: list[dict]) -> dict[tuple, dict[str, dict[int, dict]]]:
    """setting_key -> method label -> seed -> record, settings and methods in report order."""
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for record in records:
        cells[setting_key(record)].append(record)
    return {key: by_method(cells[key]) for key in sorted(cells, key=lambda k: [str(part) for part in k])}


def is_dygen_setting(label: str) -> bool:
    """DyGen as the paper has it or with one of its VARIANTS (not an ablation, which removes a part)."""
    return label == "dygen" or label in variant_labels()


def best_dygen(methods: dict[str, dict[int, dict]], score: str = "suggested_right") -> str | None:
    """The DyGen setting chosen on validation, never on test: with trusted rows kept out of stage 1,
    the one with the highest `score` on them, cross-fitted (`suggestion.estimate`: `suggested_right`,
    how often its suggested labels are right; `prediction_right`, how often its prediction P(y|x)
    is), mean over its seeds (the first in report order on a tie); without, the paper's DyGen, as
    nothing measured on validation tells the settings apart. None without a DyGen run."""
    means = {label: mean_validation_score(runs, score) for label, runs in methods.items() if is_dygen_setting(label)}
    means = {label: mean for label, mean in means.items() if mean is not None}
    if means:
        return max(means, key=lambda label: means[label])
    return "dygen" if "dygen" in methods else None


def mean_validation_score(runs: dict[int, dict], score: str) -> float | None:
    """`validation_score` of a setting's runs (seed -> record), mean over the seeds that have it."""
    return _mean([validation_score(r, score) for r in runs.values()])


def validation_score(record: dict, score: str) -> float | None:
    """The share of calibration rows on which `score` is right, cross-fitted; None without them."""
    estimate = (record.get("suggestion") or {}).get("estimate") or {}
    return (estimate.get(score) or {}).get("share")


def _paired(first: dict[int, dict], second: dict[int, dict], first_value, second_value) -> tuple[list[int], list]:
    """The seeds on which both runs have a value, in order, and first's value minus second's on each."""
    seeds = [s for s in sorted(set(first) & set(second))
             if first_value(first[s]) is not None and second_value(second[s]) is not None]
    return seeds, [first_value(first[s]) - second_value(second[s]) for s in seeds]


def _accuracy(record: dict) -> float | None:
    return record.get("accuracy")


def per_seed_accuracy(records: list[dict]) -> list[dict]:
    """Per setting: the DyGen setting chosen on validation (`best_dygen` by the accuracy of its
    prediction): its test accuracy minus each other method's, per seed (the seeds both ran, in
    order), their mean, and the larger of the two methods' standard deviations over those seeds."""
    out = []
    for key, methods in _by_setting(records).items():
        best = best_dygen(methods, "prediction_right")
        for other in [m for m in methods if best is not None and m != best]:
            seeds, diffs = _paired(methods[best], methods[other], _accuracy, _accuracy)
            stds = [_std([_accuracy(methods[m][s]) for s in seeds]) for m in (best, other)]
            out.append({"experiment": key[0], **_setting_of(key), "best": best, "other": other, "seeds": seeds,
                        "diffs": diffs, "mean": _mean(diffs),
                        "larger_std": max(stds) if len(seeds) > 1 else None})
    return out


def per_seed_suggestion(records: list[dict]) -> list[dict]:
    """Per setting, for the DyGen setting chosen on validation: suggested_label's agreement with
    gold on the rows nobody checked minus the given labels', per seed and their mean (no seeds:
    older records)."""
    out = []
    for key, methods in _by_setting(records).items():
        best = best_dygen(methods)
        if best is None:
            continue
        runs = methods[best]
        seeds, diffs = _paired(runs, runs, lambda r: agreement(r, "suggested"), lambda r: agreement(r, "given"))
        out.append({"experiment": key[0], **_setting_of(key), "best": best, "seeds": seeds, "diffs": diffs,
                    "mean": _mean(diffs)})
    return out


def _points(values: list) -> str:
    """Differences of shares in percentage points, signed; – for none."""
    return ", ".join(f"{100 * v:+.1f}" for v in values if v is not None) or "–"


def per_seed_markdown(records: list[dict]) -> str:
    """Per experiment, the tables of `per_seed_accuracy` and `per_seed_suggestion` (points)."""
    parts = []
    accuracy, suggestion = per_seed_accuracy(records), per_seed_suggestion(records)
    for experiment in sorted({r["experiment"] for r in accuracy + suggestion}):
        parts += _per_seed_table(
            [r for r in accuracy if r["experiment"] == experiment],
            f"### `{experiment}`: per seed, the DyGen setting chosen on validation (with trusted rows: the most "
            "accurate prediction on those kept out of stage 1, cross-fitted; else the paper's): its test accuracy "
            "minus each other method's (points), and the larger of the two methods' std over those seeds")
        parts += _per_seed_table(
            [r for r in suggestion if r["experiment"] == experiment],
            f"### `{experiment}`: per seed, the DyGen setting chosen on validation (with trusted rows: the most "
            "right suggestions on those kept out of stage 1, cross-fitted; else the paper's): its suggested_label's "
            "agreement with gold on the rows nobody checked minus the given labels' (points)")
    return "\n".join(parts)


def _per_seed_table(rows: list[dict], title: str) -> list[str]:
    """A markdown table of per-seed differences (with a `minus` column where the rows name another
    method); no lines for no rows."""
    if not rows:
        return []
    other = "other" in rows[0]
    header = ("| setting | best DyGen |" + (" minus |" if other else "") + " seeds | per seed | mean |"
              + (" larger std |" if other else ""))
    lines = [title + "\n", header, "|---" * header.count(" | ") + "|---|"]
    lines += [f"| {_setting_name(r)} | {r['best']} |" + (f" {r['other']} |" if other else "")
              + f" {' '.join(map(str, r['seeds']))} | {_points(r['diffs'])} | {_points([r['mean']])} |"
              + (f" {_spread(r['larger_std'])} |" if other else "") for r in rows]
    return lines + [""]


def _spread(std: float | None) -> str:
    """A standard deviation over seeds in points; – with fewer than two seeds."""
    return "–" if std is None else f"{100 * std:.1f}"
