"""Stage-1 time on the CPU: one process with 1 and with N threads, and torchrun with N processes of
one thread each (gloo). Run it on an otherwise idle machine:

  python benchmarks/distributed_cpu.py [--processes 2] [-- main.py flags]

The default run is the demo with MiniLM, 2 epochs, stage 1 always trained (`--no-reuse_stage1`).
Prints one row per set-up (stage-1 seconds from the run record, and test accuracy) and a last
line `BENCH key=value ...`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ["--bert", "minilm", "--epochs", "2", "--total_iter", "2", "--no-progress"]


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
    args, flags = parser.parse_known_args()
    flags = [f for f in flags if f != "--"] or DEFAULT
    n = args.processes
    print("| set-up | stage 1 (s) | test accuracy |\n|---|---|---|")
    seconds = {}
    for name, threads, processes in (("1 process, 1 thread", 1, 1), (f"1 process, {n} threads", n, 1),
                                     (f"torchrun, {n} processes x 1 thread", 1, n)):
        record = one_run(flags, threads, processes)
        seconds[name] = record["timings_s"]["stage1"]
        print(f"| {name} | {seconds[name]:.1f} | {record['accuracy']:.4f} |", flush=True)
    values = list(seconds.values())
    print(f"BENCH stage1_1x1={values[0]:.1f} stage1_1x{n}={values[1]:.1f} stage1_{n}x1={values[2]:.1f}")


if __name__ == "__main__":
    main()
