"""Stage 1 under torchrun (gloo on the CPU): the same trajectories, probabilities, marking and one
result record as one process; bad set-ups end on every rank with one error line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from src.accel.distributed import World, rank_part

ROOT = Path(__file__).resolve().parents[1]
# lr 1e-3: the tiny model's embeddings move between epochs, so the comparison means something
FAST = ["--epochs", "2", "--total_iter", "2", "--train_batch_size", "16", "--lr", "1e-3", "--no-progress"]


def test_rank_parts_cover_the_batch_and_weigh_to_its_mean():
    index = np.arange(10, 17)  # 7 rows over 2 ranks: 4 and 3
    parts = [rank_part(index, World(r, 2)) for r in range(2)]
    assert np.concatenate([p for p, _ in parts]).tolist() == index.tolist()
    # DDP averages the ranks' gradients: (w0 * mean0 + w1 * mean1) / 2 is the batch mean
    assert [w for _, w in parts] == [pytest.approx(8 / 7), pytest.approx(6 / 7)]
    assert sum(len(p) * w / len(p) for p, w in parts) / 2 == pytest.approx(1.0)
    # fewer rows than ranks: a rank without rows runs one with weight 0
    part, weight = rank_part(np.array([5]), World(1, 2))
    assert part.tolist() == [5] and weight == 0.0
    assert rank_part(index, World()) == (pytest.approx(index), 1.0)


@pytest.fixture(scope="module")
def tiny_bert_without_dropout(tiny_bert, tmp_path_factory) -> str:
    """The tiny BERT with dropout off: one process and two ranks then do the same arithmetic."""
    path = tmp_path_factory.mktemp("tiny_bert_no_dropout") / "bert"
    shutil.copytree(tiny_bert, path)
    config = json.loads((path / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    (path / "config.json").write_text(json.dumps(config))
    return str(path)


def torchrun(args: list[str], cwd: Path, processes: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                           str(processes), str(ROOT / "main.py"), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def stage1_entry(cache: Path) -> Path:
    (entry,) = [p for p in (cache / "stage1").iterdir() if p.is_dir()]
    return entry


def test_two_ranks_give_one_process_stage_1(tiny_bert_without_dropout, tmp_path):
    from main import main

    args = ["--bert", tiny_bert_without_dropout, *FAST, "--figure_dir", str(tmp_path / "figure")]
    assert main([*args, "--cache_dir", str(tmp_path / "one")]) == 0
    done = torchrun([*args, "--cache_dir", str(tmp_path / "two")], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = stage1_entry(tmp_path / "one"), stage1_entry(tmp_path / "two")
    for m in range(2):  # same rows in the same order, each within float16 rounding of one process's
        a = np.load(one / f"trajectories_{m}.npy").astype(np.float32)
        b = np.load(two / f"trajectories_{m}.npy").astype(np.float32)
        assert a.shape == b.shape and np.abs(a[:, 1] - a[:, 0]).max() > 0.05  # the embeddings did move
        assert np.abs(a - b).max() < 5e-3
    assert np.abs(np.load(one / "probs.npy") - np.load(two / "probs.npy")).max() < 1e-3
    records = [json.loads(p.read_text()) for p in (tmp_path / "two" / "runs").glob("*[0-9a-f].json")]
    assert len(records) == 1 and records[0]["resolved"]["world_size"] == 2  # written once, by rank 0
    (single,) = [json.loads(p.read_text()) for p in (tmp_path / "one" / "runs").glob("*[0-9a-f].json")]
    assert [q["marked"] for q in records[0]["marking"]] == [q["marked"] for q in single["marking"]]
    assert done.stdout.count("stage 1 epoch 1/2") == 1  # one voice: rank 0's
    # the seed makes it repeatable: a second run with two ranks gives the same trajectories
    again = torchrun([*args, "--cache_dir", str(tmp_path / "again")], tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    for m in range(2):
        assert np.array_equal(np.load(two / f"trajectories_{m}.npy"),
                              np.load(stage1_entry(tmp_path / "again") / f"trajectories_{m}.npy"))


def test_bad_set_ups_fail_on_every_rank(tiny_bert, tmp_path):
    (tmp_path / "a_file").write_text("")  # rank 0 cannot write there: both ranks end, neither waits
    for args, expected in ((["--train_batch_size", "15"], "not divisible by the 2 processes"),
                           (["--describe"], "run it as one process"),
                           (["--cache_dir", str(tmp_path / "a_file" / "cache")], "a_file is a file")):
        done = torchrun(["--bert", tiny_bert, "--cache_dir", str(tmp_path / "cache"), *args], tmp_path)
        # each rank that got to print wrote its one line (torchrun stops the other rank as soon as
        # the first exits, so it may not get to); each exited with code 2
        errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
        assert done.returncode != 0 and 1 <= len(errors) <= 2, done.stderr
        assert all(line == errors[0] and expected in line for line in errors), done.stderr
        assert "exitcode: 2" in done.stderr and "]: Traceback" not in done.stderr  # no rank's traceback
    assert not (tmp_path / "cache").exists()
