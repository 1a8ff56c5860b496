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
from src.data.texts import encode
from src.dynamics.euclidean_dist import distance_trajectories, dynamics_score, mark_noisy
from src.dynamics.noise_rate import AUTO_ESTIMATOR, estimate_noise_rates
from src.errors import UserError
from src.methods import ablations_of, plan, run_label
from src.model import stage1_cache
from src.model.detection import clean_noisy_curves, cross_entropy_scores, detection_metrics, detector_scores
from src.model.evaluate import accuracy, denoise, marking_quality, posterior_given_label
from src.model.generate_prior import dirichlet_prior, knn_predict_proba, npc_anchors
from src.model.plm import (
    load_tokenizer,
    max_positions,
    resolve_model_path,
)
from src.model.train_stage1 import new_classifiers, train_stage1
from src.model.train_stage2 import Trajectories, stage2_z_dtype, train_stage2
from src.utils.batches import shuffled_batches
from src.utils.common import (
    StageTimer,
    append_line,
    atomic_file,
    atomic_save_npy,
    atomic_write_json,
    check_writable_dir,
    configure_cuda,
    peak_gpu_mb,
    peak_host_mb,
    release_freed_host_memory,
    resolve_runtime,
    seed_everything,
)
from src.utils.labels_file import cleaning_quality, label_rows, write_labels_csv
from src.utils.row_file import column


def log(message: str) -> None:
    tqdm.write(message)


def run(config: Config) -> dict:
    """Run the whole method once; returns the run record also written to cache/runs/."""
    started = time.perf_counter()
    timer = StageTimer()
    # Where results go, before any work (not a traceback after hours of training).
    for folder in ("", "data", "runs", "stage1"):
        check_writable_dir(Path(config.cache_dir) / folder, "--cache_dir")
    if config.save_model:
        check_writable_dir(config.model_dir, "--model_dir")
    with timer("setup"):  # on CUDA this starts the device context
        runtime = resolve_runtime(config)
        device, precision = runtime.device, runtime.precision
        model_name = config.model_name()
        settings = plan(config)  # the method and its ablations as stage settings (src/methods.py)
        label = run_label(config)
        seed_everything(config.seed)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            configure_cuda()

    # ---- data and noise ---------------------------------------------------------------
    with timer("data"):
        splits = apply_noise(load_dataset(config.dataset, config.path, config.seed),
                             config.noise_type, config.noise_ratio, config.seed)
        check_knn_size(splits, config.noise_ratio, k=10)  # before anything is written
        max_length = config.max_length or MAX_LENGTH.get(config.dataset, 128)
        limit = max_positions(model_name)
        if limit is not None and max_length > limit:
            raise UserError(f"--max_length {max_length}: beyond the model's position limit {limit}")
        train, val, test = splits.train, splits.validation, splits.test
    with timer("tokenize"):
        tokenizer = load_tokenizer(model_name)
        texts = cached_encode(encode, tokenizer, splits, max_length, cache_dir=config.cache_dir,
                              reuse=config.saved_dataset == "y", noise_type=config.noise_type,
                              noise_ratio=config.noise_ratio, seed=config.seed)
        release_freed_host_memory()  # the tokenizer's per-text objects
    n_train, n_val, n_test = len(train), len(val), len(test)
    num_classes = splits.num_classes
    log(f"{splits.name}: {n_train} train / {n_val} validation / {n_test} test, {num_classes} classes, "
        f"train noise rate {_fmt(noise_rate(train))}; model {model_name} on {device} ({precision}); "
        f"method {label}")

    # ---- stage 1: co-regularised fine-tuning, embeddings recorded every epoch -----------
    # (reused from cache_dir/stage1 when a run with the same settings finished before)
    with timer("stage1"):
        options = {  # train_stage1's settings: both its arguments and part of the cache key
            "epochs": config.epochs, "batch_size": config.train_batch_size,
            "eval_batch_size": runtime.eval_batch_size, "lr": config.lr,
            "weight_decay": config.weight_decay, "alpha_t_hi": settings.alpha_t_hi,
            "clip_gradient_norm": config.clip_gradient_norm, "lr_schedule": config.lr_schedule,
            "precision": precision, "seed": config.seed,
            "split_batches": runtime.split_batches,
            "cuda_graphs": runtime.cuda_graphs,
        }
        key_parts = {
            "ids": stage1_cache.array_digest(texts.input_ids.numpy()), "n_train": n_train, "n_val": n_val,
            "train_labels": stage1_cache.array_digest(train.noisy),
            "val_labels": stage1_cache.array_digest(val.noisy), "num_classes": num_classes,
            "model": stage1_cache.model_identity(model_name, resolve_model_path(model_name)),
            "n_model": settings.n_model, "device": device.type, "options": options,
            "code": stage1_cache.code_identity(),
        }
        models = []

        def fine_tune(trajectory_dir):
            models.extend(new_classifiers(model_name, num_classes, settings.n_model, config.seed))
            return train_stage1(models, texts, train.noisy, val.noisy, device=device,
                                show_progress=config.progress, compile_models=config.compile,
                                trajectory_dir=trajectory_dir, **options)

        # --save_model needs the classifiers themselves, so it always trains.
        stage1, stage1_entry = stage1_cache.load_or_train(
            Path(config.cache_dir) / "stage1", key_parts, fine_tune,
            reuse=config.reuse_stage1 and not config.save_model)
        if stage1_entry["hit"]:
            log(f"stage 1: reused {Path(config.cache_dir) / 'stage1' / stage1_entry['key']}")
    n_model = settings.n_model
    test_rows = np.arange(n_train + n_val, n_train + n_val + n_test)
    test_noisy_probs = stage1.probs[:, test_rows]  # [M, N_test, C]
    accuracy_before = accuracy(test_noisy_probs.mean(0), test.gold)

    # ---- dynamics: distance to the noisy label's centroid, score, marking ---------------
    with timer("dynamics"):
        fit_rows = np.arange(n_train + n_val)  # train + validation, noisy labels only
        fit_labels = np.concatenate([train.noisy, val.noisy])
        labels_t = torch.as_tensor(fit_labels)
        distances, scores = [], []
        for m in range(n_model):
            d = distance_trajectories(stage1.embeddings[m], labels_t, num_classes)  # train + validation rows
            distances.append(d.numpy())  # [E, N_train + N_val]
            scores.append(dynamics_score(d).numpy())  # [N_train + N_val]
        scores = np.stack(scores)  # [M, N_train + N_val]
        # The marking ratio: the plan's (--noise_ratio; 0 for methods without marking), or with
        # `auto` an estimate from this run (noise_rate.py). The estimators run only then: their
        # leave-one-out kNN searches cost more than the rest of this stage at WOS size.
        estimates = {}
        if config.noise_ratio == "auto":
            estimates = estimate_noise_rates(stage1.embeddings, stage1.probs[:, : n_train + n_val], scores, fit_labels,
                                             num_classes, seed=config.seed)
            log(f"noise rate estimate {estimates[AUTO_ESTIMATOR]:.4f} ({AUTO_ESTIMATOR})")
        ratio = estimates[AUTO_ESTIMATOR] if settings.mark_ratio == "auto" else settings.mark_ratio
        if settings.mark_ratio == "auto" and settings.knn_fit == "unmarked":  # the estimate may leave < k
            check_knn_size(splits, "auto", k=10, estimate=ratio)
        log(f"marking {ratio:.4f} of train+validation"
            + ("" if config.noise_ratio == "auto" else " (--noise_ratio)"))
        if settings.marking == "loss":  # --no_dynamics: the same share, by each model's last-epoch loss
            mark_by = [cross_entropy_scores(stage1.probs[m, fit_rows], fit_labels) for m in range(n_model)]
        else:
            mark_by = scores
        marks = [mark_noisy(score, ratio) for score in mark_by]
        fit_gold = None if train.gold is None or val.gold is None else np.concatenate([train.gold, val.gold])
        marking = [marking_quality(mark, fit_labels, fit_gold) for mark in marks]

    # ---- noise detection (diagnostic: gold labels are read here only) -------------------
    detection, detection_arrays = None, {}
    if fit_gold is not None:
        wrong = fit_labels != fit_gold
        detectors = detector_scores(np.mean(scores, 0), stage1.probs[:, fit_rows].mean(0), fit_labels,
                                    num_classes, ratio)
        detection = {name: detection_metrics(flags, score, wrong) for name, (flags, score) in detectors.items()}
        detection["distance_curves"] = clean_noisy_curves(np.mean(distances, 0), wrong)
        detection_arrays = {"wrong": wrong, **{f"{name}_score": score for name, (_, score) in detectors.items()},
                            **{f"{name}_flags": flags for name, (flags, _) in detectors.items()}}

    # ---- prior: kNN on first-epoch embeddings of the unmarked examples ----------------
    with timer("prior"):
        knn_epoch = 0 if settings.knn_epoch == "first" else -1
        priors = []
        for m in range(n_model):
            embedded = column(stage1.embeddings[m], knn_epoch, n_train + n_val)  # [N_train + N_val, D]
            left_out = marks[m]  # DyGen: fitted on the unmarked train + validation rows
            if settings.knn_fit == "npc":  # NPC: on the most confident example of each class per batch
                batches = shuffled_batches(n_train, config.train_batch_size, np.random.default_rng([config.seed, 3]))
                anchors = npc_anchors(stage1.probs[m, :n_train], train.noisy, batches)
                left_out = ~np.concatenate([anchors, np.zeros(n_val, dtype=bool)])
            # asked only for the train split that stage 2 trains on
            proba = knn_predict_proba(embedded, fit_labels, left_out, num_classes, rows=n_train,
                                      approximate=config.approximate_knn)
            priors.append(dirichlet_prior(proba, config.knn_mode, settings.prior_norm, config.selected_class))

    # ---- stage 2: co-regularised Dirichlet VAEs, test accuracy logged each epoch -------
    vaes, stage2_history, accuracy_after = [], [], None
    if settings.stage2:
        with timer("stage2"):
            epochs = slice(None) if settings.trajectory == "all" else slice(-1, None)
            trajectories = Trajectories(stage1.embeddings, device, epochs,  # z: every epoch, or the last
                                        dtype=stage2_z_dtype(device, precision))

            def test_accuracy(epoch, vaes):
                if n_test == 0 or test.gold is None:  # no labelled test split: nothing to report
                    return {"test_accuracy": None}
                probs = denoise(vaes, trajectories, test_rows, test_noisy_probs)
                return {"test_accuracy": accuracy(probs, test.gold)}

            vaes, stage2_history = train_stage2(
                trajectories, np.arange(n_train), train.noisy, priors, num_classes,
                total_iter=config.total_iter, batch_size=config.vae_batch_size, lr=config.vae_lr,
                beta=config.beta, lambda_t=settings.lambda_t, warmup_epochs=config.warmup_epochs,
                softplus_beta=config.softplus_beta, normalise_sample=config.dirichlet_sample == "normalised",
                seed=config.seed, on_epoch_end=test_accuracy,
                show_progress=config.progress, cuda_graph=runtime.cuda_graphs,
            )
            for record in stage2_history:
                log(f"stage 2 epoch {record['epoch']}/{config.total_iter}: loss {record['loss']:.4f}  "
                    f"test acc {_fmt(record['test_accuracy'])}")

    # ---- inference: P(y|x) = sum over noisy labels, with the last-epoch models ---------
    with timer("inference"):
        if settings.stage2:
            denoised = denoise(vaes, trajectories, test_rows, test_noisy_probs) if n_test else None
            accuracy_after = accuracy(denoised, test.gold)
            cleaned = posterior_given_label(vaes, trajectories, fit_rows, fit_labels)  # [N, C]
        else:  # base / coreg: the stage-1 prediction is the method's answer
            denoised = test_noisy_probs.mean(0) if n_test else None
            cleaned = stage1.probs[:, fit_rows].mean(0)
    cleaning = cleaning_quality(fit_labels, cleaned.argmax(1), fit_gold)

    timer.seconds["total"] = time.perf_counter() - started
    record = {
        "run_id": _run_id(config),
        "finished_at": dt.datetime.now().isoformat(timespec="seconds"),
        "method": config.method,
        "ablations": ablations_of(config),
        "method_label": label,
        "plan": settings.to_dict(),
        "config": config.to_dict(),
        "resolved": {"bert": model_name, "max_length": max_length, "device": str(device),
                     "precision": precision, "noise_type": config.noise_type or
                     ("real" if splits.real_noise else "SN")},
        "data": {"train": n_train, "validation": n_val, "test": n_test, "num_classes": num_classes,
                 "class_names": splits.class_names, "dropped": splits.dropped,
                 "train_noise_rate": noise_rate(train), "validation_noise_rate": noise_rate(val)},
        "stage1_cache": stage1_entry,
        "stage1": stage1.history,
        "stage1_host_mb": stage1.host_mb,  # resident host memory as stage 1 sets up (empty when reused)
        "stage2": stage2_history,
        "marking": marking,
        "noise_ratio_estimate": estimates.get(AUTO_ESTIMATOR),  # None unless --noise_ratio auto
        "noise_ratio_estimates": estimates,
        "noise_ratio_used": ratio,
        "cleaning": cleaning,
        "detection": detection,
        "timings_s": timer.seconds,
        "plm_seconds": 0.0 if stage1_entry["hit"] else stage1.plm_seconds,
        "peak_host_mb": peak_host_mb(),
        "peak_host_mb_after": timer.peak_host_mb,  # peak so far, at the end of each stage
        "host_mb_after": timer.host_mb,  # resident at the end of each stage: all, own data, mapped files
        "peak_gpu_mb": peak_gpu_mb(),
        "accuracy_before": accuracy_before,
        "accuracy_after": accuracy_after,
        # the method's reported test accuracy: after stage 2, or the stage-1 prediction
        "accuracy": accuracy_after if settings.stage2 else accuracy_before,
    }
    labels_file = _write_labels(config, record["run_id"], splits, cleaned, scores.mean(0),
                                np.any(marks, axis=0), denoised)
    _write_outputs(config, record, models, tokenizer, vaes, detection_arrays)
    log(f"cleaned labels: {cleaning['changed']} of {cleaning['total']} changed, written to {labels_file}")
    log(f"{label}: test accuracy {_fmt(record['accuracy'])} (stage-1 prediction {_fmt(accuracy_before)}, "
        f"after stage 2 {_fmt(accuracy_after)})"
        + "".join(f"; marking m{m}: precision {q['precision']:.3f} recall {q['recall']:.3f}"
                  for m, q in enumerate(marking) if q and q["marked"]))
    gpu = record["peak_gpu_mb"]
    log("seconds: " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in timer.seconds.items())
        + f"; peak host memory {record['peak_host_mb']:.0f} MB"
        + ("" if gpu is None else f", peak GPU memory {gpu:.0f} MB"))
    if detection:
        log("noise detection (train+validation): " + "; ".join(
            f"{name} P {detection[name]['precision']:.3f} R {detection[name]['recall']:.3f} "
            f"F1 {detection[name]['f1']:.3f} AUC {_fmt(detection[name]['roc_auc'])}"
            for name in ("dynamics", "loss", "confident_learning")))
    return record


def _write_outputs(config: Config, record: dict, models, tokenizer, vaes, arrays: dict) -> None:
    cache = Path(config.cache_dir)
    if record["stage2"]:
        stage2_acc = np.array([r.get("test_accuracy") or np.nan for r in record["stage2"]], dtype=np.float64)
        atomic_save_npy(cache / f"dygen_acc_{config.noise_ratio}_{config.total_iter}.npy", stage2_acc)
    if arrays:  # per-example detector scores and flags, for the precision-recall figure
        record["arrays"] = str(cache / "runs" / f"{record['run_id']}.npz")
        with atomic_file(record["arrays"]) as f:
            np.savez_compressed(f, **arrays)
    atomic_write_json(cache / "runs" / f"{record['run_id']}.json", record)
    c = config
    append_line(cache / f"{c.dataset}-results.logs", "\t".join(str(x) for x in [
        record["finished_at"], record["run_id"], f"method={record['method_label']}",
        f"bert={record['resolved']['bert']}",
        f"noise={record['resolved']['noise_type']}", f"ratio={c.noise_ratio}", f"seed={c.seed}",
        f"epochs={c.epochs}", f"total_iter={c.total_iter}", f"lr={c.lr}", f"vae_lr={c.vae_lr}",
        f"lambda_t={c.lambda_t}", f"acc_before={_fmt(record['accuracy_before'])}",
        f"acc_after={_fmt(record['accuracy_after'])}", f"acc={_fmt(record['accuracy'])}",
        f"stage1_reused={record['stage1_cache']['hit']}", f"total_s={record['timings_s']['total']:.1f}",
    ]))
    if config.save_model:  # last-epoch classifiers (from_pretrained-loadable) and the VAEs
        out = Path(config.model_dir) / record["run_id"]
        for m, model in enumerate(models):
            model.save_pretrained(out / f"classifier_{m}")
            tokenizer.save_pretrained(out / f"classifier_{m}")
        for m, vae in enumerate(vaes):
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
    label = run_label(config)
    return f"{config.dataset}-{noise}-{config.noise_ratio}-seed{config.seed}-{label}-{stamp}-{uuid.uuid4().hex[:6]}"


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"
