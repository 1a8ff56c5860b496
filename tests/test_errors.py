"""Every bad input ends with one `error:` line naming the flag, file or line, exit code 2, and
nothing written to cache/, model_save/ or figure/."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, shared_data

from main import main

OUTPUTS = ("cache", "model_save", "figure")


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path.parent)


@pytest.fixture
def fails(tmp_path, monkeypatch, capsys, tiny_bert):
    """fails(args, *expected) runs main() in an empty folder and checks the one-line error."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)

    def check(args: list[str], *expected: str) -> str:
        if "--bert" not in args:
            args = [*args, "--bert", tiny_bert]
        # fast settings first, so a flag under test given in `args` wins
        code = main(["--epochs", "1", "--total_iter", "1", "--no-progress", *args])
        err = capsys.readouterr().err
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        for text in expected:
            assert text in lines[0], lines[0]
        assert not any((work / name).exists() for name in OUTPUTS), list(work.iterdir())
        return lines[0]

    return check


def csv_folder(tmp_path, train: str, **others) -> str:
    folder = tmp_path / "user"
    write(folder / "train.csv", train)
    for name, text in others.items():
        write(folder / name.replace("_", "."), text)
    return str(folder)


GOOD_TRAIN = "text,label\n" + "".join(f"match goal number {i},{'ab'[i % 2]}\n" for i in range(40))


# ---- missing --path or split file ------------------------------------------------------

@pytest.mark.parametrize("dataset", ["20news", "agnews", "wos", "trec", "semeval", "chemprot", "csv"])
def test_missing_path(fails, tmp_path, dataset):
    fails(["--dataset", dataset, "--path", str(tmp_path / "nowhere")], "nowhere")


def test_csv_without_path(fails):
    fails(["--dataset", "csv"], "--path")


def test_missing_split_files(fails, tmp_path):
    fails(["--dataset", "chemprot", "--path", str(shared_data("chemprot"))], "train.json: file not found")
    folder = tmp_path / "empty"
    folder.mkdir()
    fails(["--dataset", "csv", "--path", str(folder)], "train.csv: file not found")
    ag = write(tmp_path / "ag" / "train.csv", '"1","a","b"\n')
    write(tmp_path / "ag" / "classes.txt", "A\nB\n")
    fails(["--dataset", "agnews", "--path", ag], "test.csv: file not found")
    wos = write(tmp_path / "wos" / "X.txt", "one\ntwo\n")
    fails(["--dataset", "wos", "--path", wos], "Y.txt: file not found")


def test_unknown_dataset(fails):
    fails(["--dataset", "imdb"], "imdb")


# ---- malformed records ------------------------------------------------------------------

def wrench_folder(tmp_path, train: dict | str) -> str:
    record = {"label": 0, "weak_labels": [0, -1], "data": {"text": "what is it"}}
    folder = tmp_path / "wrench"
    write(folder / "train.json", train if isinstance(train, str) else json.dumps(train, indent=1))
    for name in ("valid", "test"):
        write(folder / f"{name}.json", json.dumps({str(i): record for i in range(12)}))
    write(folder / "label.json", json.dumps({"0": "A", "1": "B"}))
    return str(folder)


def test_malformed_json(fails, tmp_path):
    path = wrench_folder(tmp_path, '{"0": {"label": 0,\n "weak_labels": [0]\n "data": {}}}')
    fails(["--dataset", "trec", "--path", path], "train.json:3", "malformed json")


def test_malformed_json_record(fails, tmp_path):
    good = {"label": 1, "weak_labels": [1, -1], "data": {"text": "who is he"}}
    records = {"0": good, "1": good, "2": {"label": 1, "weak_labels": [1, -1], "text": "no data"}}
    line = json.dumps(records, indent=1).splitlines().index(' "2": {') + 1
    fails(["--dataset", "semeval", "--path", wrench_folder(tmp_path, records)], f"train.json:{line}", "'2'")


def test_malformed_jsonl_record(fails, tmp_path):
    folder = tmp_path / "user"
    write(folder / "train.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": "y"\n')
    fails(["--dataset", "csv", "--path", str(folder)], "train.jsonl:2", "malformed json")


def test_malformed_csv_record(fails, tmp_path):
    path = csv_folder(tmp_path, GOOD_TRAIN, valid_csv="text,label\nmatch,a\ngoal,b,extra\n")
    fails(["--dataset", "csv", "--path", path], "valid.csv:3", "expected 2 fields")
    path = csv_folder(tmp_path, GOOD_TRAIN, valid_csv='text,label\n"match" goal,a\n')
    fails(["--dataset", "csv", "--path", path], "valid.csv:2", "malformed csv")
    ag = write(tmp_path / "ag" / "train.csv", '"1","a","b"\n"2","only two"\n')
    write(tmp_path / "ag" / "test.csv", '"1","a","b"\n')
    write(tmp_path / "ag" / "classes.txt", "A\nB\n")
    fails(["--dataset", "agnews", "--path", ag], "train.csv:2", "expected 3 fields")


# ---- labels outside the classes -----------------------------------------------------------

def test_label_outside_the_class_range(fails, tmp_path):
    records = {str(i): {"label": i % 2, "weak_labels": [i % 2], "data": {"text": "who"}} for i in range(20)}
    records["7"]["label"] = 9
    fails(["--dataset", "trec", "--path", wrench_folder(tmp_path, records)], "train.json", "'7'", "label 9")
    ag = write(tmp_path / "ag" / "train.csv", '"1","a","b"\n')
    write(tmp_path / "ag" / "test.csv", '"1","a","b"\n"5","c","d"\n')
    write(tmp_path / "ag" / "classes.txt", "A\nB\nC\nD\n")
    fails(["--dataset", "agnews", "--path", ag], "test.csv:2", "class '5'")
    ints = "text,label\n" + "".join(f"match {i},{i % 3}\n" for i in range(40))
    fails(["--dataset", "csv", "--path", csv_folder(tmp_path, ints, test_csv="text,gold\ngoal,3\n")],
          "test.csv:2", "gold 3 outside the class range 0..2")
    fails(["--dataset", "csv", "--path", csv_folder(tmp_path, ints + "goal,-1\n")], "train.csv:42", "label -1")


def test_string_label_that_train_never_had(fails, tmp_path):
    path = csv_folder(tmp_path, GOOD_TRAIN, test_csv="text,label,gold\nmatch,a,a\ngoal,b,c\n")
    fails(["--dataset", "csv", "--path", path], "test.csv:3", "gold 'c' is not a class")
    path = csv_folder(tmp_path, GOOD_TRAIN, test_csv="text,label\nmatch,zz\n")
    fails(["--dataset", "csv", "--path", path], "test.csv:2", "label 'zz' is not a class")


# ---- empty texts -------------------------------------------------------------------------

def test_empty_text(fails, tmp_path):
    fails(["--dataset", "csv", "--path", csv_folder(tmp_path, GOOD_TRAIN + '"  ",a\n')], "train.csv:42", "empty text")
    records = {"0": {"label": 0, "weak_labels": [0], "data": {"text": ""}}}
    fails(["--dataset", "trec", "--path", wrench_folder(tmp_path, records)], "train.json:2", "empty text")
    wos = write(tmp_path / "wos" / "X.txt", "one\n\nthree\n")
    write(tmp_path / "wos" / "Y.txt", "0\n1\n0\n")
    fails(["--dataset", "wos", "--path", wos], "X.txt:2", "empty text")


# ---- flags --------------------------------------------------------------------------------

@pytest.mark.parametrize("flag,value", [
    ("--noise_ratio", "1.0"), ("--noise_ratio", "-0.1"), ("--noise_ratio", "nan"), ("--n_model", "0"),
    ("--epochs", "0"), ("--total_iter", "0"), ("--train_batch_size", "0"), ("--eval_batch_size", "0"),
    ("--vae_batch_size", "-3"),
    # real-valued flags: finite and in range (softplus_beta 0 gave NaN losses and exit code 0)
    ("--softplus_beta", "0"), ("--prior_norm", "-1"), ("--beta", "-0.5"), ("--lambda_t", "-1"),
    ("--alpha_t_hi", "-1"), ("--clip_gradient_norm", "0"), ("--lr", "nan"), ("--lr", "inf"),
    ("--vae_lr", "nan"), ("--weight_decay", "-1"), ("--warmup_epochs", "nan"),
    ("--seed", "-1"), ("--seed", str(2**32)),
])
def test_flag_out_of_range(fails, flag, value):
    fails([flag, value], flag)


def test_bert_that_is_not_a_model_directory(fails, tmp_path):
    fails(["--bert", str(tmp_path / "no_model")], "--bert", "no_model")
    (tmp_path / "not_a_model").mkdir()
    fails(["--bert", str(tmp_path / "not_a_model")], "--bert", "config.json")


def test_bert_that_is_not_reachable(tmp_path):
    """A hub name while offline: a separate process, so the offline switch is read at import."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--bert", "no-such-org/no-such-model", "--epochs", "1",
         "--cache_dir", str(tmp_path / "cache"), "--model_dir", str(tmp_path / "model_save")],
        check=False, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --bert no-such-org/no-such-model"), result.stderr
    assert "Traceback" not in result.stderr and list(tmp_path.iterdir()) == []


def config_only_model(folder, **extra) -> str:
    """A model folder with only a config.json (a 1-layer BERT), plus `extra` keys."""
    from transformers import BertConfig

    BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8,
               max_position_embeddings=64).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **extra}))
    return str(folder)


def test_every_load_refuses_the_models_own_code(tmp_path, monkeypatch):
    """from_pretrained without trust_remote_code=False asks "run the custom code? [y/N]"."""
    import torch
    import transformers

    from src.errors import UserError
    from src.stage1 import plm

    folder = config_only_model(tmp_path / "model")
    asked = []

    def spy(name, *args, **kwargs):
        asked.append(kwargs.get("trust_remote_code"))
        raise OSError("not loaded here")

    for auto in ("AutoTokenizer", "AutoConfig", "AutoModel", "AutoModelForSequenceClassification"):
        monkeypatch.setattr(getattr(transformers, auto), "from_pretrained", spy)
    loads = [lambda: plm.load_tokenizer(folder), lambda: plm.load_classifier(folder, 2),
             lambda: plm.max_positions(folder),
             lambda: plm.pretrained_embeddings(folder, None, np.arange(1), torch.device("cpu"), "fp32")]
    for load in loads:
        with pytest.raises(UserError, match="could not load the model"):
            load()
    assert asked == [False] * len(loads)


def test_a_model_folder_with_its_own_code_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "code_ran"
    folder = tmp_path / "custom"
    config_only_model(folder, auto_map={"AutoConfig": "evil.EvilConfig",
                                        "AutoModelForSequenceClassification": "evil.EvilModel"})
    (folder / "evil.py").write_text(f"import os\nos.mkdir({str(marker)!r})\n")
    code = main(["--bert", str(folder), "--epochs", "1", "--total_iter", "1", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: --bert {folder}: config.json has an "
                                                             f"auto_map"), err
    assert not marker.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["custom"]


def test_pickled_weights_are_one_line(tmp_path):
    """torch refuses to unpickle objects from pytorch_model.bin (UnpicklingError): one line."""
    import torch

    from src.errors import UserError
    from src.stage1.plm import load_classifier

    marker = tmp_path / "pickle_ran"

    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(marker),)

    folder = config_only_model(tmp_path / "pickled")
    torch.save({"bert.embeddings.word_embeddings.weight": Payload()}, tmp_path / "pickled" / "pytorch_model.bin")
    with pytest.raises(UserError, match="--bert .*pickled: the weights file holds pickled Python objects"):
        load_classifier(folder, 2)
    assert not marker.exists()


def test_max_length_beyond_the_model(fails):
    fails(["--max_length", "1000"], "--max_length 1000", "128")  # the tiny BERT has 128 positions


def test_too_few_examples_for_the_knn_prior(fails, tmp_path):
    small = "text,label\n" + "".join(f"match goal {i},{'ab'[i % 2]}\n" for i in range(16))
    fails(["--dataset", "csv", "--path", csv_folder(tmp_path, small), "--noise_ratio", "0.5"], "k=10", "--noise_ratio")


def test_too_few_examples_for_the_knn_prior_under_auto(fails, tmp_path):
    """Checked before stage 1 writes anything, and worded for `auto` (no ratio to lower)."""
    small = "text,label\n" + "".join(f"match goal {i},{'ab'[i % 2]}\n" for i in range(8))
    line = fails(["--dataset", "csv", "--path", csv_folder(tmp_path, small), "--noise_ratio", "auto"],
                 "k=10", "--noise_ratio auto", "use more data")
    assert "lower --noise_ratio" not in line


def test_knn_size_after_the_estimate_names_a_ratio_to_give():
    from src.data import Split, Splits, check_knn_size
    from src.errors import UserError

    split = Split(["t"] * 10, np.zeros(10, dtype=np.int64), None)
    splits = Splits("csv", ["a", "b"], split, split, Split([], None, None))
    check_knn_size(splits, "auto", k=10, estimate=0.5)  # 10 of 20 left: enough
    with pytest.raises(UserError, match=r"auto estimated 0.6000 .* leaving 8 .* at most 0.5 "):
        check_knn_size(splits, "auto", k=10, estimate=0.6)


# ---- the user's label columns and classes.txt ---------------------------------------------

def test_repeated_column_is_refused(fails, tmp_path):
    """csv.DictReader-style zipping kept the last `label` column silently."""
    train = "text,label,label\n" + "".join(f"match {i},a,{'ab'[i % 2]}\n" for i in range(40))
    fails(["--dataset", "csv", "--path", csv_folder(tmp_path, train)], "train.csv:1", "'label'", "more than once")
    folder = tmp_path / "jsonl"
    write(folder / "train.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": "x", "label": "y"}\n')
    fails(["--dataset", "csv", "--path", str(folder)], "train.jsonl:2", "'label'", "more than once")


def test_integer_ids_mixed_with_names_are_refused(fails, tmp_path):
    train = GOOD_TRAIN + "match goal 3,3\n"  # 40 names, then an id
    fails(["--dataset", "csv", "--path", csv_folder(tmp_path, train)], "train.csv:42", "label '3' is a class id",
          "train.csv:2", "'a'")
    ints = "text,label\n" + "".join(f"match {i},{i % 2}\n" for i in range(40))
    fails(["--dataset", "csv", "--path", csv_folder(tmp_path / "ints", ints, test_csv="text,gold\ngoal,b\n")],
          "test.csv:2", "gold 'b' is a class name")


def test_label_missing_from_numeric_classes_file_names_it(fails, tmp_path):
    """Numeric names in classes.txt are names: a label not among them is not a position."""
    train = "text,label\n" + "".join(f"match {i},{i % 4}\n" for i in range(40))
    folder = csv_folder(tmp_path, train, classes_txt="3\n1\n2\n0\n", test_csv="text,gold\ngoal,4\n")
    fails(["--dataset", "csv", "--path", folder], "test.csv:2", "gold '4' is not in classes.txt")
    named = csv_folder(tmp_path / "named", GOOD_TRAIN + "goal,c\n", classes_txt="a\nb\n")
    fails(["--dataset", "csv", "--path", named], "train.csv:42", "'c' is not in classes.txt")


# ---- 20news: never a pickle from the user's folder, never a download ---------------------

def test_20news_never_unpickles_a_file_from_the_data_folder(fails, tmp_path):
    import codecs
    import pickle

    marker = tmp_path / "pickle_ran"

    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(marker),)

    folder = tmp_path / "news"
    folder.mkdir()
    # sklearn's cache format: a zlib-compressed pickle
    (folder / "20news-bydate_py3.pkz").write_bytes(codecs.encode(pickle.dumps(Payload()), "zlib_codec"))
    for extra in (["--describe"], []):
        fails(["--dataset", "20news", "--path", str(folder), *extra], "20news-bydate_py3.pkz", "is not read",
              "20news-bydate.tar.gz")
        assert not marker.exists()


def test_20news_without_data_says_where_to_put_it(fails, monkeypatch):
    import sklearn.datasets

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(sklearn.datasets, "fetch_20newsgroups", no_network)
    for extra in (["--describe"], []):
        fails(["--dataset", "20news", *extra], "datasets/20news", "20news-bydate.tar.gz", "--path")
        assert not os.path.exists("datasets")  # the default folder is not created


# ---- unreadable data, unwritable outputs ---------------------------------------------------

def test_unreadable_data_folder(fails, tmp_path, monkeypatch):
    from pathlib import Path

    folder = Path(csv_folder(tmp_path, GOOD_TRAIN))
    folder.chmod(0)  # enough for a normal user; as root, reading is refused as the kernel would:
    real_stat = Path.stat

    def stat(path, **kwargs):
        if path.parent == folder:
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    try:
        fails(["--dataset", "csv", "--path", str(folder)], str(folder), "cannot be read", "Permission denied")
    finally:
        folder.chmod(0o755)


def test_output_folders_are_checked_before_any_work(fails, tmp_path, monkeypatch):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    fails(["--cache_dir", str(a_file / "cache")], "--cache_dir", "a_file is a file")
    fails(["--cache_dir", str(a_file)], "--cache_dir", "a_file is a file")
    # --model_dir is only written with --save_model, after training: checked before it
    fails(["--save_model", "--model_dir", str(a_file / "models")], "--model_dir", "a_file is a file")
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    real_access = os.access  # (as root the permission bits are not enforced: ask as a user would)
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if str(path) == str(read_only)
                        else real_access(path, mode, **kw))
    fails(["--cache_dir", str(read_only / "cache")], "--cache_dir", "read_only is not writable")
    fails(["--save_model", "--model_dir", str(read_only)], "--model_dir", "is not writable")


def test_a_dangling_symbolic_link_as_an_output_folder_is_refused_before_any_work(tmp_path):
    """mkdir(exist_ok=True) fails on it with FileExistsError: for --figure_dir after the whole run."""
    from src.config import parse_config
    from src.errors import UserError
    from src.outputs.record import check_output_dirs

    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    for flag, value in (("--cache_dir", "gone"), ("--figure_dir", "gone"), ("--figure_dir", "gone/figures"),
                        ("--model_dir", "gone")):
        config = parse_config([flag, str(tmp_path / value), "--save_model"])
        with pytest.raises(UserError, match=f"^{flag} .*gone is a symbolic link to .*nowhere, which does not exist"):
            check_output_dirs(config)



# ---- the user's labels and texts, found by --describe ---------------------------

@pytest.fixture
def describe_fails(tmp_path, monkeypatch, capsys):
    """describe_fails(args, *expected): `main.py --describe` refuses with one error line."""
    monkeypatch.chdir(tmp_path)

    def check(args: list[str], *expected: str) -> str:
        code = main([*args, "--describe"])
        captured = capsys.readouterr()
        assert code == 2 and captured.out == "", captured
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
        for text in expected:
            assert text in lines[0], lines[0]
        return lines[0]

    return check


@pytest.mark.parametrize("label", ["999999999999", "3000000"])
def test_an_integer_label_far_beyond_the_others_is_refused(describe_fails, tmp_path, label):
    """One mistyped id among 0..3 made 10^12 class names (a MemoryError), or 3,000,000 (a 50 MB
    --describe)."""
    train = "text,label\n" + "".join(f"match {i},{i % 4}\n" for i in range(40)) + f"goal,{label}\n"
    describe_fails(["--dataset", "csv", "--path", csv_folder(tmp_path, train)], "train.csv:42",
                   f"label {label} would make {int(label) + 1} classes", "use only 5 ids")


def test_ids_may_skip_a_few_classes(tmp_path, capsys):
    train = "text,label\n" + "".join(f"match {i},{[1, 2, 7][i % 3]}\n" for i in range(30))
    from src.data import load_dataset

    assert load_dataset("csv", csv_folder(tmp_path, train), seed=0).num_classes == 8
    assert "5 of the 8 classes have no train example" in capsys.readouterr().err


def test_a_text_of_invisible_characters_is_empty(describe_fails, tmp_path):
    path = csv_folder(tmp_path, GOOD_TRAIN + "\u200b\u200d,a\n")
    describe_fails(["--dataset", "csv", "--path", path], "train.csv:42", "empty text")


def test_an_abstain_label_that_is_a_class_blames_the_flag(describe_fails, tmp_path):
    train = "text,label,gold\n" + "".join(f"match {i},{'ab'[i % 2]},{'ab'[i % 3 % 2]}\n" for i in range(40))
    describe_fails(["--dataset", "csv", "--path", csv_folder(tmp_path, train), "--abstain_label", "b"],
                   "--abstain_label 'b'", "train.csv:3 has it as a gold label")
    folder = csv_folder(tmp_path / "named", GOOD_TRAIN, classes_txt="a\nb\n")
    describe_fails(["--dataset", "csv", "--path", folder, "--abstain_label", "a"], "--abstain_label 'a'",
                   "classes.txt")


# ---- what a run refuses, --describe refuses ------------------------------------------------

def test_describe_refuses_what_a_run_refuses(describe_fails, tmp_path):
    """--describe accepted settings that a run refuses before stage 1."""
    model = config_only_model(tmp_path / "model")  # 64 positions
    describe_fails(["--bert", model, "--max_length", "100000"], "--max_length 100000", "position limit 64")
    small = "text,label\n" + "".join(f"match goal {i},{'ab'[i % 2]}\n" for i in range(40))
    describe_fails(["--dataset", "csv", "--path", csv_folder(tmp_path, small), "--noise_ratio", "0.99"],
                   "k=10", "--noise_ratio 0.99")


def test_classes_whose_c_by_c_steps_cannot_fit_are_refused_before_stage_1(describe_fails, tmp_path, monkeypatch):
    from src.inference import evaluate

    monkeypatch.setattr(evaluate, "host_memory_bytes", lambda: 2**20)  # a machine of 1 MiB
    train = "text,label\n" + "".join(f"match {i},c{i}\n" for i in range(200))
    folder = csv_folder(tmp_path, train, valid_csv="text,label\n" + "".join(f"goal {i},c{i}\n" for i in range(20)))
    describe_fails(["--dataset", "csv", "--path", folder], "csv: 200 classes",
                   "need about 3 MiB, more than this machine's 1 MiB")
    assert evaluate.class_memory_bytes(10_000, 2) > 700 * 10**7  # 10,000 classes, 2 models: 7.6 GB


def test_describe_into_a_closed_pipe_ends_quietly():
    """`python main.py --describe | head -c 10`: the reader has gone; no traceback, exit 0."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write
    result = subprocess.run([sys.executable, "main.py", "--describe"], cwd=ROOT, stdout=write_end,
                            stderr=subprocess.PIPE, text=True)
    os.close(write_end)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
