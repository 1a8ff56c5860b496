"""Stage-1 time on the CPU: one process with 1 and with N threads, and torchrun with N processes of
one thread each (gloo). Run it on an otherwise idle machine:

  python benchmarks/distributed_cpu.py [--processes 2] [--seeds 0 1 2] [-- main.py flags]

The default run is the demo with MiniLM at the `quick` grid's settings, stage 1 always trained
(`--no-reuse_stage1`).
Prints one row per seed and set-up (stage-1 seconds from the run record, and test accuracy;
the one-thread reference for the first seed only) and a last line `BENCH key=value ...` with
the stage-1 seconds of the first seed and the test-accuracy difference torchrun - one process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# the `quick` grid's settings (scripts/experiments.py)
DEFAULT = ["--bert", "minilm", "--epochs", "3", "--lr", "1e-4", "--train_batch_size", "32", "--total_iter", "10",
           "--vae_lr", "1e-3", "--lambda_t", "1", "--no-progress"]


def one_run(flags: list[str], threads: int, processes: int) -> dict:
    """The run record of `main.py flags` with `processes` ranks (1: plain python) of `threads` threads."""
    with tempfile.TemporaryDirectory() as tmp:
        launcher = ([sys.executable] if processes == 1 else
                    [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)])
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        subprocess.run([*launcher, str(ROOT / "main.py"), *flags, "--no-reuse_stage1", "--cache_dir", f"{tmp}/cache",
                        "--figure_dir", f"{tmp}/figure"], env=env, check=True, capture_output=True, text=True)
        (record,) = [json.loads(p.read_text()) for p in Path(tmp, "cache", "runs").glob("*[0-9a-f].json")]
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="the same comparison for each seed")
    args, flags = parser.parse_known_args()
    flags = [f for f in flags if f != "--"] or DEFAULT
    n = args.processes
    print("| seed | set-up | stage 1 (s) | test accuracy |\n|---|---|---|---|")
    results = []
    for seed in args.seeds:
        setups = [(f"1 process, {n} threads", n, 1), (f"torchrun, {n} processes x 1 thread", 1, n)]
        if seed == args.seeds[0]:
            setups.insert(0, ("1 process, 1 thread", 1, 1))
        for name, threads, processes in setups:
            record = one_run([*flags, "--seed", str(seed)], threads, processes)
            results.append((seed, processes, threads, record["timings_s"]["stage1"], record["accuracy"]))
            print(f"| {seed} | {name} | {results[-1][3]:.1f} | {record['accuracy']:.4f} |", flush=True)
    first = {(p, t): s for seed, p, t, s, _ in results if seed == args.seeds[0]}
    single = {seed: acc for seed, p, t, _, acc in results if (p, t) == (1, n)}
    ranks = {seed: acc for seed, p, t, _, acc in results if p == n}
    diffs = [ranks[s] - single[s] for s in args.seeds]
    print(f"BENCH stage1_1x1={first[(1, 1)]:.1f} stage1_1x{n}={first[(1, n)]:.1f} stage1_{n}x1={first[(n, 1)]:.1f} "
          f"acc_diff_mean={np.mean(diffs):+.4f} acc_diff_max_abs={np.max(np.abs(diffs)):.4f}")


if __name__ == "__main__":
    main()
