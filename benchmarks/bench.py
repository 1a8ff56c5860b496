"""Benchmarks: per-stage wall time and peak memory, printed as a table and a last `BENCH` line.

Modes (one per invocation, so each peak-memory figure belongs to one job):
  pipeline (default)  the whole method on --dataset/--bert (any main.py flag after `--`)
  --padding           stage 1 with dynamic padding (and length-split batches) vs every batch
                      padded to --max_length
  --synthetic-wos     dynamics, prior, stage 2 and inference at WOS size from synthetic embeddings
  --mfu               stage-1 training of a randomly initialised bert-base-sized model: model FLOP
                      utilisation against the GPU's bf16 peak
  --quick             the pipeline on the demo with 2 epochs (about a minute on 2 CPU cores)
  --profile           stage-1 training steps on --dataset/--bert under torch.profiler: the
                      operators that take the host's and the GPU's time, and the step time

Examples:
  python benchmarks/bench.py --quick
  python benchmarks/bench.py -- --dataset trec --path ../shared/datasets/trec --bert minilm
  python benchmarks/bench.py --padding -- --dataset trec --path ../shared/datasets/trec --bert minilm
  python benchmarks/bench.py --synthetic-wos
  python benchmarks/bench.py --mfu --device cuda
  python benchmarks/bench.py --profile -- --dataset trec --path ../shared/datasets/trec --bert minilm
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.accel.host_memory import (  # noqa: E402
    StageTimer,
    peak_gpu_mb,
    peak_host_mb,
    release_freed_host_memory,
)
from src.config import parse_config  # noqa: E402
from src.runtime import configure_cuda, resolve_device, resolve_runtime  # noqa: E402

# Dense bf16 peak of the GPUs we report on (datasheet, without sparsity).
BF16_PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0}


def print_table(rows: list[tuple[str, float]], extra: dict) -> None:
    """Seconds per stage; with a run record (`extra`), also the host memory when each ended:
    the peak so far and what is resident (own data + mapped files such as the CUDA libraries)."""
    peaks, now = extra.get("peak_host_mb_after", {}), extra.get("host_mb_after", {})
    print(f"{'stage':<12}{'seconds':>10}" + (f"{'peak MB':>10}{'resident MB (own + files)':>28}" if peaks else ""))
    for name, seconds in rows:
        line = f"{name:<12}{seconds:>10.2f}"
        if name in peaks:
            line += f"{peaks[name]:>10.0f}"
            if now.get(name):
                line += f"{now[name]['rss']:>12.0f} ({now[name]['anon']:.0f} + {now[name]['file']:.0f})"
        print(line)
    gpu = extra.get("peak_gpu_mb")
    print(f"peak host memory {extra['peak_host_mb']:.0f} MB, peak GPU memory "
          f"{'n/a' if gpu is None else f'{gpu:.0f} MB'}")


def bench_line(values: dict) -> str:
    parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items() if v is not None]
    return "BENCH " + " ".join(parts)


def pipeline(argv: list[str]) -> dict:
    from src.pipeline import run

    # stage 1 is trained every time: a cached one would leave nothing to measure
    config = parse_config([*argv, "--no-progress", "--cache_dir", "cache/bench", "--no-reuse_stage1"])
    record = run(config)
    t = record["timings_s"]
    print_table([(k, v) for k, v in t.items()], record)
    return {"total_s": t["total"], "stage1_s": t["stage1"], "plm_share": record["plm_seconds"] / t["total"],
            "peak_host_mb": record["peak_host_mb"], "peak_gpu_mb": record["peak_gpu_mb"],
            "accuracy_before": record["accuracy_before"], "accuracy_after": record["accuracy_after"]}


def padding(argv: list[str], repeat: int = 1) -> dict:
    """Stage 1 on the same data and seed in three arms: every batch padded to --max_length;
    dynamic padding (each batch to its longest text); dynamic padding with each batch run as
    length-sorted micro-batches (`--split_batches`). `padding_speedup` compares the padded arm
    with what a run does by default here (split on CPU in fp32, else unsplit).

    With `repeat` > 1 the arms alternate `repeat` times (fresh, identically seeded models each
    time) and the medians are reported: on a shared machine single timings vary by 10%.
    """
    from src.accel.stage1 import Stage1Speedups
    from src.data import MAX_LENGTH, apply_noise, load_dataset
    from src.data.texts import encode
    from src.stage1.plm import load_classifier, load_tokenizer
    from src.stage1.train_stage1 import Stage1Settings, train_stage1

    config = parse_config([*argv, "--no-progress"])
    runtime = resolve_runtime(config)
    device, precision = runtime.device, runtime.precision
    splits = apply_noise(load_dataset(config.dataset, config.path, config.seed), config.noise_type,
                         config.noise_ratio, config.seed)
    max_length = config.max_length or MAX_LENGTH.get(config.dataset, 128)
    tokenizer = load_tokenizer(config.model_name())
    all_texts = splits.train.texts + splits.validation.texts + splits.test.texts
    encoded = {pad: encode(tokenizer, all_texts, max_length, pad_to_max_length=pad) for pad in (False, True)}
    arms = {"padded": (True, False), "dynamic": (False, False), "dynamic+split": (False, True)}
    results, times = {}, {name: [] for name in arms}
    for _ in range(repeat):
        for name, (pad, split) in arms.items():
            models = []
            for m in range(config.n_model):
                torch.manual_seed(config.seed * 1000 + m)
                models.append(load_classifier(config.model_name(), splits.num_classes))
            start = time.perf_counter()
            results[name] = train_stage1(
                models, encoded[pad], np.r_[splits.train.noisy, [-1] * len(splits.validation)],
                splits.validation.noisy, Stage1Settings(
                    epochs=config.epochs, batch_size=config.train_batch_size, eval_batch_size=runtime.eval_batch_size,
                    lr=config.lr, precision=precision, seed=config.seed),
                device=device, show_progress=False, speedups=Stage1Speedups(pad_to_max=pad, split_batches=split))
            times[name].append(time.perf_counter() - start)
    seconds = {name: float(np.median(t)) for name, t in times.items()}
    if repeat > 1:
        print("; ".join(f"{name} s: " + " ".join(f"{t:.2f}" for t in ts) for name, ts in times.items()))
    default = "dynamic+split" if runtime.split_batches else "dynamic"
    print_table(list(seconds.items()), {"peak_host_mb": peak_host_mb(), "peak_gpu_mb": peak_gpu_mb()})
    padded, agreement = results["padded"], {}
    for name in ("dynamic", "dynamic+split"):
        emb_diff = max(float(np.abs(ours.astype(np.float32) - theirs.astype(np.float32)).max())
                       for ours, theirs in zip(results[name].embeddings, padded.embeddings))
        prob_diff = float(np.abs(results[name].probs - padded.probs).max())
        same_pred = float((results[name].probs.argmax(-1) == padded.probs.argmax(-1)).mean())
        agreement[name] = {"max_prob_diff": prob_diff, "same_predictions": same_pred}
        print(f"{name} vs padded: max |embedding difference| {emb_diff:.3g}, max |probability difference| "
              f"{prob_diff:.3g}, same predictions {same_pred:.4f}")
    print(f"default on {device.type} ({precision}): {default}")
    return {"stage1_s": seconds[default], "padded_stage1_s": seconds["padded"],
            "padding_speedup": seconds["padded"] / seconds[default],
            "unsplit_speedup": seconds["padded"] / seconds["dynamic"], **agreement[default],
            "peak_host_mb": peak_host_mb(), "peak_gpu_mb": peak_gpu_mb()}


def print_profile(work, device: torch.device, steps: int, rows: int = 20) -> float | None:
    """Run `work` (`steps` steps) under torch.profiler; print the operators with the most host
    time and, on CUDA, the most device time; return the kernel milliseconds per step."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        work()
    table = prof.key_averages()
    print(table.table(sort_by="self_cpu_time_total", row_limit=rows))
    if device.type != "cuda":
        return None
    print(table.table(sort_by="self_cuda_time_total", row_limit=rows))
    kernels = sum(e.self_device_time_total for e in table
                  if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA)
    return kernels / 1e3 / steps


def profile(argv: list[str], steps: int = 20, warmup: int = 10) -> dict:
    """`steps` stage-1 training steps (after `warmup`) under torch.profiler, on the data set's
    first train batches: the top operators by host time and by device time, and the step time
    without the profiler."""
    from src.accel.stage1 import Stage1Speedups
    from src.data import MAX_LENGTH, apply_noise, load_dataset
    from src.data.batches import shuffled_batches
    from src.data.texts import encode
    from src.stage1.plm import load_classifier, load_tokenizer
    from src.stage1.train_stage1 import Stage1Settings, train_epoch

    config = parse_config([*argv, "--no-progress"])
    runtime = resolve_runtime(config)
    device = runtime.device
    if device.type == "cuda":
        configure_cuda()
    splits = apply_noise(load_dataset(config.dataset, config.path, config.seed), config.noise_type,
                         config.noise_ratio, config.seed)
    max_length = config.max_length or MAX_LENGTH.get(config.dataset, 128)
    texts = encode(load_tokenizer(config.model_name()), splits.train.texts, max_length)
    models = [load_classifier(config.model_name(), splits.num_classes).to(device).train()
              for _ in range(config.n_model)]
    rng = np.random.default_rng(config.seed)
    batches = []
    while len(batches) < warmup + 2 * steps:  # as many epochs' batches as needed
        batches += shuffled_batches(len(texts), config.train_batch_size, rng)
    batches = batches[: warmup + 2 * steps]
    runner = Stage1Speedups(cuda_graphs=runtime.cuda_graphs, split_batches=runtime.split_batches).build(
        models, texts, splits.train.noisy, [batches], [], Stage1Settings(
            epochs=1, batch_size=config.train_batch_size, eval_batch_size=runtime.eval_batch_size, lr=config.lr,
            clip_gradient_norm=config.clip_gradient_norm, precision=runtime.precision), device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(runner.optimizer, lambda step: 1.0)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def run(part):
        train_epoch(runner, part, 5.0, scheduler)
        sync()

    run(batches[:warmup])
    start = time.perf_counter()
    run(batches[warmup : warmup + steps])
    step_ms = (time.perf_counter() - start) / steps * 1e3
    device_ms = print_profile(lambda: run(batches[warmup + steps : warmup + 2 * steps]), device, steps)
    print(f"{config.n_model} x {config.model_name()} on {device} ({runtime.precision}), batch "
          f"{config.train_batch_size}, prepared mask {runner.prepared_mask}, CUDA graphs {runner.graphs is not None}: "
          f"{step_ms:.1f} ms/step"
          + (f", of which {device_ms:.1f} ms of kernels" if device_ms is not None else ""))
    return {"step_ms": step_ms, "device_ms_per_step": device_ms, "peak_host_mb": peak_host_mb(),
            "peak_gpu_mb": peak_gpu_mb()}


def synthetic_wos(n: int = 46985, num_classes: int = 134, dim: int = 768, epochs: int = 10,
                  num_models: int = 2, seed: int = 0, per_epoch_eval: bool = False,
                  precision: str = "fp32") -> dict:
    """Everything after stage 1 at WOS size, from clustered synthetic embeddings with SN 20% noise.

    `per_epoch_eval` also scores the test split after every stage-2 epoch, as a run does for
    its per-epoch accuracy file (at 134 classes that is a [N_test, C, C] pass per epoch).
    `precision` bf16 runs stage 2 as a CPU run with `--precision bf16` does (`stage2_z_dtype`).
    """
    from src.accel.stage2 import Stage2Speedups, stage2_z_dtype
    from src.data.noise import symmetric_noise
    from src.dynamics.euclidean_dist import distance_trajectories, dynamics_score
    from src.dynamics.marking import mark_noisy
    from src.inference.evaluate import accuracy, denoise, posterior_given_label
    from src.prior.generate_prior import dirichlet_prior, knn_predict_proba
    from src.stage2.train_stage2 import Stage2Settings, Trajectories, train_stage2
    from src.storage.row_file import RowFile
    from src.storage.rows import column
    from src.storage.stage1_cache import trajectory_path

    rng = np.random.default_rng(seed)
    gold = rng.integers(0, num_classes, n)
    noisy = symmetric_noise(gold, num_classes, 0.2, rng)
    n_test = n // 5
    n_fit = n - n_test  # train + validation
    n_train = int(0.8 * n_fit)
    timer = StageTimer()  # seconds, and host memory when each stage ended
    work = Path(tempfile.mkdtemp(prefix="bench-wos-"))  # 1.4 GB of trajectory files
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # also when the bench fails
    with timer("synthetic"):  # not part of the total
        centres = rng.standard_normal((num_classes, dim)).astype(np.float32)
        embeddings = [RowFile.create(trajectory_path(work, m), (n, epochs, dim))  # [N, E, D] on disk
                      for m in range(num_models)]
        for trajectory in embeddings:
            for e in range(epochs):  # classes separate as "training" goes on
                epoch = np.empty((n, dim), np.float16)
                for rows in np.array_split(np.arange(n), 8):  # small float32 temporaries
                    noise = rng.standard_normal((len(rows), dim), dtype=np.float32)
                    epoch[rows] = centres[gold[rows]] * (0.2 + 0.1 * e) + noise
                trajectory[:, e] = epoch
        probs = np.full((num_models, n_test, num_classes), 0.1 / num_classes, dtype=np.float32)
        probs[:, np.arange(n_test), gold[n_fit:]] += 0.9
        release_freed_host_memory()
    with timer("dynamics"):
        labels = torch.as_tensor(noisy[:n_fit])
        marks = []
        for m in range(num_models):
            score = dynamics_score(distance_trajectories(embeddings[m], labels, num_classes))
            marks.append(mark_noisy(score, 0.2))
    with timer("prior"):
        priors = [dirichlet_prior(knn_predict_proba(column(embeddings[m], 0, n_fit), noisy[:n_fit], marks[m],
                                                    num_classes, rows=n_train), "onehot", 5.0)
                  for m in range(num_models)]
    with timer("stage2"):
        cpu = torch.device("cpu")
        trajectories = Trajectories(embeddings, cpu, dtype=stage2_z_dtype(cpu, precision))
        test_rows = np.arange(n_fit, n)
        evaluate = lambda e, v: {"test_accuracy": accuracy(denoise(v, trajectories, test_rows, probs), gold[n_fit:])}  # noqa: E731
        vaes, _ = train_stage2(trajectories, np.arange(n_train), noisy[:n_train], priors, num_classes,
                               Stage2Settings(total_iter=10, batch_size=32, lr=1e-4, lambda_t=1.0),
                               show_progress=False, speedups=Stage2Speedups(),
                               on_epoch_end=evaluate if per_epoch_eval else None)
    with timer("inference"):
        test_accuracy = accuracy(denoise(vaes, trajectories, test_rows, probs), gold[n_fit:])
    with timer("check"):  # not part of the total: what the VAEs learnt, without the stand-in probs
        train_rows = np.arange(n_train)
        cleaned = accuracy(posterior_given_label(vaes, trajectories, train_rows, noisy[:n_train]), gold[:n_train])
    total = sum(seconds for name, seconds in timer.seconds.items() if name not in ("synthetic", "check"))
    extra = {"peak_host_mb": peak_host_mb(), "peak_gpu_mb": None, "peak_host_mb_after": timer.peak_host_mb,
             "host_mb_after": timer.host_mb}
    print_table([*timer.seconds.items(), ("total", total)], extra)
    print(f"stage 2 z products in {trajectories.dtype}; test accuracy after stage 2 {test_accuracy:.4f} "
          f"(stand-in stage-1 probabilities: 0.9 on the gold label); train labels cleaned by the VAEs "
          f"(P(y | x, noisy y)) agree with gold: {cleaned:.4f} (noisy labels: {(noisy == gold)[:n_train].mean():.4f})")
    return {"total_s": total, "stage2_s": timer.seconds["stage2"], "peak_host_mb": extra["peak_host_mb"],
            "accuracy_after": test_accuracy, "cleaned_accuracy": cleaned}


def mfu(device_name: str, batch_size: int, seq_len: int, steps: int, num_models: int,
        compile_models: bool = False, compile_mode: str | None = None, cudnn_attention: bool = False,
        show_profile: bool = False, cuda_graphs: bool = True, attention_dropout: float = 0.1) -> dict:
    """Model FLOP utilisation of stage-1 training (`train_epoch`, the pipeline's own loop) on
    randomly initialised bert-base-sized models and random full-length texts.

    `attention_dropout` is BERT's 0.1 by default (as in runs); 0 was there to test whether the
    dropout sent the compiled attention to SDPA's math path (it did not: an all-ones mask did;
    `compile_model`). A diagnosis, not a run's setting."""
    from transformers import BertConfig, BertForSequenceClassification

    from src.accel.cuda_graphs import build_graphs, cuda_graphs_blocker
    from src.accel.models import accepts_prepared_mask, compile_model
    from src.accel.stage1 import Stage1Speedups
    from src.data.texts import TokenizedTexts
    from src.stage1.stage1_step import stage1_optimizer
    from src.stage1.train_stage1 import Stage1Settings, train_epoch

    device = resolve_device(device_name)
    if device.type == "cuda":
        configure_cuda(cudnn_attention)  # as a run does (cuDNN attention only when asked)
    config = BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                        intermediate_size=3072, max_position_embeddings=512, num_labels=20,
                        attention_probs_dropout_prob=attention_dropout)
    models = []
    for m in range(num_models):
        torch.manual_seed(m)
        models.append(BertForSequenceClassification(config).to(device))
    # Compiled models are captured too (the warm-up compiles them): compiling fuses the kernels,
    # the graph removes their launches (the best MFU measured: benchmarks/RESULTS.md).
    use_graphs = cuda_graphs and cuda_graphs_blocker(device, accepts_prepared_mask(models[0])) is None
    optimizer = stage1_optimizer(models, 1e-5, capturable=use_graphs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    runners = [compile_model(model, mode=compile_mode) for model in models] if compile_models else models
    dense = sum(p.numel() for n, p in models[0].named_parameters() if "embeddings" not in n)
    # Per token: 6 x dense params (forward 2, backward 4) + attention scores and values
    # (forward 2 matmuls x 2 x seq x hidden per layer, x3 for training).
    flops_per_token = 6 * dense + 3 * 4 * config.num_hidden_layers * seq_len * config.hidden_size
    flops_per_step = flops_per_token * batch_size * seq_len * num_models
    warmup, profiled = 8, 5  # warm-up: allocator, cuBLAS handles, autotuning, compilation
    generator = torch.Generator().manual_seed(0)
    n = (warmup + steps + profiled) * batch_size
    texts = TokenizedTexts(torch.randint(1000, 30000, (n, seq_len), generator=generator),
                           np.full(n, seq_len))  # every text full length: no padding
    labels = torch.randint(0, config.num_labels, (n,), generator=generator).numpy()
    batches = [np.arange(i, i + batch_size) for i in range(0, n, batch_size)]
    for model in models:
        model.train()
    graphs = build_graphs(runners, optimizer, texts, batches, batch_size, device=device, precision="bf16",
                          clip_gradient_norm=1.0) if use_graphs else None
    # the speed layer's steps with this diagnosis's own runners, optimizer and graphs (compiled
    # models in graphs, which runs do not combine)
    runner = Stage1Speedups().build(models, texts, labels, [], [], Stage1Settings(
        epochs=1, batch_size=batch_size, eval_batch_size=batch_size, lr=1e-5, precision="bf16"), device)
    runner.runners, runner.optimizer, runner.graphs = runners, optimizer, graphs

    def run(part):
        return train_epoch(runner, part, 5.0, scheduler)

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    run(batches[:warmup])
    sync()
    start = time.perf_counter()
    run(batches[warmup : warmup + steps])
    sync()
    seconds = time.perf_counter() - start
    if show_profile:
        print_profile(lambda: (run(batches[warmup + steps :]), sync()), device, profiled)
    achieved = flops_per_step * steps / seconds / 1e12
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
    label = f"bert-base (compiled{', ' + compile_mode if compile_mode else ''})" if compile_models else "bert-base"
    label += ", cuDNN attention" if cudnn_attention else ""
    label += ", CUDA graph" if graphs is not None else ""
    print(f"{name}: {steps} steps of {num_models} x {label}, batch {batch_size} x {seq_len} tokens: "
          f"{seconds / steps * 1e3:.1f} ms/step, {achieved:.1f} TFLOP/s"
          + (f" = {achieved / peak:.1%} of the {peak} TFLOP/s bf16 peak" if peak else ""))
    return {"step_ms": seconds / steps * 1e3, "tflops": achieved, "mfu": achieved / peak if peak else None,
            "peak_host_mb": peak_host_mb(), "peak_gpu_mb": peak_gpu_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true")
    mode.add_argument("--padding", action="store_true")
    mode.add_argument("--synthetic-wos", action="store_true")
    parser.add_argument("--per-epoch-eval", action="store_true",
                        help="with --synthetic-wos: also score the test split after every stage-2 epoch")
    mode.add_argument("--mfu", action="store_true")
    mode.add_argument("--profile", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="with --synthetic-wos: stage 2 as a CPU run with this --precision")
    parser.add_argument("--mfu-batch", type=int, default=64)
    parser.add_argument("--mfu-seq", type=int, default=150)
    parser.add_argument("--mfu-steps", type=int, default=30)
    parser.add_argument("--compile", action="store_true", help="with --mfu: torch.compile the models")
    parser.add_argument("--sdpa-cudnn", action="store_true",
                        help="with --mfu: let attention use cuDNN's kernels (off in runs; for comparison)")
    parser.add_argument("--no-cuda-graphs", action="store_true",
                        help="with --mfu: eager training steps (runs replay CUDA graphs by default)")
    parser.add_argument("--mfu-profile", action="store_true",
                        help="with --mfu: also profile 5 steps and print the top operators")
    parser.add_argument("--attention-dropout", type=float, default=0.1,
                        help="with --mfu: the models' attention dropout (BERT's 0.1; 0 to diagnose the compiled "
                             "attention's kernel choice)")
    parser.add_argument("--compile-mode", default=None,
                        help="with --mfu --compile: torch.compile's mode (e.g. max-autotune-no-cudagraphs)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="with --padding: alternate the two arms this many times, report medians")
    parser.add_argument("main_flags", nargs="*", help="main.py flags, after `--`")
    args = parser.parse_args()
    flags = [*args.main_flags, "--device", args.device]
    if args.quick:
        result = pipeline(["--epochs", "2", "--total_iter", "2", *flags])
    elif args.padding:
        result = padding(flags, args.repeat)
    elif args.synthetic_wos:
        result = synthetic_wos(per_epoch_eval=args.per_epoch_eval, precision=args.precision)
    elif args.profile:
        result = profile(flags)
    elif args.mfu:
        result = mfu(args.device, args.mfu_batch, args.mfu_seq, args.mfu_steps, num_models=2,
                     compile_models=args.compile, compile_mode=args.compile_mode,
                     cudnn_attention=args.sdpa_cudnn, show_profile=args.mfu_profile,
                     cuda_graphs=not args.no_cuda_graphs, attention_dropout=args.attention_dropout)
    else:
        result = pipeline(flags)
    print(bench_line(result))


if __name__ == "__main__":
    main()
