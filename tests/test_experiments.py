"""The experiment grid: planning, running with skips, aggregation, figures and the readme block."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from pathlib import Path

import pytest
from conftest import ROOT

from src.errors import UserError
from src.methods import variant_labels
from src.outputs.report import per_seed_markdown, summarize, to_csv, to_markdown

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
    experiments._validate("quick", None, cells, [])  # every run's flags parse


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


# ---- real_paper: settings with extra flags, the ChemProt subset, the label columns, per seed ----

def write_wrench(folder: Path, n_train: int = 20) -> Path:
    """A tiny WRENCH-format data set (3 classes, 2 labelling functions) under folder/wrench/."""
    root = folder / "wrench"
    root.mkdir(parents=True)

    def records(prefix, n):
        return {f"{prefix}{i}": {"label": i % 3, "weak_labels": [i % 3, -1 if i % 4 else (i + 1) % 3],
                                 "data": {"text": f"{prefix} row {i} word{i % 3}"}} for i in range(n)}

    for name, n in (("train.json", n_train), ("valid.json", 9), ("test.json", 6)):
        (root / name).write_text(json.dumps(records(name[:2], n), indent=1))
    (root / "label.json").write_text(json.dumps({"0": "a", "1": "b", "2": "c"}))
    return folder


def argv_value(item, flag):
    return item["argv"][item["argv"].index(flag) + 1]


def names_of(cells):
    return [item["name"] for cell in cells for item in cell]


def test_real_paper_grid_keeps_trusted_runs_apart_in_one_cell(tmp_path):
    for dataset in ("trec", "semeval"):
        (tmp_path / dataset).mkdir()
    write_wrench(tmp_path / "chemprot")
    cache = str(tmp_path / "cache")
    cells = experiments.plan_grid("real_paper", str(tmp_path), cache, None, None)
    names = names_of(cells)
    # no_coreg, uniform_prior and the normalised sample left out; the other variants in
    methods = {"dygen", "dygen-no_dynamics", "coreg", "npc", "base"} | (
        set(variant_labels()) - {"dygen-normalised_sample"})
    assert len(names) == len(set(names)) == 3 * 8 * len(methods)
    assert len(cells) == 3 * 4  # one cell per data set, noise and seed: with and without trusted rows
    for cell in cells:
        trusted = [item for item in cell if item["tag"] == "trusted"]
        assert len(trusted) == len(cell) - len(trusted) == len(methods)
        assert len({(argv_value(item, "--dataset"), argv_value(item, "--seed")) for item in cell}) == 1
        for item in cell:
            argv = " ".join(item["argv"])
            assert ("--trusted validation" in argv) == (item["tag"] == "trusted") == ("-trusted-seed" in item["name"])
            # real noise with trusted rows: the share marked is the trusted rows'; synthetic: the flip rate
            ratio = "auto" if item["tag"] == "trusted" and "--noise_type" not in argv else (
                "0.4" if "--noise_type ASN" in argv else "0.2")
            assert f"--noise_ratio {ratio} " in argv
    assert "trec-real-auto-trusted-seed1-dygen" in names and "trec-real-0.2-seed1-dygen" in names
    assert "semeval-ASN-0.4-trusted-seed2-npc" in names and "semeval-ASN-0.4-seed2-npc" in names
    assert {n.split("-seed")[1].split("-", 1)[1] for n in names} == methods
    chemprot = {argv_value(item, "--path") for item in cells[2]}
    assert chemprot == {str(experiments.subset_dir(cache, "real_paper", "chemprot", 3000))}
    # length-split batches for ChemProt's long texts only: the other data sets' stage 1 as it was
    assert {argv_value(item, "--split_batches") for cell in cells for item in cell
            if argv_value(item, "--dataset") == "chemprot"} == {"on"}
    assert all("--split_batches" not in item["argv"] for cell in cells for item in cell
               if argv_value(item, "--dataset") != "chemprot")
    experiments._validate("real_paper", None, cells, experiments.plan_subsets("real_paper", str(tmp_path), cache))
    # --methods narrows the grid, and may name a method the grid leaves out; --datasets picks settings
    narrowed = experiments.plan_grid("real_paper", str(tmp_path), cache, [0], ["dygen", "dygen-no_coreg"], ["trec"])
    assert names_of(narrowed) == ["trec-real-0.2-seed0-dygen", "trec-real-0.2-seed0-dygen-no_coreg",
                                  "trec-real-auto-trusted-seed0-dygen", "trec-real-auto-trusted-seed0-dygen-no_coreg"]
    assert experiments.plan_subsets("real_paper", str(tmp_path), cache, ["trec"]) == []
    # --tags picks settings by tag: "none" the untagged ones
    untrusted = experiments.plan_grid("real_paper", str(tmp_path), cache, [0], ["dygen"], ["trec"], ["none"])
    assert names_of(untrusted) == ["trec-real-0.2-seed0-dygen"]
    trusted = experiments.plan_grid("real_paper", str(tmp_path), cache, [0], ["dygen"], None, ["trusted"])
    assert all("-trusted-seed0-" in name for name in names_of(trusted)) and len(names_of(trusted)) == 4
    with pytest.raises(UserError, match="--tags foo"):
        experiments._validate("real_paper", None, trusted, [], ["foo"])


def test_variants_run_on_the_data_sets_a_grid_names(monkeypatch):
    from src.methods import VARIANTS

    monkeypatch.setitem(VARIANTS, "later", ["--dirichlet_sample", "normalised"])  # an opt-in setting added later
    real_paper = names_of(experiments.plan_grid("real_paper", None, "cache", [0], None))
    assert {n.split("-seed0-")[0] for n in real_paper if n.endswith("-dygen-later")} == {
        "trec-real-0.2", "trec-real-auto-trusted", "semeval-real-0.2", "semeval-real-auto-trusted",
        "chemprot-real-0.2", "chemprot-real-auto-trusted", "semeval-ASN-0.4", "semeval-ASN-0.4-trusted"}
    paper = names_of(experiments.plan_grid("paper", None, "cache", [0], None))
    assert {n.split("-seed0-")[0] for n in paper if n.endswith("-dygen-later")} == {"semeval-real-0.2",
                                                                                 "semeval-SN-0.4"}


def test_grid_subset_is_seeded_and_keeps_validation_and_test(tmp_path):
    from scripts.wrench_slice import chosen_keys
    from src.data import load_dataset

    source = write_wrench(tmp_path / "chemprot")
    subsets = [{"dataset": "chemprot", "source": source, "out": tmp_path / name, "count": 5} for name in ("a", "b")]
    for subset in subsets:
        experiments.write_subset(subset)
    keys = list(json.loads((source / "wrench" / "train.json").read_text()))
    train = json.loads((tmp_path / "a" / "train.json").read_text())
    assert list(train) == chosen_keys(keys, 5, experiments.SUBSET_SEED) != keys[:5]  # drawn, not the first rows
    assert [keys.index(k) for k in train] == sorted(keys.index(k) for k in train)  # in file order
    assert chosen_keys(keys, 5, 1) != list(train)  # the seed decides
    for name in ("train.json", "valid.json", "test.json", "label.json"):  # the same rows every time
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    for name in ("valid.json", "test.json", "label.json"):  # validation and test untouched
        assert (tmp_path / "a" / name).read_bytes() == (source / "wrench" / name).read_bytes()
    splits = load_dataset("chemprot", str(tmp_path / "a"), seed=3)
    assert len(splits.train) + splits.dropped["train"] == 5 and len(splits.test) == 6
    before = (tmp_path / "a" / "train.json").stat().st_mtime_ns
    experiments.write_subset(subsets[0])  # written once: the preprocessing cache keys on file times
    assert (tmp_path / "a" / "train.json").stat().st_mtime_ns == before


def test_grid_writes_its_subset_before_running_and_refuses_missing_train(tmp_path, monkeypatch, capsys):
    write_wrench(tmp_path / "data" / "chemprot")
    planned = []
    monkeypatch.setattr(experiments, "run_grid", lambda name, cells, cache, jobs: planned.extend(cells) or 0)
    cache = tmp_path / "cache"
    argv = ["--config", "real_paper", "--datasets", "chemprot", "--data_root", str(tmp_path / "data"),
            "--cache_dir", str(cache)]
    assert experiments.main(argv) == 0
    out = experiments.subset_dir(str(cache), "real_paper", "chemprot", 3000)
    assert len(json.loads((out / "train.json").read_text())) == 20  # fewer rows than asked: all of them
    assert len(planned) == 3 and {argv_value(item, "--path") for cell in planned for item in cell} == {str(out)}
    # WRENCH's ChemProt train.json absent: stopped before anything is written
    (tmp_path / "data" / "chemprot" / "wrench" / "train.json").unlink()
    assert experiments.main([*argv, "--cache_dir", str(tmp_path / "other")]) == 2
    assert "train.json: file not found" in capsys.readouterr().err and not (tmp_path / "other").exists()
    assert experiments.main([*argv[:2], "--datasets", "wos", "--cache_dir", str(tmp_path / "other")]) == 2
    assert "not in grid real_paper" in capsys.readouterr().err


def labelled(method, seed, acc, given=0.6, cleaned=0.7, suggested=0.65, tag="", auc=0.8, validation=None,
             predicted=None):
    """A record with train+validation label diagnostics; suggested None: made before suggested_label;
    validation, predicted: the cross-fitted shares of right suggestions and of right predictions on
    the calibration rows (None: no trusted rows)."""
    r = record(method, seed, acc)
    r["setting_tag"] = tag
    r["cleaning"] = {"changed": 10, "total": 100, "noisy_agrees_with_gold": given, "cleaned_agrees_with_gold": cleaned}
    r["noise_ratio_used"] = 0.3
    if suggested is not None:
        r["suggestion"] = {"margin": 0.1, "changes": 5, "gold": {
            "given_agrees_with_gold": given, "cleaned_agrees_with_gold": cleaned,
            "suggested_agrees_with_gold": suggested, "fixed": 6, "broken": 1,
            "ranking": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "roc_auc": auc}},
            "estimate": None if validation is None else {"suggested_right": {"share": validation},
                                                         "prediction_right": {"share": predicted}}}
    return r


def test_summary_reports_labels_against_gold_with_and_without_suggestion():
    rows = summarize([labelled("dygen", 0, 0.7, suggested=0.66), labelled("dygen", 1, 0.8, suggested=0.7),
                      labelled("base", 0, 0.6, suggested=None),  # an older record
                      labelled("dygen", 0, 0.9, tag="trusted", given=0.5, cleaned=0.8, suggested=0.75)])
    by = {(r["method"], r["tag"]): r for r in rows}
    assert len(rows) == 3 and by[("dygen", "")]["n_seeds"] == 2 and by[("dygen", "trusted")]["n_seeds"] == 1
    assert by[("dygen", "")]["suggested_gold_mean"] == pytest.approx(0.68)
    assert by[("dygen", "")]["given_gold_mean"] == 0.6 and by[("dygen", "")]["cleaned_gold_mean"] == 0.7
    assert by[("dygen", "")]["det_suggested_roc_auc"] == 0.8 and by[("dygen", "")]["ratio_used_mean"] == 0.3
    assert by[("base", "")]["suggested_gold_mean"] is None and by[("base", "")]["det_suggested_roc_auc"] is None
    assert by[("base", "")]["given_gold_mean"] == 0.6  # from the cleaning, which older records have
    table = to_markdown(rows)
    assert "| demo, SN, r=0.4 | dygen | 60.0 | 70.0 | 68.0 | 30.0 | 75.0 | 80.0 |" in table
    assert "| demo, SN, r=0.4 | base | 60.0 | 70.0 | – | 30.0 | 75.0 | – |" in table
    assert "| demo, SN, r=0.4, trusted | dygen | 50.0 | 80.0 | 75.0 |" in table
    assert "| demo, SN, r=0.4, trusted | 1 | 90.0 |" in table  # the accuracy table keeps the settings apart
    assert "agreement with gold" not in to_markdown(rows, detection=False)  # the readme's headline: accuracy only
    old = summarize([record("dygen", 0, 0.7)])  # no cleaning at all: no label table
    assert old[0]["given_gold_mean"] is None and "agreement with gold" not in to_markdown(old)
    assert {"tag", "given_gold_mean", "suggested_gold_mean", "det_suggested_roc_auc"} <= set(
        csv.DictReader(io.StringIO(to_csv(rows))).fieldnames)


def cell_records():
    """Two seeds (given out of order), DyGen as published and with a variant, an ablation, a
    baseline missing seed 1; and a trusted setting whose variant has the better test accuracy and
    validation accuracy but the worse suggestions on validation."""
    return [labelled("dygen", 1, 0.74, suggested=0.64), labelled("dygen", 0, 0.70, suggested=0.62),
            labelled("dygen-normalised_sample", 0, 0.73), labelled("dygen-normalised_sample", 1, 0.75),
            labelled("dygen-no_dynamics", 0, 0.90), labelled("dygen-no_dynamics", 1, 0.90),  # not a DyGen setting
            labelled("base", 0, 0.60),
            labelled("dygen", 0, 0.5, tag="trusted", suggested=0.7, validation=0.70, predicted=0.60),
            labelled("dygen-normalised_sample", 0, 0.6, tag="trusted", validation=0.65, predicted=0.62),
            labelled("base", 0, 0.55, tag="trusted", suggested=None)]


def test_per_seed_differences_pair_seeds_against_the_dygen_setting_chosen_on_validation():
    from src.outputs.report import per_seed_accuracy, per_seed_suggestion

    rows = per_seed_accuracy(cell_records())
    plain = {r["other"]: r for r in rows if r["tag"] == ""}
    # no trusted rows: nothing on validation tells the settings apart, the paper's DyGen is compared
    assert {r["best"] for r in plain.values()} == {"dygen"}
    assert list(plain) == ["dygen-normalised_sample", "dygen-no_dynamics", "base"]  # report order
    assert plain["dygen-normalised_sample"]["seeds"] == [0, 1]
    assert plain["dygen-normalised_sample"]["diffs"] == pytest.approx([-0.03, -0.01])
    assert plain["dygen-normalised_sample"]["mean"] == pytest.approx(-0.02)
    assert plain["dygen-no_dynamics"]["diffs"] == pytest.approx([-0.20, -0.16])
    assert plain["base"]["seeds"] == [0] and plain["base"]["diffs"] == pytest.approx([0.10])
    trusted = {r["other"]: r for r in rows if r["tag"] == "trusted"}
    # trusted rows: test accuracy is compared for the setting whose prediction is right most often on
    # the calibration rows, cross-fitted (0.62 against 0.60); the labels for the one whose suggestions
    # are (0.70 against 0.65); never chosen on test
    assert {r["best"] for r in trusted.values()} == {"dygen-normalised_sample"}
    assert trusted["dygen"]["diffs"] == pytest.approx([0.1])
    assert trusted["base"]["diffs"] == pytest.approx([0.05])
    gains = {r["tag"]: r for r in per_seed_suggestion(cell_records())}
    assert gains[""]["best"] == "dygen" and gains[""]["seeds"] == [0, 1] and gains["trusted"]["best"] == "dygen"
    assert gains[""]["diffs"] == pytest.approx([0.02, 0.04])
    assert gains["trusted"]["seeds"] == [0] and gains["trusted"]["diffs"] == pytest.approx([0.1])
    table = per_seed_markdown(cell_records())
    assert "| demo, SN, r=0.4 | dygen | base | 0 | +10.0 | +10.0 | – |" in table  # one seed: no std
    # std over seeds 0 and 1: dygen 0.70, 0.74 -> 2.83 points; normalised 0.73, 0.75 -> 1.41
    assert plain["dygen-normalised_sample"]["larger_std"] == pytest.approx(0.04 / 2 ** 0.5)
    assert "| demo, SN, r=0.4 | dygen | dygen-normalised_sample | 0 1 | -3.0, -1.0 | -2.0 | 2.8 |" in table
    assert "| demo, SN, r=0.4 | dygen | 0 1 | +2.0, +4.0 | +3.0 |" in table
    assert "| demo, SN, r=0.4, trusted | dygen | 0 | +10.0 | +10.0 |" in table
    assert "| demo, SN, r=0.4, trusted | dygen-normalised_sample | base | 0 | +5.0 | +5.0 |" in table


def test_per_seed_option_prints_and_writes_the_grid_block(tmp_path, monkeypatch, capsys):
    runs = tmp_path / "cache" / "experiments" / "paper" / "runs"
    runs.mkdir(parents=True)
    for k, r in enumerate(cell_records()):
        r["experiment"] = "paper"
        r["detection"] = None  # no detector curves to draw
        (runs / f"run{k}.json").write_text(json.dumps(r))
    monkeypatch.setattr(experiments, "ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "results.md").write_text("# Results\n")
    (tmp_path / "readme.md").write_text("# readme\n")
    base = ["--summary_only", "--cache_dir", str(tmp_path / "cache"), "--figure_dir", str(tmp_path / "figure")]
    assert experiments.main([*base, "--readme"]) == 0
    assert "minus each other method" not in capsys.readouterr().out
    assert "minus each other method" not in (tmp_path / "docs" / "results.md").read_text()
    assert experiments.main([*base, "--per_seed", "--readme"]) == 0
    assert "| demo, SN, r=0.4 | dygen | dygen-normalised_sample | 0 1 | -3.0, -1.0 | -2.0 |" in capsys.readouterr().out
    begin, end = experiments.results_markers("paper")
    block = (tmp_path / "docs" / "results.md").read_text().split(begin)[1].split(end)[0]
    assert "| demo, SN, r=0.4 | dygen | dygen-normalised_sample | 0 1 | -3.0, -1.0 | -2.0 |" in block
    assert "| demo, SN, r=0.4 | dygen | 0 1 | +2.0, +4.0 | +3.0 |" in block


def test_trusted_runs_share_stage1_not_names_or_summary_rows(tiny_bert, tmp_path, monkeypatch):
    # all checked rows calibrating: stage 1 is the one without them (by default half train it)
    calibrating = ("trusted", (*experiments.TRUSTED[1], "--calibration_share", "1"))
    monkeypatch.setitem(experiments.GRIDS, "both", {
        "settings": [("demo", "SN", 0.4), ("demo", "SN", 0.4, calibrating)], "seeds": [0],
        "args": ["--bert", tiny_bert, "--epochs", "2", "--total_iter", "2"]})
    cache = str(tmp_path / "cache")
    cells = experiments.plan_grid("both", None, cache, None, ["dygen"])
    assert len(cells) == 1 and names_of(cells) == ["demo-SN-0.4-seed0-dygen", "demo-SN-0.4-trusted-seed0-dygen"]
    assert experiments.run_grid("both", cells, cache, jobs=1) == 0
    stored = [json.loads((Path(cache) / "experiments" / "both" / "runs" / f"{n}.json").read_text())
              for n in names_of(cells)]
    assert [r["stage1_cache"]["hit"] for r in stored] == [False, True]
    assert [r["config"]["trusted"] for r in stored] == [None, "validation"]
    rows = summarize(stored)
    assert [(r["tag"], r["n_seeds"]) for r in rows] == [("", 1), ("trusted", 1)]
    assert all(r["suggested_gold_mean"] is not None and r["det_suggested_roc_auc"] is not None for r in rows)


def test_a_run_stored_without_a_result_neutral_flag_counts_as_finished(tmp_path):
    argv = ["--dataset", "semeval", "--seed", "1", "--precision", "bf16"]
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"experiment_argv": argv}))  # stored before the grid took --stage1_checkpoints
    assert experiments.is_finished(path, [*argv, "--stage1_checkpoints"])
    assert experiments.is_finished(path, argv)
    assert not experiments.is_finished(path, ["--dataset", "semeval", "--seed", "2", "--precision", "bf16",
                                              "--stage1_checkpoints"])
    assert not experiments.is_finished(path, [*argv, "--split_batches", "on"])  # changes the result
    assert not experiments.is_finished(tmp_path / "missing.json", argv)
