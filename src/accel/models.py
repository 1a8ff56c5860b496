"""The language models made faster without changing their maths: torch.compile, an attention
mask handed over in the form SDPA takes, and no mask at all for batches without padding."""

from __future__ import annotations

import torch


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
    pass_no_mask_without_padding()
    return torch.compile(model, **compile_kwargs)


@torch.no_grad()
def accepts_prepared_mask(model: torch.nn.Module) -> bool:
    """Whether `model` gives the same outputs for a [B, 1, 1, L] boolean attention mask as for
    the usual [B, L] one (Hugging Face models with SDPA attention take a prepared mask as is;
    eager attention would add it as a number). Checked on a two-row padded input."""
    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        return False
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ids = torch.tensor([[1, 2, 3, 4, 5], [1, 2, 3, 0, 0]], device=device) % model.config.vocab_size
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], device=device)
    try:
        usual = model(input_ids=ids, attention_mask=mask).logits
        prepared = model(input_ids=ids, attention_mask=mask.bool()[:, None, None, :]).logits
        same = usual.shape == prepared.shape and torch.allclose(usual, prepared, atol=1e-5, rtol=1e-4)
    except Exception:  # noqa: BLE001 - any model that cannot take it keeps the usual mask
        same = False
    model.train(was_training)
    return bool(same)
