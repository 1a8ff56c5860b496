"""run(config): data -> stage 1 -> dynamics -> prior -> stage 2 -> inference -> results files.

Each step is a function call; no step reaches back. Printing and files happen here and in
the training loops only; the maths lives in pure functions in the stage modules.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from src.config import Config
from src.data import MAX_LENGTH, apply_noise, check_knn_size, load_dataset, noise_rate
from src.data.cache import cached_encode
from src.dynamics.euclidean_dist import distance_trajectories, dynamics_score, mark_noisy
from src.dynamics.noise_rate import AUTO_ESTIMATOR, estimate_noise_rates
from src.errors import UserError
from src.model.evaluate import accuracy, denoise, marking_quality, posterior_given_label
from src.model.generate_prior import dirichlet_prior, knn_predict_proba
from src.model.plm import load_classifier, load_tokenizer, max_positions
from src.model.train_stage1 import encode, train_stage1
from src.model.train_stage2 import Trajectories, train_stage2
from src.utils.common import (
    StageTimer,
    append_line,
    atomic_save_npy,
    atomic_write_json,
    peak_gpu_mb,
    peak_host_mb,
    resolve_device,
    seed_everything,
)
from src.utils.labels_file import cleaning_quality, label_rows, write_labels_csv


def log(message: str) -> None:
    tqdm.write(message)


def run(config: Config) -> dict:
    """Run the whole method once; returns the run record also written to cache/runs/."""
    started = time.perf_counter()
    timer = StageTimer()
    device = resolve_device(config.device)
    precision = config.precision if config.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    model_name = config.model_name()
    seed_everything(config.seed)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.backends.cuda.matmul.allow_tf32 = True

    # ---- data and noise ---------------------------------------------------------------
    with timer("data"):
        splits = apply_noise(load_dataset(config.dataset, config.path, config.seed),
                             config.noise_type, config.noise_ratio, config.seed)
        check_knn_size(splits, config.noise_ratio, k=10)  # before anything is written
        max_length = config.max_length or MAX_LENGTH.get(config.dataset, 128)
        limit = max_positions(model_name)
        if limit is not None and max_length > limit:
            raise UserError(f"--max_length {max_length}: beyond the model's position limit {limit}")
        tokenizer = load_tokenizer(model_name)
        train, val, test = splits.train, splits.validation, splits.test
        texts = cached_encode(encode, tokenizer, splits, max_length, cache_dir=config.cache_dir,
                              reuse=config.saved_dataset == "y", noise_type=config.noise_type,
                              noise_ratio=config.noise_ratio, seed=config.seed)
    n_train, n_val, n_test = len(train), len(val), len(test)
    num_classes = splits.num_classes
    log(f"{splits.name}: {n_train} train / {n_val} validation / {n_test} test, {num_classes} classes, "
        f"train noise rate {_fmt(noise_rate(train))}; model {model_name} on {device} ({precision})")

    # ---- stage 1: co-regularised fine-tuning, embeddings recorded every epoch -----------
    with timer("stage1"):
        models = []
        for m in range(config.n_model):
            torch.manual_seed(config.seed * 1000 + m)  # a different head for each model
            models.append(load_classifier(model_name, num_classes))
        stage1 = train_stage1(
            models, texts, train.noisy, val.noisy,
            epochs=config.epochs, batch_size=config.train_batch_size,
            eval_batch_size=config.eval_batch_size, lr=config.lr, weight_decay=config.weight_decay,
            alpha_t_hi=config.alpha_t_hi, clip_gradient_norm=config.clip_gradient_norm,
            lr_schedule=config.lr_schedule, device=device, precision=precision, seed=config.seed,
            show_progress=config.progress, compile_models=config.compile,
        )
    test_rows = np.arange(n_train + n_val, n_train + n_val + n_test)
    test_noisy_probs = stage1.probs[:, test_rows]  # [M, N_test, C]
    accuracy_before = accuracy(test_noisy_probs.mean(0), test.gold)

    # ---- dynamics: distance to the noisy label's centroid, score, marking ---------------
    with timer("dynamics"):
        fit_labels = np.concatenate([train.noisy, val.noisy])  # train + validation, noisy only
        labels_t = torch.as_tensor(fit_labels)
        scores = np.stack([  # [M, N_train + N_val]
            dynamics_score(distance_trajectories(stage1.embeddings[m][:, : n_train + n_val], labels_t,
                                                 num_classes)).numpy()
            for m in range(config.n_model)])
        # The marking ratio: --noise_ratio, or with `auto` an estimate from this run (noise_rate.py).
        estimates = estimate_noise_rates(stage1.embeddings[:, :, : n_train + n_val],
                                         stage1.probs[:, : n_train + n_val], scores, fit_labels,
                                         num_classes, seed=config.seed)
        ratio = estimates[AUTO_ESTIMATOR] if config.noise_ratio == "auto" else config.noise_ratio
        log(f"noise rate estimate {estimates[AUTO_ESTIMATOR]:.4f} ({AUTO_ESTIMATOR}); marking "
            f"{ratio:.4f} of train+validation" + ("" if config.noise_ratio == "auto" else " (--noise_ratio)"))
        marks = [mark_noisy(torch.as_tensor(score), ratio).numpy() for score in scores]
        fit_gold = None if train.gold is None or val.gold is None else np.concatenate([train.gold, val.gold])
        marking = [marking_quality(mark, fit_labels, fit_gold) for mark in marks]

    # ---- prior: kNN on first-epoch embeddings of the unmarked examples ----------------
    with timer("prior"):
        priors = []
        for m in range(config.n_model):
            first_epoch = stage1.embeddings[m, 0, : n_train + n_val]
            proba = knn_predict_proba(first_epoch, fit_labels, marks[m], num_classes)
            alpha = dirichlet_prior(proba, config.knn_mode, config.prior_norm, config.selected_class)
            priors.append(alpha[:n_train])  # stage 2 trains on the train split

    # ---- stage 2: co-regularised Dirichlet VAEs, test accuracy logged each epoch -------
    with timer("stage2"):
        trajectories = Trajectories(stage1.embeddings, device)

        def test_accuracy(epoch, vaes):
            if n_test == 0 or test.gold is None:  # no labelled test split: nothing to report
                return {"test_accuracy": None}
            probs = denoise(vaes, trajectories, test_rows, test_noisy_probs)
            return {"test_accuracy": accuracy(probs, test.gold)}

        vaes, stage2_history = train_stage2(
            trajectories, np.arange(n_train), train.noisy, priors, num_classes,
            total_iter=config.total_iter, batch_size=config.vae_batch_size, lr=config.vae_lr,
            beta=config.beta, lambda_t=config.lambda_t, warmup_epochs=config.warmup_epochs,
            softplus_beta=config.softplus_beta, seed=config.seed, on_epoch_end=test_accuracy,
            show_progress=config.progress,
        )
        for record in stage2_history:
            log(f"stage 2 epoch {record['epoch']}/{config.total_iter}: loss {record['loss']:.4f}  "
                f"test acc {_fmt(record['test_accuracy'])}")

    # ---- inference: P(y|x) = sum over noisy labels, with the last-epoch models ---------
    with timer("inference"):
        denoised = denoise(vaes, trajectories, test_rows, test_noisy_probs) if n_test else None
        accuracy_after = accuracy(denoised, test.gold)
        cleaned = posterior_given_label(vaes, trajectories, np.arange(n_train + n_val), fit_labels)  # [N, C]
    cleaning = cleaning_quality(fit_labels, cleaned.argmax(1), fit_gold)

    timer.seconds["total"] = time.perf_counter() - started
    record = {
        "run_id": _run_id(config),
        "finished_at": dt.datetime.now().isoformat(timespec="seconds"),
        "config": config.to_dict(),
        "resolved": {"bert": model_name, "max_length": max_length, "device": str(device),
                     "precision": precision, "noise_type": config.noise_type or
                     ("real" if splits.real_noise else "SN")},
        "data": {"train": n_train, "validation": n_val, "test": n_test, "num_classes": num_classes,
                 "class_names": splits.class_names, "dropped": splits.dropped,
                 "train_noise_rate": noise_rate(train), "validation_noise_rate": noise_rate(val)},
        "stage1": stage1.history,
        "stage2": stage2_history,
        "marking": marking,
        "noise_ratio_estimate": estimates[AUTO_ESTIMATOR],
        "noise_ratio_estimates": estimates,
        "noise_ratio_used": ratio,
        "cleaning": cleaning,
        "timings_s": timer.seconds,
        "plm_seconds": stage1.plm_seconds,
        "peak_host_mb": peak_host_mb(),
        "peak_host_mb_after": timer.peak_host_mb,  # peak so far, at the end of each stage
        "peak_gpu_mb": peak_gpu_mb(),
        "accuracy_before": accuracy_before,
        "accuracy_after": accuracy_after,
    }
    labels_file = _write_labels(config, record["run_id"], splits, cleaned, scores.mean(0),
                                np.any(marks, axis=0), denoised)
    _write_outputs(config, record, models, tokenizer, vaes)
    log(f"cleaned labels: {cleaning['changed']} of {cleaning['total']} changed, written to {labels_file}")
    log(f"accuracy before denoising {_fmt(accuracy_before)}, after {_fmt(accuracy_after)}"
        + "".join(f"; marking m{m}: precision {q['precision']:.3f} recall {q['recall']:.3f}"
                  for m, q in enumerate(marking) if q))
    return record


def _write_outputs(config: Config, record: dict, models, tokenizer, vaes) -> None:
    cache = Path(config.cache_dir)
    stage2_acc = np.array([r.get("test_accuracy") or np.nan for r in record["stage2"]], dtype=np.float64)
    atomic_save_npy(cache / f"dygen_acc_{config.noise_ratio}_{config.total_iter}.npy", stage2_acc)
    atomic_write_json(cache / "runs" / f"{record['run_id']}.json", record)
    c = config
    append_line(cache / f"{c.dataset}-results.logs", "\t".join(str(x) for x in [
        record["finished_at"], record["run_id"], f"bert={record['resolved']['bert']}",
        f"noise={record['resolved']['noise_type']}", f"ratio={c.noise_ratio}", f"seed={c.seed}",
        f"epochs={c.epochs}", f"total_iter={c.total_iter}", f"lr={c.lr}", f"vae_lr={c.vae_lr}",
        f"lambda_t={c.lambda_t}", f"acc_before={_fmt(record['accuracy_before'])}",
        f"acc_after={_fmt(record['accuracy_after'])}", f"total_s={record['timings_s']['total']:.1f}",
    ]))
    if config.save_model:  # last-epoch classifiers (from_pretrained-loadable) and the VAEs
        out = Path(config.model_dir) / record["run_id"]
        for m, (model, vae) in enumerate(zip(models, vaes)):
            model.save_pretrained(out / f"classifier_{m}")
            tokenizer.save_pretrained(out / f"classifier_{m}")
            torch.save(vae.state_dict(), out / f"vae_{m}.pt")


def _write_labels(config: Config, run_id: str, splits, cleaned: np.ndarray, noise_score: np.ndarray,
                  marked: np.ndarray, test_probs: np.ndarray) -> Path:
    """cache/runs/<run_id>-labels.csv: train and validation rows; test rows when test is unlabelled.

    cleaned [N_train + N_val, C] = P(y | x, noisy label); noise_score and marked [N_train + N_val]
    (mean score over the models; marked by any model); test_probs [N_test, C] = P(y | x).
    """
    rows, start = [], 0
    for name, split in (("train", splits.train), ("validation", splits.validation)):
        part = slice(start, start + len(split))
        rows += label_rows(name, split.texts, splits.class_names, cleaned[part], split.noisy,
                           noise_score[part], marked[part], split.gold)
        start += len(split)
    if splits.test.gold is None and len(splits.test):
        rows += label_rows("test", splits.test.texts, splits.class_names, test_probs, splits.test.noisy)
    path = Path(config.cache_dir) / "runs" / f"{run_id}-labels.csv"
    write_labels_csv(path, rows)
    return path


def _run_id(config: Config) -> str:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    noise = config.noise_type or "default"
    return f"{config.dataset}-{noise}-{config.noise_ratio}-seed{config.seed}-{stamp}-{uuid.uuid4().hex[:6]}"


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"
