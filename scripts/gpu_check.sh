#!/bin/sh
# The GPU checks of the pipeline and speed issues, as one script for a lent GPU machine.
# Expects the 20news archive and a MiniLM copy under $ASSETS (default .device/), writes logs
# and run records under $OUT (default gpu_out/). Each step has its own time limit.
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
  grep -E "accuracy before|^BENCH|error" "$OUT/$name.log" | tail -3 | tee -a "$OUT/gpu.txt"
}
T="env DATA=$ASSETS/20news-bydate.tar.gz BERT=$ASSETS/minilm sh scripts/train.sh --no-progress"
# 1. The paper's run (train.sh) with MiniLM, bf16 autocast (the default on CUDA).
run train_bf16 150 $T --cache_dir "$OUT/cache"
# 2. Model FLOP utilisation of stage-1 training on a bert-base-sized model: eager, compiled, bigger batch.
run mfu 60 python3 scripts/bench.py --mfu --device cuda
run mfu_compiled 150 python3 scripts/bench.py --mfu --device cuda --compile
run mfu_b256 60 python3 scripts/bench.py --mfu --device cuda --mfu-batch 256 --mfu-steps 15
# 3. The same run with the CPU's evaluation batch (128; the CUDA default is 512): what the larger
#    embedding batches save.
run train_eval128 150 $T --eval_batch_size 128 --cache_dir "$OUT/cache"
# 4. Compiled models, full precision, and the reference code's restarting learning-rate schedule.
[ -n "$FULL" ] && run train_compiled 150 $T --compile --cache_dir "$OUT/cache"
[ -n "$FULL" ] && run train_fp32 150 $T --precision fp32 --cache_dir "$OUT/cache"
[ -n "$FULL" ] && run train_restart 150 $T --lr_schedule restart --cache_dir "$OUT/cache"
tar czf "$OUT/runs.tgz" -C "$OUT" cache && rm -rf "$OUT/cache"
