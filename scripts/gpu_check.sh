#!/bin/sh
# The GPU checks of the pipeline and speed issues, as one script for a lent GPU machine.
# Expects the 20news archive and a MiniLM copy under $ASSETS (default .device/), writes logs
# and run records under $OUT (default gpu_out/). Each step has its own time limit; the most
# important come first. FULL=1 adds the slower comparisons.
ASSETS=${ASSETS:-.device}
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"
run() {  # name, limit in seconds, command...
  name=$1; limit=$2; shift 2
  start=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1; rc=$?
  echo "$name: rc=$rc $(( $(date +%s) - start ))s wall" | tee -a "$OUT/gpu.txt"
  grep -E "accuracy before|^seconds:|^BENCH|ms/step|passed|failed|rror" "$OUT/$name.log" | tail -4 | tee -a "$OUT/gpu.txt"
}
T="env DATA=$ASSETS/20news-bydate.tar.gz BERT=$ASSETS/minilm sh scripts/train.sh --no-progress"
# 1. The CUDA-only tests (steps never wait for the GPU; the stage-2 CUDA graph trains as eagerly).
run cuda_tests 90 python3 -m pytest -q tests/test_stage1.py
# 2. The paper's run (train.sh) with MiniLM, bf16 autocast (the default on CUDA).
run train_bf16 120 $T --cache_dir "$OUT/cache"
# 3. Model FLOP utilisation of stage-1 training on a bert-base-sized model (with a profile of the
#    operators), then compiled, then with cuDNN attention allowed (for comparison).
run mfu 60 python3 scripts/bench.py --mfu --device cuda --mfu-profile
run mfu_compiled 120 python3 scripts/bench.py --mfu --device cuda --compile
run mfu_cudnn 40 python3 scripts/bench.py --mfu --device cuda --sdpa-cudnn
# 4. The run with the CPU's evaluation batch (128; CUDA's default is 512): time and GPU memory.
run train_eval128 120 $T --eval_batch_size 128 --cache_dir "$OUT/cache"
# 5. Where a MiniLM stage-1 step spends its time (host and device), 20 steps under the profiler.
run profile 60 python3 scripts/bench.py --profile --device cuda -- --dataset 20news \
  --path "$ASSETS/20news-bydate.tar.gz" --bert "$ASSETS/minilm" --train_batch_size 64 --lr 1e-4
# 6. Slower comparisons (FULL=1): full precision (the accuracy bf16 is held to), compiled models,
#    the reference code's restarting learning-rate schedule.
[ -n "$FULL" ] && run train_fp32 120 $T --precision fp32 --cache_dir "$OUT/cache"
[ -n "$FULL" ] && run train_compiled 150 $T --compile --cache_dir "$OUT/cache"
[ -n "$FULL" ] && run train_restart 150 $T --lr_schedule restart --cache_dir "$OUT/cache"
# One archive of the logs and run records (without the labels files, which hold the texts).
(cd "$OUT" && tar czf results.tgz --exclude="*-labels.csv" ./*.log cache/runs && rm -rf ./*.log cache)
