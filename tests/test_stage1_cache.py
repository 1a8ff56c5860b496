"""Stage-1 reuse: same settings -> no training; any changed setting -> a miss; partial entries ignored."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from src import pipeline
from src.config import parse_config
from src.stage1.train_stage1 import Stage1Result
from src.storage import stage1_cache
from src.storage.row_file import RowFile

FAST = ["--epochs", "2", "--total_iter", "1", "--train_batch_size", "16", "--no-progress"]


def fake_result(seed: int = 0) -> Stage1Result:
    rng = np.random.default_rng(seed)
    return Stage1Result(list(rng.normal(size=(2, 10, 3, 4)).astype(np.float16)),  # M x [N, E, D]
                        rng.random((2, 10, 5)).astype(np.float32), [{"epoch": 1, "train_loss": 0.5}], 1.5)


def test_load_or_train_stores_then_reuses(tmp_path):
    calls = []

    def train(directory, checkpoint=None):
        calls.append(directory)
        return fake_result()

    parts = {"lr": 1e-4, "ids": "abc"}
    first, entry = stage1_cache.load_or_train(tmp_path, parts, train)
    second, entry2 = stage1_cache.load_or_train(tmp_path, dict(reversed(parts.items())), train)
    assert len(calls) == 1 and not entry["hit"] and entry2["hit"] and entry["key"] == entry2["key"]
    for ours, stored in zip(fake_result().embeddings, second.embeddings, strict=True):
        assert isinstance(stored, RowFile)  # read back by rows, not loaded whole
        np.testing.assert_array_equal(stored[:], ours)  # fp16 stored exactly
    np.testing.assert_array_equal(first.probs, second.probs)
    assert second.history == first.history and second.plm_seconds == 1.5
    _, entry3 = stage1_cache.load_or_train(tmp_path, {**parts, "lr": 2e-4}, train)
    assert not entry3["hit"] and len(calls) == 2
    stage1_cache.load_or_train(tmp_path, parts, train, reuse=False)
    assert len(calls) == 3


def test_entry_without_its_result_file_is_a_miss(tmp_path):
    """A run killed after writing the arrays but before result.json is trained again."""
    key = stage1_cache.cache_key({"a": 1})
    stage1_cache.save(tmp_path, key, fake_result(), {"a": 1})
    assert stage1_cache.load(tmp_path, key) is not None
    (tmp_path / key / "result.json").unlink()
    assert stage1_cache.load(tmp_path, key) is None
    (tmp_path / key / "result.json").write_text("{trunc")
    assert stage1_cache.load(tmp_path, key) is None


def test_array_digest_sees_row_bounds_and_values():
    assert stage1_cache.array_digest([[1, 2], [3]]) != stage1_cache.array_digest([[1], [2, 3]])
    assert stage1_cache.array_digest([[1, 2], [3]]) == stage1_cache.array_digest([[1, 2], [3]])
    assert stage1_cache.array_digest(np.array([0, 1])) != stage1_cache.array_digest(np.array([1, 0]))


def test_second_run_reuses_stage1_and_a_changed_setting_trains(tiny_bert, tmp_path, monkeypatch):
    args = ["--bert", tiny_bert, *FAST, "--cache_dir", str(tmp_path / "cache")]
    first = pipeline.run(parse_config(args))
    assert not first["stage1_cache"]["hit"]

    trained = []
    real_train = pipeline.train_stage1

    def counting_train(*a, **k):
        trained.append(k)
        return real_train(*a, **k)

    monkeypatch.setattr(pipeline, "train_stage1", counting_train)
    again = pipeline.run(parse_config(args))
    assert trained == [] and again["stage1_cache"]["hit"]
    assert again["stage1_cache"]["key"] == first["stage1_cache"]["key"]
    assert again["stage1"] == first["stage1"]
    assert again["accuracy_after"] == first["accuracy_after"]  # same inputs to stage 2
    assert again["timings_s"]["stage1"] < first["timings_s"]["stage1"]

    # a change that changes stage 1 trains it again
    changed = pipeline.run(parse_config([*args, "--lr", "1e-4"]))
    assert not changed["stage1_cache"]["hit"] and len(trained) == 1


def stage1_key(argv: list[str]) -> str:
    """The stage-1 cache key a run with `argv` would use, without training anything."""
    from src.data.cache import cached_encode
    from src.data.texts import encode
    from src.methods import plan
    from src.runtime import resolve_runtime
    from src.stage1.plm import load_tokenizer

    config = parse_config(argv)
    runtime, settings = resolve_runtime(config), plan(config)
    splits, max_length = pipeline.load_noisy_data(config, config.model_name())
    texts = cached_encode(encode, load_tokenizer(config.model_name()), splits, max_length,
                          cache_dir=config.cache_dir, reuse=False, noise_type=config.noise_type,
                          noise_ratio=config.noise_ratio, seed=config.seed)
    given = np.concatenate([splits.train.noisy, splits.validation.noisy])
    train_labels = pipeline.trusted_use(config, splits, given)[2]
    _, parts = pipeline.stage1_settings(config, runtime, settings, config.model_name(), texts, splits, train_labels)
    return stage1_cache.cache_key(parts)


def test_the_stage1_key_changes_with_what_changes_stage_1_only(tiny_bert, tmp_path):
    args = ["--bert", tiny_bert, *FAST, "--cache_dir", str(tmp_path / "cache")]
    base = stage1_key(args)
    assert stage1_key(args) == base
    # (a max length that truncates: the key is the token ids themselves)
    for change in (["--lr", "1e-4"], ["--seed", "1"], ["--noise_ratio", "0.3"], ["--max_length", "8"],
                   ["--method", "base"], ["--no_coreg"], ["--epochs", "3"], ["--train_batch_size", "8"],
                   ["--clip_gradient_norm", "2"], ["--alpha_t_hi", "1"], ["--lr_schedule", "restart"]):
        assert stage1_key([*args, *change]) != base, change
    # stage-2-only changes (and stage-2 variants) share stage 1
    for change in (["--vae_lr", "1e-3"], ["--uniform_prior"], ["--no_dynamics"], ["--method", "coreg"],
                   ["--total_iter", "3"], ["--dirichlet_sample", "normalised"], ["--prior_norm", "2"]):
        assert stage1_key([*args, *change]) == base, change
    assert stage1_key([*args, "--method", "npc"]) == stage1_key([*args, "--method", "base"])  # NPC cleans base
    # checked rows outside the calibration part train stage 1; all of them calibrating: as without them
    trusted = [*args, "--trusted", "validation"]
    assert stage1_key([*trusted, "--calibration_share", "1"]) == base
    assert len({base, stage1_key(trusted), stage1_key([*trusted, "--calibration_share", "0"])}) == 3


def test_no_reuse_trains_again(tiny_bert, tmp_path):
    args = ["--bert", tiny_bert, *FAST, "--epochs", "1", "--cache_dir", str(tmp_path / "cache")]
    assert not pipeline.run(parse_config(args))["stage1_cache"]["hit"]
    assert not pipeline.run(parse_config([*args, "--no-reuse_stage1"]))["stage1_cache"]["hit"]


@pytest.mark.parametrize("flag", ["--save_model"])
def test_save_model_always_trains(tiny_bert, tmp_path, flag):
    args = ["--bert", tiny_bert, *FAST, "--epochs", "1", "--cache_dir", str(tmp_path / "c"),
            "--model_dir", str(tmp_path / "m")]
    pipeline.run(parse_config(args))
    record = pipeline.run(parse_config([*args, flag]))
    assert not record["stage1_cache"]["hit"]
    assert any((tmp_path / "m").rglob("classifier_1/config.json"))


def test_trajectories_written_in_staging_become_the_entry(tmp_path):
    """Stage 1 writes its trajectory files into the staging directory it is given; they become
    the entry in a rename, and a failed stage 1 leaves neither an entry nor its staging files."""
    expected = fake_result()

    def train(directory, checkpoint=None):
        for m, trajectory in enumerate(expected.embeddings):
            RowFile.from_array(stage1_cache.trajectory_path(directory, m), trajectory)
        on_disk = [RowFile(stage1_cache.trajectory_path(directory, m)) for m in range(2)]
        return Stage1Result(on_disk, expected.probs, expected.history, expected.plm_seconds)

    result, entry = stage1_cache.load_or_train(tmp_path, {"a": 1}, train)
    assert sorted(p.name for p in tmp_path.iterdir()) == [entry["key"]]  # no staging left
    for ours, stored in zip(expected.embeddings, result.embeddings, strict=True):
        assert stored.path.parent == tmp_path / entry["key"]
        np.testing.assert_array_equal(stored[:], ours)

    def failing(directory, checkpoint=None):
        (directory / "trajectories_0.npy").write_bytes(b"half written")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stage1_cache.load_or_train(tmp_path, {"a": 2}, failing)
    assert sorted(p.name for p in tmp_path.iterdir()) == [entry["key"]]


def test_staging_of_a_dead_run_is_removed(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    key = stage1_cache.cache_key({"a": 1})
    (tmp_path / f"{key}.partial-{dead}").mkdir()
    (tmp_path / f"{key}.partial-{os.getppid()}").mkdir()  # a live process: left alone
    stage1_cache.load_or_train(tmp_path, {"a": 1}, lambda directory, checkpoint: fake_result())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([key, f"{key}.partial-{os.getppid()}"])


def test_code_identity_covers_every_file_that_shapes_stage_1(monkeypatch, tmp_path):
    import inspect
    import shutil

    from src import runtime
    from src.accel import STAGE1_MODULES, cuda_graphs, distributed, microbatches, models, stage1
    from src.data import batches, texts
    from src.stage1 import plm, stage1_step, train_stage1, trusted

    # the heads' seeding, the loop, the step, the batches, the model loading, the runtime helpers
    entry = [*stage1_cache.STAGE1_ENTRY, *STAGE1_MODULES]  # the method's and the speed layer's, as the pipeline
    sources = stage1_cache.stage1_sources(entry)
    for function in (train_stage1.new_classifiers, train_stage1.train_stage1, stage1_step.forward_backward,
                     cuda_graphs.GraphedStage1Steps, stage1.FastSteps, models.compile_model, texts.encode,
                     texts.TokenizedTexts, batches.shuffled_batches, runtime.to_device, trusted.stage1_labels,
                     microbatches.split_by_length, plm.load_classifier,
                     distributed.DistributedSteps):
        assert Path(inspect.getsourcefile(function)).resolve() in sources
    # what runs after stage 1 only is not in it (an edit there keeps the cache)
    assert not {Path(inspect.getsourcefile(m)).resolve() for m in (pipeline, stage1_cache)} & set(sources)
    # the pipeline seeds no heads itself (an edit there would not miss the cache)
    assert "manual_seed" not in Path(inspect.getsourcefile(pipeline)).read_text()
    # an edit to a file stage 1 imports changes the key; an edit elsewhere does not
    copy = tmp_path / "src"
    shutil.copytree(stage1_cache.SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(stage1_cache, "SRC", copy)
    before = stage1_cache.code_identity(entry)["source"]
    with open(copy / "outputs" / "report.py", "a") as f:
        f.write("\n# edited\n")
    assert stage1_cache.code_identity(entry)["source"] == before
    with open(copy / "runtime.py", "a") as f:  # left out of the hand-kept list this replaced
        f.write("\n# edited\n")
    assert stage1_cache.code_identity(entry)["source"] != before
    (copy / "stage1" / "late.py").write_text("X = 1\n")  # a new module on stage 1's path
    with open(copy / "runtime.py", "a") as f:
        f.write("from src.stage1.late import X  # noqa\n")
    edited = stage1_cache.code_identity(entry)["source"]
    (copy / "stage1" / "late.py").write_text("X = 2\n")
    assert stage1_cache.code_identity(entry)["source"] != edited


# ---- damaged entries, leftovers, two runs finishing one entry --------------------------------

def _store(tmp_path):
    calls = []

    def train(directory, checkpoint=None):
        calls.append(directory)
        return fake_result()

    _, entry = stage1_cache.load_or_train(tmp_path, {"a": 1}, train)
    return tmp_path / entry["key"], train, calls


def _damage_trajectories(entry: Path) -> None:
    """Overwrite bytes inside the data (same size, a valid .npy header)."""
    path = entry / "trajectories_0.npy"
    data = bytearray(path.read_bytes())
    data[-40:-20] = np.full(10, np.nan, np.float16).tobytes()
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["trajectory bytes", "result not an object", "nan probs"])
def test_damaged_entry_is_rebuilt_with_one_warning(tmp_path, capsys, damage):
    entry, train, calls = _store(tmp_path)
    capsys.readouterr()
    if damage == "trajectory bytes":
        _damage_trajectories(entry)
    elif damage == "result not an object":
        (entry / "result.json").write_text("[1, 2]")
    else:
        np.save(entry / "probs.npy", np.full((2, 10, 5), np.nan, np.float32))
    result, info = stage1_cache.load_or_train(tmp_path, {"a": 1}, train)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(calls) == 2 and not info["hit"], "a damaged entry was trusted"
    assert len(err) == 1 and err[0].startswith("warning: ") and "damaged stage-1 entry" in err[0], err
    for ours, stored in zip(fake_result().embeddings, result.embeddings, strict=True):
        np.testing.assert_array_equal(stored[:], ours)
    again, info = stage1_cache.load_or_train(tmp_path, {"a": 1}, train)  # rebuilt: trusted again
    assert info["hit"] and len(calls) == 2 and capsys.readouterr().err == ""


def test_dead_staging_of_any_key_is_removed_by_any_run(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    entry, train, calls = _store(tmp_path)
    other = tmp_path / f"{stage1_cache.cache_key({'b': 2})}.partial-{dead}"
    other.mkdir()
    stage1_cache.load_or_train(tmp_path, {"a": 1}, train)  # a hit, with another key
    assert len(calls) == 1 and not other.exists()


def test_second_run_finishing_the_same_entry_keeps_the_first(tmp_path, monkeypatch):
    """Two runs train the same key; the other one's entry appears just before ours is renamed
    into place (`Directory not empty`): ours is dropped and theirs is used."""
    theirs = fake_result(seed=1)
    key = stage1_cache.cache_key({"a": 1})
    real_rename = Path.rename
    raced = []

    def rename(self, target):
        if ".partial-" in self.name and not raced:
            raced.append(True)
            stage1_cache.save(tmp_path, key, theirs, {"a": 1}, tmp_path / f"{key}.partial-other")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    result, info = stage1_cache.load_or_train(tmp_path, {"a": 1}, lambda directory, checkpoint: fake_result())
    assert raced and not info["hit"]
    np.testing.assert_array_equal(result.probs, theirs.probs)
    assert sorted(p.name for p in tmp_path.iterdir()) == [key]  # no staging left
