"""Small helper scripts: the WRENCH slice used by the padding benchmark, the attention tracer,
the assets a lent GPU machine is given, the choice of a setting on trusted rows."""

import json

import pytest
import torch
from conftest import shared_data

from scripts import wrench_slice


def test_wrench_slice_keeps_the_first_records(tmp_path):
    source = shared_data("trec", "wrench")
    assert wrench_slice.main([str(source), str(tmp_path / "s"), "--train", "5", "--valid", "3", "--test", "2"]) == 0
    train = json.loads((tmp_path / "s" / "train.json").read_text())
    assert list(train) == list(json.loads((source / "train.json").read_text()))[:5]
    assert len(json.loads((tmp_path / "s" / "test.json").read_text())) == 2
    assert (tmp_path / "s" / "label.json").read_text() == (source / "label.json").read_text()


def test_wrench_slice_refuses_a_folder_without_the_files(tmp_path, capsys):
    assert wrench_slice.main([str(tmp_path), str(tmp_path / "out")]) == 2
    assert "lacks train.json" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_padding_bench_times_three_arms_on_the_same_data(tiny_bert, capsys):
    from benchmarks import bench

    result = bench.padding(["--bert", tiny_bert, "--epochs", "1", "--max_length", "32", "--device", "cpu"])
    assert result["padded_stage1_s"] > 0 and result["stage1_s"] > 0
    assert result["padding_speedup"] == result["padded_stage1_s"] / result["stage1_s"]
    # the arms train the same models on the same batches: only padding and dropout order differ
    assert result["max_prob_diff"] < 0.01 and result["same_predictions"] > 0.95
    out = capsys.readouterr().out
    assert "dynamic+split vs padded" in out and "default on cpu (fp32): dynamic+split" in out
    assert bench.bench_line(result).startswith("BENCH stage1_s=")


@pytest.mark.slow  # trains or compiles models
def test_attention_tracer_names_the_kernels_of_eager_and_compiled_steps(capsys):
    """On a CPU without dropout SDPA takes its CPU flash kernel, eager and compiled alike; the
    tracer must find it in the profile and in both traced graphs, and the restricted run works."""
    from benchmarks import trace_attention

    trace_attention.main(["--device", "cpu", "--dropout", "0", "--batch", "1", "--seq", "8"])
    lines = {line.split(":")[0]: line for line in capsys.readouterr().out.splitlines() if ":" in line}
    for part in ("eager ran", "compiled forward", "compiled backward"):
        assert "_scaled_dot_product_flash_attention_for_cpu" in lines[part]
    assert "bfloat16" in lines["compiled forward"]  # autocast reaches the traced attention
    assert lines["compiled, flash / memory-efficient only"].endswith("ran")


def test_compiled_unpadded_batches_pass_no_attention_mask(monkeypatch):
    """transformers 5.17 (not 5.24) built an all-ones mask while torch.compile traced (so the
    CUDA attention fell back to the math path). With that behaviour put back, a plain
    torch.compile traces the attention with a mask (4 tensor inputs) and `compile_model` without
    (q, k, v)."""
    masking_utils = pytest.importorskip("transformers.masking_utils")
    from transformers import BertConfig, BertForSequenceClassification

    from benchmarks.trace_attention import recording_backend
    from src.accel.models import compile_model

    original = masking_utils._ignore_bidirectional_mask_sdpa
    monkeypatch.setattr(masking_utils, "_ignore_bidirectional_mask_sdpa",
                        lambda *a, **k: not torch.compiler.is_compiling() and original(*a, **k))
    monkeypatch.setitem(masking_utils.AttentionMaskInterface._global_mapping, "sdpa", masking_utils.sdpa_mask)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, num_labels=3, attention_probs_dropout_prob=0.0,
                        attn_implementation="sdpa")  # no dropout: the CPU's fused kernel, not the math path
    model = BertForSequenceClassification(config)

    def traced_attention_inputs(compile_fn) -> list[int]:
        torch._dynamo.reset()
        record: dict[str, list[str]] = {}
        compiled = compile_fn(model, backend=recording_backend(record))
        compiled(input_ids=torch.ones(2, 6, dtype=torch.long)).logits.sum().backward()  # no padding
        return [call.count(",") + 1 for call in record["forward"] if "scaled_dot_product" in call]

    assert traced_attention_inputs(torch.compile) == [4]
    assert traced_attention_inputs(compile_model) == [3]
    torch._dynamo.reset()


def test_the_registered_mask_function_skips_only_unpadded_full_attention(monkeypatch):
    """No padding and full attention: no mask; with a padding mask, or when the caller asks for the
    mask itself: transformers' own."""
    masking_utils = pytest.importorskip("transformers.masking_utils")
    from src.accel.models import pass_no_mask_without_padding

    monkeypatch.setitem(masking_utils.AttentionMaskInterface._global_mapping, "sdpa", masking_utils.sdpa_mask)
    pass_no_mask_without_padding()
    build = masking_utils.ALL_MASK_ATTENTION_FUNCTIONS["sdpa"]
    padding = torch.tensor([[True, True, False]])
    common = {"batch_size": 1, "q_length": 3, "kv_length": 3, "allow_is_causal_skip": False,
              "allow_is_bidirectional_skip": True}  # as create_bidirectional_mask asks
    full = {**common, "mask_function": masking_utils.bidirectional_mask_function}
    assert build(**full, attention_mask=None) is None
    torch.testing.assert_close(build(**full, attention_mask=padding),
                               masking_utils.sdpa_mask(**full, attention_mask=padding))
    kept = {**full, "allow_is_bidirectional_skip": False}  # transformers asks for the mask itself
    assert build(**kept, attention_mask=None).shape == (1, 1, 3, 3)
    torch.testing.assert_close(build(**kept, attention_mask=None), masking_utils.sdpa_mask(**kept, attention_mask=None))


def test_device_assets_carry_the_archive_and_a_half_precision_model(tiny_bert, tmp_path, capsys):
    from benchmarks import device_assets
    from src.stage1.plm import load_classifier

    archive = tmp_path / "20news-bydate.tar.gz"
    archive.write_bytes(b"not really an archive")
    out = tmp_path / "assets"
    assert device_assets.main(["--out", str(out), "--data", str(archive), "--bert", tiny_bert]) == 0
    assert (out / archive.name).read_bytes() == archive.read_bytes()
    saved = json.loads((out / "minilm" / "config.json").read_text())
    assert saved.get("dtype", saved.get("torch_dtype")) == "float16"
    original, carried = load_classifier(tiny_bert, 3), load_classifier(str(out / "minilm"), 3)
    assert next(carried.parameters()).dtype == torch.float32  # widened back when loaded
    for (name, a), (_, b) in zip(original.base_model.named_parameters(), carried.base_model.named_parameters()):
        assert torch.allclose(a, b, atol=1e-3, rtol=1e-3), name  # equal up to float16 rounding
    assert "MB" in capsys.readouterr().out


def test_device_assets_refuse_a_missing_archive(tmp_path, capsys):
    from benchmarks import device_assets

    out = tmp_path / "assets"
    assert device_assets.main(["--out", str(out), "--data", str(tmp_path / "none.tar.gz")]) == 2
    assert "no such file" in capsys.readouterr().err and not out.exists()


def test_choose_margin_reads_validation_rows_only_and_skips_trusted_runs(tmp_path, capsys):
    import numpy as np

    from scripts import choose_margin

    header = "split,index,text,noisy_label,suggested_label,label_issue,given_label_prob,cleaned_label,cleaned_prob,gold"
    # validation: a confident change that is right (gap 0.6), a weak one that is wrong (gap 0.1);
    # a train row that would favour margin 0 is not read
    rows = ["validation,0,a,x,x,0,0.2,y,0.8,y", "validation,1,b,x,x,0,0.45,y,0.55,x", "train,0,c,x,x,0,0.45,y,0.55,y"]
    (tmp_path / "run-labels.csv").write_text("\n".join([header, *rows]) + "\n")
    (tmp_path / "trusted-labels.csv").write_text(
        "\n".join([header + ",trusted_label", "validation,0,a,x,x,0,0.2,y,0.8,y,y"]) + "\n")
    curve = choose_margin.validation_agreement(tmp_path / "run-labels.csv", np.array([0.0, 0.2, 0.7]))
    assert curve.tolist() == [0.5, 1.0, 0.5]
    assert choose_margin.validation_agreement(tmp_path / "trusted-labels.csv", np.array([0.0])) is None
    assert choose_margin.main([str(tmp_path / "run-labels.csv"), str(tmp_path / "trusted-labels.csv")]) == 0
    assert "best margin on validation: 0.55" in capsys.readouterr().out  # the largest of 0.10 .. 0.55


def test_rebuild_chemprot_unmarks_entities_and_records_their_spans():
    from scripts.rebuild_chemprot import unmark, weak_labels

    data = unmark("[GENE]ER[\\GENE] is not bound by [CHEMICAL]E2[\\CHEMICAL].")
    assert data == {"text": "ER is not bound by E2.", "entity1": "ER", "entity2": "E2",
                    "span1": [0, 2], "span2": [19, 21]}
    votes = weak_labels(data["text"])
    assert len(votes) == 26 and votes[-1] == 9 and sum(v >= 0 for v in votes) == 1  # only 'not' fires


def test_rebuild_chemprot_matches_wrench_valid_and_test_and_refuses_a_changed_row(tmp_path, capsys):
    from scripts import rebuild_chemprot

    cosine, wrench = shared_data("chemprot", "cosine"), shared_data("chemprot", "wrench")
    assert rebuild_chemprot.main([str(tmp_path / "out"), "--cosine", str(cosine), "--wrench", str(wrench)]) == 0
    train = json.loads((tmp_path / "out" / "train.json").read_text())
    held_out = {**json.loads((wrench / "valid.json").read_text()), **json.loads((wrench / "test.json").read_text())}
    assert len(train) == 12861 and not set(train) & set(held_out)  # WRENCH's train size; disjoint ids
    assert {r["label"] for r in train.values()} == set(range(10))

    changed = tmp_path / "changed"
    changed.mkdir()
    for name in ("test.json", "label.json"):
        (changed / name).write_bytes((wrench / name).read_bytes())
    valid = json.loads((wrench / "valid.json").read_text())
    key = next(iter(valid))
    valid[key]["weak_labels"][0] = 0 if valid[key]["weak_labels"][0] < 0 else -1
    (changed / "valid.json").write_text(json.dumps(valid))
    capsys.readouterr()
    assert rebuild_chemprot.main([str(tmp_path / "out2"), "--cosine", str(cosine), "--wrench", str(changed)]) == 2
    assert f"id {key}: rebuilt weak_labels" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists() and not list(tmp_path.glob(".out2.*"))


def _run_record(directory, label, seed, suggested_right=None, **config):
    """A minimal run record: `suggested_right` (share) None for a run without calibration rows."""
    import json

    estimate = None if suggested_right is None else {
        "suggested_right": {"share": suggested_right}, "given_right": {"share": 0.6},
        "prediction_right": {"share": suggested_right - 0.01}}
    run_id = f"run-{label}-{seed}"
    record = {"run_id": run_id, "method_label": label, "suggestion": {"estimate": estimate},
              "config": {"seed": seed, "dataset": "csv", "path": "mine", "trusted_column": "checked", **config}}
    path = directory / f"{run_id}.json"
    path.write_text(json.dumps(record))
    return path


def test_choose_setting_picks_the_dygen_setting_with_the_most_right_suggestions_over_seeds(tmp_path, capsys):
    from scripts import choose_setting

    paths = [_run_record(tmp_path, "dygen", 0, 0.70), _run_record(tmp_path, "dygen", 1, 0.74),
             # behind on seed 0, ahead on the mean
             _run_record(tmp_path, "dygen-class_marking", 0, 0.69),
             _run_record(tmp_path, "dygen-class_marking", 1, 0.80),
             _run_record(tmp_path, "coreg", 0, 0.95)]  # a baseline: shown, never chosen
    (tmp_path / "run-dygen-class_marking-0-labels.csv").write_text("split\n")
    assert choose_setting.main([str(p) for p in paths]) == 0
    out = capsys.readouterr().out
    assert "chosen: dygen-class_marking " in out
    assert f"labels to apply (seed 0): {tmp_path / 'run-dygen-class_marking-0-labels.csv'}\n" in out
    assert "run-dygen-class_marking-1-labels.csv (not beside the record)" in out
    assert "* dygen-class_marking" in out and "* coreg" not in out and "74.5" in out  # the mean of 69 and 80


@pytest.mark.parametrize("case", ["other data", "twice", "no calibration rows", "not a record"])
def test_choose_setting_refuses_what_it_cannot_compare(tmp_path, capsys, case):
    from scripts import choose_setting

    paths = [_run_record(tmp_path, "dygen", 0, None if case == "no calibration rows" else 0.7)]
    if case == "other data":
        paths.append(_run_record(tmp_path, "dygen-class_marking", 0, 0.8, trusted_column="other"))
    elif case == "twice":
        paths.append(tmp_path / "copy.json")
        paths[-1].write_text(paths[0].read_text())
    elif case == "not a record":
        paths.append(tmp_path / "list.json")
        paths[-1].write_text("[1, 2]")
    assert choose_setting.main([str(p) for p in paths]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert {"other data": "--trusted_column", "twice": "two runs of dygen with seed 0",
            "no calibration rows": "nothing on validation", "not a record": "not a run record"}[case] in captured.err
