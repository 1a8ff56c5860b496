"""What a run leaves behind: the run record (cache/runs/<run_id>.json), the results log, the
per-epoch stage-2 accuracies, the detectors' arrays, the cleaned-labels CSV, the saved models,
and the summary lines of the log. Everything is written after the method has run, under
temporary names put in place together (`staged_files`): a run that fails keeps none of them."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from src.config import Config
from src.data import noise_rate
from src.errors import UserError
from src.methods import ablations_of, run_label
from src.outputs.labels_file import label_rows, write_labels_csv
from src.storage.files import StagedFiles, check_writable_dir, json_bytes

if TYPE_CHECKING:
    from src.pipeline import Data, Diagnostics, Dynamics, Inference, Setup, Stage1Run, Stage2Run


def log(message: str) -> None:
    tqdm.write(message)


def fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def check_output_dirs(config: Config) -> None:
    """Where results go can be written, checked before any work (not a traceback after hours)."""
    for folder in ("", "data", "runs", "stage1"):
        check_writable_dir(Path(config.cache_dir) / folder, "--cache_dir")
    check_writable_dir(config.figure_dir, "--figure_dir")
    if config.save_model:
        check_writable_dir(config.model_dir, "--model_dir")


def new_run_id(config: Config) -> str:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    noise = config.noise_type or "default"
    return (f"{config.dataset}-{noise}-{config.noise_ratio}-seed{config.seed}-{run_label(config)}-{stamp}-"
            f"{uuid.uuid4().hex[:6]}")


def run_record(config: Config, setup: Setup, data: Data, stage1: Stage1Run, dynamics: Dynamics, stage2: Stage2Run,
               inference: Inference, diagnostics: Diagnostics, timer) -> dict:
    """The run's record (cache/runs/<run_id>.json), from what the stages returned (src/pipeline.py):
    every setting, what each stage reported, the diagnostics, timings and memory, and the
    accuracies; `accuracy` is the method's figure."""
    settings, splits = setup.settings, data.splits
    train, val = splits.train, splits.validation
    return {
        "run_id": new_run_id(config),
        "finished_at": dt.datetime.now().isoformat(timespec="seconds"),
        "method": config.method,
        "ablations": ablations_of(config),
        "method_label": run_label(config),
        "plan": settings.to_dict(),
        **({"npc_label": settings.label} if config.method == "npc" else {}),  # NPC calibrates its ŷ
        "config": config.to_dict(),
        "resolved": {"bert": setup.model_name, "max_length": data.max_length, "device": str(setup.runtime.device),
                     "world_size": setup.world.size, "precision": setup.runtime.precision,
                     "noise_type": config.noise_type or
                     ("real" if splits.real_noise else "SN")},
        "data": {"train": len(train), "validation": len(val), "test": len(splits.test),
                 "num_classes": splits.num_classes,
                 "class_names": splits.class_names, "dropped": splits.dropped,
                 "train_noise_rate": noise_rate(train), "validation_noise_rate": noise_rate(val)},
        "stage1_cache": stage1.entry,
        "stage1": stage1.result.history,
        "stage1_host_mb": stage1.result.host_mb,  # resident host memory as stage 1 sets up (empty when reused)
        "stage2": stage2.history,
        "marking": diagnostics.marking,
        # with --noise_ratio auto, the estimate used: the trusted sample's, else AUTO_ESTIMATOR's
        "noise_ratio_estimate": dynamics.ratio if config.noise_ratio == "auto" else None,
        "noise_ratio_source": dynamics.ratio_source,  # --noise_ratio, trusted, or the estimator's name
        "noise_ratio_estimates": dynamics.estimates,  # every candidate (--noise_ratio auto only)
        "noise_ratio_used": dynamics.ratio,  # the share of the untrusted train + validation rows marked
        # the trusted sample: rows, wrong, rate and 95% interval, and how the cleaning did on it
        "trusted": diagnostics.trusted,
        "cleaning": diagnostics.cleaning,
        "abstained": diagnostics.abstained,  # rows without a label: how many were predicted (and how well, with gold)
        "detection": diagnostics.detection,
        "timings_s": timer.seconds,
        "plm_seconds": 0.0 if stage1.entry["hit"] else stage1.result.plm_seconds,
        "peak_host_mb": timer.peak_host(),
        "peak_host_mb_after": timer.peak_host_mb,  # peak so far, at the end of each stage
        "host_mb_after": timer.host_mb,  # resident at the end of each stage: all, own data, mapped files
        "peak_gpu_mb": timer.peak_gpu(),
        "accuracy_before": inference.accuracy_before,
        "accuracy_after": inference.accuracy_after,
        # the method's reported test accuracy: after stage 2, or the stage-1 prediction
        "accuracy": inference.accuracy_after if settings.stage2 else inference.accuracy_before,
    }


def write_outputs(files: StagedFiles, config: Config, record: dict, models, tokenizer, vaes, arrays: dict) -> None:
    """The run record, the results-log line, the stage-2 accuracies, the detectors' arrays and
    (with --save_model) the last-epoch classifiers and the VAEs, staged in `files`."""
    cache = Path(config.cache_dir)
    if record["stage2"]:
        stage2_acc = np.array([r.get("test_accuracy") or np.nan for r in record["stage2"]], dtype=np.float64)
        with files.open_shared(cache / f"dygen_acc_{config.noise_ratio}_{config.total_iter}.npy") as f:
            np.save(f, stage2_acc)
    if arrays:  # per-example detector scores and flags, for the precision-recall figure
        record["arrays"] = str(cache / "runs" / f"{record['run_id']}.npz")
        with files.open(record["arrays"]) as f:
            np.savez_compressed(f, **arrays)
    if config.save_model:  # last-epoch classifiers (from_pretrained-loadable) and the VAEs
        save_models(files, Path(config.model_dir) / record["run_id"], models, tokenizer, vaes)
    with files.open(cache / "runs" / f"{record['run_id']}.json") as f:
        f.write(json_bytes(record))
    c = config
    files.append_line(cache / f"{c.dataset}-results.logs", "\t".join(str(x) for x in [
        record["finished_at"], record["run_id"], f"method={record['method_label']}",
        f"bert={record['resolved']['bert']}",
        f"noise={record['resolved']['noise_type']}", f"ratio={c.noise_ratio}", f"seed={c.seed}",
        f"epochs={c.epochs}", f"total_iter={c.total_iter}", f"lr={c.lr}", f"vae_lr={c.vae_lr}",
        f"lambda_t={c.lambda_t}", f"acc_before={fmt(record['accuracy_before'])}",
        f"acc_after={fmt(record['accuracy_after'])}", f"acc={fmt(record['accuracy'])}",
        f"stage1_reused={record['stage1_cache']['hit']}", f"total_s={record['timings_s']['total']:.1f}",
    ]))


def save_models(files: StagedFiles, out: Path, models, tokenizer, vaes) -> None:
    """model_save/<run_id>/: classifier_<m>/ (save_pretrained) and vae_<m>.pt, staged as one
    folder. Whatever fails to write (safetensors and torch.save raise their own error types)
    is one line naming --model_dir."""
    from safetensors import SafetensorError

    folder = files.folder(out)
    try:
        for m, model in enumerate(models):
            model.save_pretrained(folder / f"classifier_{m}")
            tokenizer.save_pretrained(folder / f"classifier_{m}")
        for m, vae in enumerate(vaes):
            torch.save(vae.state_dict(), folder / f"vae_{m}.pt")
    except (OSError, RuntimeError, SafetensorError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise UserError(f"--model_dir {out}: the models could not be written ({reason}); nothing of this "
                        f"run was kept") from None


def suggestion_record(suggestion: dict, quality: dict | None) -> dict:
    """The record's `suggestion`: the margin and where it came from, how many labels it changes,
    the cross-fitted estimate on trusted rows (None without them) and, with gold, `quality` (on
    the rows nobody checked)."""
    return {**{k: v for k, v in suggestion.items() if k != "labels"}, "gold": quality}


def ranking_note(suggestion: dict) -> str:
    """The ROC AUC of ranking the unchecked rows by given_label_prob and by noise_score (with gold
    labels), for the log."""
    gold = suggestion.get("gold") or {}
    aucs = {column: (gold.get(key) or {}).get("roc_auc")
            for column, key in (("given_label_prob", "ranking"), ("noise_score", "noise_score_ranking"))}
    parts = [f"{column} {auc:.4f}" for column, auc in aucs.items() if auc is not None]
    return f"; ranking AUC by {', '.join(parts)}" if parts else ""


def suggestion_line(suggestion: dict) -> str:
    """How many labels the run suggests changing and how sure it is that such a change is right."""
    estimate, checked = suggestion["estimate"], suggestion.get("changes_checked", 0)
    head = f"{suggestion['changes']} suggested (suggested_label"
    if checked:  # a checked row's suggestion is its verified label
        head += f": {checked} checked rows' verified labels and {suggestion['changes'] - checked} changes"
    if estimate is None and suggestion.get("trusted_rows"):  # all of them trained stage 1
        return head + ("; with fewer than 2 trusted rows kept out of stage 1 no other change is suggested: "
                       "raise --calibration_share)")
    if estimate is None:
        return head + ("; without trusted rows no change is suggested: how often a change would be right is "
                       "unknown; check rows by hand, highest noise_score first, and pass them with "
                       "--trusted_column)")
    right, rows = estimate["changes_right"], estimate["given_right"]["of"]
    if not suggestion.get("changes_help", True):
        return head + (f"; on the {rows} trusted rows kept out of stage 1, cross-fitted, the suggestions were right "
                       f"on {estimate['suggested_right']['share']:.1%}, the given labels on "
                       f"{estimate['given_right']['share']:.1%}: no other change is suggested)")
    line = head + f" at margin {suggestion['margin']:.3f}"
    if right["of"] == 0:
        return line + f"; cross-fitted on the {rows} trusted rows kept out of stage 1, it changed none of them)"
    low, high = right["interval"]
    return line + (f"; on the {rows} trusted rows kept out of stage 1, cross-fitted, {right['count']} of "
                   f"{right['of']} suggested changes were right: {right['share']:.1%}, 95% interval "
                   f"{low:.1%}-{high:.1%})")


def write_labels(files: StagedFiles, config: Config, run_id: str, splits, cleaned: np.ndarray, noise_score: np.ndarray,
                 marked: np.ndarray, test_probs: np.ndarray | None, abstained_probs: np.ndarray | None = None,
                 suggested: np.ndarray | None = None) -> Path:
    """cache/runs/<run_id>-labels.csv: train and validation rows (those without a label after the
    labelled ones of their split, with an empty noisy_label); test rows when test is unlabelled.

    cleaned [N_train + N_val, C] = P(y | x, noisy label); noise_score, marked and suggested
    [N_train + N_val] (mean score over the models; marked by any model; the label to apply);
    test_probs [N_test, C] and abstained_probs [N_abstained, C] = P(y | x).
    """
    rows, start = [], 0
    for name, split in (("train", splits.train), ("validation", splits.validation)):
        part = slice(start, start + len(split))
        rows += label_rows(name, split.texts, splits.class_names, cleaned[part], split.noisy,
                           noise_score[part], marked[part], split.gold, trusted=split.trusted,
                           suggested=None if suggested is None else suggested[part])
        start += len(split)
    start = 0
    for name, split in splits.abstained_items():  # no label given: the prediction P(y | x)
        rows += label_rows(name, split.texts, splits.class_names, abstained_probs[start : start + len(split)],
                           gold=split.gold, first_index=len(getattr(splits, name)))
        start += len(split)
    if splits.test.gold is None and len(splits.test):
        rows += label_rows("test", splits.test.texts, splits.class_names, test_probs, splits.test.noisy)
    path = Path(config.cache_dir) / "runs" / f"{run_id}-labels.csv"
    write_labels_csv(path, rows, open_file=files.open)
    return path


def write_cleaning_figure(files: StagedFiles, config: Config, run_id: str, setup: Setup, data: Data,
                          scores: np.ndarray, marks: list, suggested: np.ndarray) -> Path:
    """<figure_dir>/<run_id>-cleaning.png (figures.plot_cleaning): each model's marking `scores`
    [M, N] and `marks` (M x [N]), the given and the `suggested` labels [N], over train+validation."""
    from src.outputs.figures import plot_cleaning

    path = Path(config.figure_dir) / f"{run_id}-cleaning.png"
    score_name = "last-epoch loss" if setup.settings.marking == "loss" else "dynamics score"
    plot_cleaning(path, scores, np.stack(marks), data.given, suggested, data.splits.class_names, data.gold, score_name,
                  trusted=data.trusted >= 0, open_file=files.open,
                  title=f"{config.dataset}, {run_label(config)}, seed {config.seed}: noise score and marking "
                        f"(top), labels before and after cleaning (bottom)")
    return path


def log_summary(record: dict, labels_file: Path) -> None:
    """The run's last log lines: the accuracies, the timings, the detectors, the trusted rows,
    then the two files a user opens: the cleaned labels and the picture of the cleaning."""
    cleaning, detection, trusted = record["cleaning"], record["detection"], record["trusted"]
    log(f"{record['method_label']}: test accuracy {fmt(record['accuracy'])} (stage-1 prediction "
        f"{fmt(record['accuracy_before'])}, after stage 2 {fmt(record['accuracy_after'])})"
        + "".join(f"; marking m{m}: precision {q['precision']:.3f} recall {q['recall']:.3f}"
                  for m, q in enumerate(record["marking"]) if q and q["marked"]))
    gpu = record["peak_gpu_mb"]
    log("seconds: " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in record["timings_s"].items())
        + f"; peak host memory {record['peak_host_mb']:.0f} MB"
        + ("" if gpu is None else f", peak GPU memory {gpu:.0f} MB"))
    if detection:
        log("noise detection (train+validation): " + "; ".join(
            f"{name} P {detection[name]['precision']:.3f} R {detection[name]['recall']:.3f} "
            f"F1 {detection[name]['f1']:.3f} AUC {fmt(detection[name]['roc_auc'])}"
            for name in ("dynamics", "loss", "confident_learning"))
            + ranking_note(record["suggestion"]))
    if trusted:
        log(f"trusted rows ({trusted['rows']}, {trusted['source']}): the given label is the verified one on "
            f"{trusted['given_agrees']:.1%}, the cleaned label on {trusted['cleaned_agrees']:.1%} ({trusted['fixed']} "
            f"wrong labels fixed, {trusted['broken']} right ones changed; optimistic, as each informs its own prior)")
    log(f"cleaned labels: {cleaning['changed']} of {cleaning['total']} changed (cleaned_label); "
        + suggestion_line(record["suggestion"]) + f"; written to {labels_file}")
    log(f"picture of the cleaning: {record['figure']}")
