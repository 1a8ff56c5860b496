"""Baselines and ablations as settings of the one pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from src.config import parse_config
from src.errors import UserError
from src.methods import method_label, plan
from src.pipeline import run

FAST = ["--epochs", "2", "--total_iter", "2", "--train_batch_size", "16", "--no-progress"]


def test_plans():
    dygen = plan(parse_config(["--noise_ratio", "0.3", "--n_model", "3"]))
    got = (dygen.n_model, dygen.trajectory, dygen.marking, dygen.mark_ratio, dygen.knn_fit, dygen.knn_epoch,
           dygen.stage2)
    assert got == (3, "all", "dynamics", 0.3, "unmarked", "first", True)
    base = plan(parse_config(["--method", "base"]))
    assert (base.n_model, base.alpha_t_hi, base.stage2) == (1, 0.0, False)
    coreg = plan(parse_config(["--method", "coreg", "--alpha_t_hi", "4"]))
    assert (coreg.n_model, coreg.alpha_t_hi, coreg.stage2) == (2, 4.0, False)
    npc = plan(parse_config(["--method", "npc"]))
    assert (npc.n_model, npc.alpha_t_hi, npc.trajectory, npc.mark_ratio, npc.knn_fit, npc.knn_epoch, npc.stage2) == \
        (1, 0.0, "last", 0.0, "npc", "last", True)
    # --no_dynamics: no trajectory and no dynamics score; the same share marked by the loss
    no_dyn = plan(parse_config(["--no_dynamics", "--noise_ratio", "0.3"]))
    assert (no_dyn.trajectory, no_dyn.marking, no_dyn.mark_ratio, no_dyn.knn_fit, no_dyn.knn_epoch) == \
        ("last", "loss", 0.3, "unmarked", "first")
    # --mark_score loss: the same share marked by the loss, the trajectory still entering stage 2
    by_loss = plan(parse_config(["--mark_score", "loss", "--noise_ratio", "0.3"]))
    assert (by_loss.trajectory, by_loss.marking, by_loss.mark_ratio) == ("all", "loss", 0.3)
    no_coreg = plan(parse_config(["--no_coreg"]))
    assert (no_coreg.alpha_t_hi, no_coreg.lambda_t, no_coreg.n_model) == (0.0, 0.0, 2)
    assert plan(parse_config(["--uniform_prior"])).prior_norm == 0.0
    both = plan(parse_config(["--no_coreg", "--uniform_prior"]))
    assert both.prior_norm == 0.0 and both.lambda_t == 0.0
    assert method_label("dygen", ["no_coreg", "uniform_prior"]) == "dygen-no_coreg-uniform_prior"


def test_ablation_of_a_baseline_is_a_user_error():
    with pytest.raises(UserError, match="--no_dynamics"):
        parse_config(["--method", "npc", "--no_dynamics"])
    with pytest.raises(UserError):
        parse_config(["--method", "bert"])


def test_every_method_runs_and_reports(tiny_bert, tmp_path):
    common = ["--bert", tiny_bert, *FAST, "--cache_dir", str(tmp_path / "cache")]
    runs = {}
    for extra in (["--method", "dygen"], ["--method", "base"], ["--method", "coreg"], ["--method", "npc"],
                  ["--no_dynamics"], ["--no_coreg"], ["--uniform_prior"]):
        record = run(parse_config([*common, *extra]))
        runs[record["method_label"]] = record
    assert set(runs) == {"dygen", "base", "coreg", "npc", "dygen-no_dynamics", "dygen-no_coreg",
                         "dygen-uniform_prior"}
    hits = {k: r["stage1_cache"]["hit"] for k, r in runs.items()}
    assert hits == {"dygen": False, "base": False, "coreg": True, "npc": True, "dygen-no_dynamics": True,
                    "dygen-no_coreg": False, "dygen-uniform_prior": True}
    for name in ("base", "coreg"):  # no stage 2: the stage-1 prediction is what is reported
        assert runs[name]["accuracy"] == runs[name]["accuracy_before"]
        assert runs[name]["accuracy_after"] is None and runs[name]["stage2"] == []
    assert runs["coreg"]["accuracy"] == runs["dygen"]["accuracy_before"]  # the same ensemble
    assert runs["npc"]["accuracy_before"] == runs["base"]["accuracy"]  # NPC cleans the base model
    for name in ("dygen", "npc", "dygen-no_dynamics", "dygen-no_coreg", "dygen-uniform_prior"):
        assert runs[name]["accuracy"] == runs[name]["accuracy_after"] == runs[name]["stage2"][-1]["test_accuracy"]
    assert runs["dygen"]["method"] == "dygen" and runs["dygen-no_coreg"]["ablations"] == ["no_coreg"]
    assert runs["npc"]["plan"]["n_model"] == 1
    assert runs["dygen-no_dynamics"]["marking"][0]["marked"] == runs["dygen"]["marking"][0]["marked"] > 0
    assert runs["dygen"]["marking"][0]["marked"] > 0
    # the demo has gold train labels: every run reports the three detectors
    for record in runs.values():
        arrays = np.load(record["arrays"])
        assert arrays["wrong"].sum() == record["detection"]["dynamics"]["truly_noisy"]
        for name in ("dynamics", "loss", "confident_learning"):  # precision: of the flagged rows, the wrong share
            flags = arrays[f"{name}_flags"]
            expected = arrays["wrong"][flags].mean() if flags.any() else 0.0  # none flagged: 0 by convention
            assert record["detection"][name]["precision"] == pytest.approx(expected)
    curves = runs["dygen"]["detection"]["distance_curves"]
    assert len(curves["clean_mean"]) == 2 and len(curves["noisy_mean"]) == 2
    log = (tmp_path / "cache" / "demo-results.logs").read_text()
    assert "method=dygen-uniform_prior" in log and "method=npc" in log


def test_vae_epochs_is_ignored_with_a_warning(capsys):
    # the paper's own train.sh passes --vae_epochs 500 --total_iter 10: 10 stage-2 epochs
    config = parse_config(["--vae_epochs", "500", "--total_iter", "10"])
    assert config.total_iter == 10
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: --vae_epochs is ignored")
    assert parse_config(["--vae_epochs", "3"]).total_iter == 10  # the default, not 3


def test_paper_defaults_where_the_readme_says_so():
    c = parse_config([])
    assert (c.selected_class, c.knn_mode, c.prior_norm, c.dirichlet_sample, c.approximate_knn) == \
        (1, "onehot", 5.0, "raw", False)
    assert (c.lr, c.vae_lr, c.train_batch_size, c.epochs, c.total_iter, c.lambda_t) == (5e-5, 5e-5, 32, 10, 10, 5.0)


def test_normalised_sample_is_a_labelled_variant():
    from src.methods import run_label

    assert run_label(parse_config([])) == "dygen"
    assert run_label(parse_config(["--dirichlet_sample", "normalised"])) == "dygen-normalised_sample"


def test_every_label_has_flags_that_give_it_back():
    from src.methods import all_labels, flags_of, run_label

    labels = all_labels()
    assert labels[0] == "dygen" and labels[-3:] == ["coreg", "npc", "base"] and len(set(labels)) == len(labels)
    for label in labels:
        assert run_label(parse_config(flags_of(label))) == label
    with pytest.raises(ValueError):
        flags_of("npc-no_coreg")  # ablations are DyGen's only


def test_variants_alone_and_combined_have_labels_that_give_back_their_flags():
    from src.methods import flags_of, run_label, variant_labels

    assert "dygen-balanced_prior-class_marking" in variant_labels()
    for label in variant_labels():
        flags = flags_of(label)
        assert run_label(parse_config(flags)) == label, label
    assert flags_of("dygen-balanced_prior-class_marking") == ["--prior_balance", "class", "--mark_share", "per_class"]
    assert flags_of("dygen-class_marking-loss_marking") == ["--mark_share", "per_class", "--mark_score", "loss"]
    with pytest.raises(ValueError):
        flags_of("dygen-balanced_prior-no_coreg")  # an ablation is no variant

