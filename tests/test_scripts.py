"""Small helper scripts: the WRENCH slice used by the padding benchmark."""

import json

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
