"""The experiment grid: planning, running with skips, aggregation, figures and the readme block."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
from conftest import ROOT

from src.report import summarize, to_markdown

spec = importlib.util.spec_from_file_location("experiments", ROOT / "scripts" / "experiments.py")
experiments = importlib.util.module_from_spec(spec)
spec.loader.exec_module(experiments)

REQUIRED = ["dataset", "noise_type", "noise_ratio", "method", "n_seeds", "acc_mean", "acc_std"]


def test_quick_grid_has_every_method_and_ablation():
    cells = experiments.plan_grid("quick", None, "cache", None, None)
    names = [item["name"] for cell in cells for item in cell]
    assert len(names) == len(set(names)) == 7 * len(experiments.GRIDS["quick"]["seeds"])
    methods = {n.split("-seed")[1].split("-", 1)[1] for n in names}
    assert methods == {"dygen", "base", "coreg", "npc", "dygen-no_dynamics", "dygen-no_coreg",
                       "dygen-uniform_prior"}
    experiments._validate(cells)  # every run's flags parse


def test_missing_data_root_is_a_user_error(tmp_path, capsys):
    code = experiments.main(["--config", "real", "--data_root", str(tmp_path / "nowhere"),
                             "--cache_dir", str(tmp_path / "cache")])
    assert code == 2 and "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()  # nothing written before the input is valid


def record(method, seed, acc, before=0.5, dataset="demo"):
    return {"experiment": "t", "method_label": method, "accuracy": acc, "accuracy_before": before,
            "config": {"dataset": dataset, "noise_ratio": 0.4, "seed": seed, "epochs": 2},
            "resolved": {"noise_type": "SN", "bert": "tiny"},
            "detection": {"dynamics": {"precision": 0.5, "recall": 0.25, "f1": 1 / 3, "roc_auc": 0.75}}}


def test_summary_means_and_stds_over_seeds():
    rows = summarize([record("dygen", 0, 0.6), record("dygen", 1, 0.8), record("base", 0, 0.5)])
    by_method = {r["method"]: r for r in rows}
    assert by_method["dygen"]["n_seeds"] == 2 and by_method["dygen"]["acc_mean"] == pytest.approx(0.7)
    assert by_method["dygen"]["acc_std"] == pytest.approx(0.1414213, rel=1e-5)  # sample std
    assert by_method["base"]["acc_std"] == 0.0 and by_method["dygen"]["det_dyn_roc_auc"] == 0.75
    assert by_method["dygen"]["det_loss_f1"] is None  # a detector the records lack
    assert [r["method"] for r in rows] == ["dygen", "base"]  # DyGen first
    table = to_markdown(rows)
    assert "70.0 ± 14.1" in table and "| demo, SN, r=0.4 | 2 |" in table


def test_grid_runs_skips_finished_runs_and_summarises(tiny_bert, tmp_path, monkeypatch):
    cache = str(tmp_path / "cache")
    cells = experiments.plan_grid("quick", None, cache, [0], None)
    swap = {"minilm": tiny_bert, "3": "2"}  # the tiny model, two epochs
    for cell in cells:
        for item in cell:
            argv = [swap.get(a, a) if prev in ("--bert", "--epochs") else a
                    for prev, a in zip([""] + item["argv"], item["argv"])]
            item["argv"] = [*argv, "--total_iter", "2"]
    assert experiments.run_grid("quick", cells, cache, jobs=1) == 0
    runs = sorted((tmp_path / "cache" / "experiments" / "quick" / "runs").glob("*.json"))
    assert len(runs) == 7 and len(list(runs[0].parent.glob("*.npz"))) == 7
    # each run's picture of the cleaning beside the grid's runs, none in the working directory
    assert len(list((runs[0].parent.parent / "cleaning").glob("*-cleaning.png"))) == 7

    import src.pipeline

    def no_training(config):
        raise AssertionError("a finished run was run again")

    monkeypatch.setattr(src.pipeline, "run", no_training)
    statuses = experiments.run_cell(("quick", cache, cells[0]))
    assert {s["status"] for s in statuses} == {"skipped"}
    monkeypatch.undo()

    experiments.summarize_all(cache, str(tmp_path / "figure"), readme=False)
    with open(tmp_path / "cache" / "experiments" / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[: len(REQUIRED)] == REQUIRED
    assert {r["method"] for r in rows} == {"dygen", "base", "coreg", "npc", "dygen-no_dynamics",
                                          "dygen-no_coreg", "dygen-uniform_prior"}
    assert all(r["n_seeds"] == "1" for r in rows)
    stored = {json.loads(p.read_text())["method_label"]: json.loads(p.read_text())["accuracy"]
              for p in (Path(cache) / "experiments" / "quick" / "runs").glob("*.json")}
    assert {r["method"]: float(r["acc_mean"]) for r in rows} == pytest.approx(stored)  # one seed: the run's own
    assert all(r["det_dyn_f1"] != "" and r["det_cl_roc_auc"] != "" for r in rows)
    for kind in ("dynamics", "accuracy", "detection_pr"):
        assert (tmp_path / "figure" / f"quick_{kind}.png").stat().st_size > 10_000


def test_results_block_is_replaced_not_appended(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text("# Results\n\nintro\n")
    begin, end = experiments.results_markers("quick")
    experiments.replace_block(doc, begin, end, experiments.results_block("| a |", "quick"))
    experiments.replace_block(doc, begin, end, experiments.results_block("| b |", "quick"))
    text = doc.read_text()
    assert text.count(begin) == 1 and "| b |" in text and "| a |" not in text
    assert "--config quick" in text and text.startswith("# Results\n\nintro")
    assert experiments.headline_experiment(["quick", "real", "paper"]) == "paper"
    assert experiments.headline_experiment(["quick", "real"]) == "real"


def test_parallel_workers_take_one_gpu_each(monkeypatch):
    """--jobs with several GPUs visible: worker k runs on GPU k mod their number."""
    import os
    import queue

    import torch

    threads = torch.get_num_threads()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    slots = queue.Queue()
    for k in range(4):
        slots.put(k)
    seen = []
    try:
        for _ in range(4):
            experiments._init_worker(1, slots, 3)
            seen.append(os.environ.pop("CUDA_VISIBLE_DEVICES"))
        experiments._init_worker(1, slots, 1)  # one GPU (or none): every worker shares it
        assert "CUDA_VISIBLE_DEVICES" not in os.environ
    finally:
        torch.set_num_threads(threads)
    assert seen == ["0", "1", "2", "0"]
