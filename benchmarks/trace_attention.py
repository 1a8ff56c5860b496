"""Which attention kernel SDPA takes in a stage-1 training step, eager and under torch.compile.

A diagnosis for the MFU work: the compiled bert-base step was measured running SDPA's math path
(batched products) where the eager step runs the flash kernel. The cause (H200, transformers
5.17): under torch.compile transformers built an all-ones mask for unpadded batches, which the
fused CUDA kernels refuse; the compiled models here go through `compile_model`, as runs do,
which passes no mask there. For each attention dropout given,
a small BERT (bert-base width, 2 layers, random initialisation) runs one training forward and
backward under bf16 autocast, as stage 1 does, on a batch without padding (no mask: what the MFU
bench and full batches pass) and, with --masked, also on a padded one (the prepared [B, 1, 1, L]
boolean mask that runs pass):
  eager       the attention operators that ran (torch.profiler), with their call counts;
  compiled    the attention operators of the traced forward and backward graphs (a recording
              backend: nothing is generated, so this takes seconds), with their input dtypes;
  restricted  the compiled step again with SDPA limited to the flash and memory-efficient
              kernels: where neither applies, torch's warnings say why.

python benchmarks/trace_attention.py --device cuda [--dropout 0.1 0] [--masked] [--batch 8] [--seq 150]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.accel.models import compile_model  # noqa: E402
from src.data.texts import TokenizedTexts  # noqa: E402
from src.runtime import autocast, configure_cuda, resolve_device  # noqa: E402

ATTENTION_WORDS = ("attention", "bmm", "baddbmm", "softmax")


def small_bert(dropout: float, device: torch.device) -> torch.nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(hidden_size=768, num_hidden_layers=2, num_attention_heads=12, intermediate_size=3072,
                        num_labels=20, attention_probs_dropout_prob=dropout, attn_implementation="sdpa")
    torch.manual_seed(0)
    return BertForSequenceClassification(config).to(device).train()


def training_step(model, device: torch.device, batch: int, seq: int, masked: bool) -> None:
    """One bf16 forward and backward; `masked`: every other text half as long, so the batch gets
    the prepared mask a run passes (`TokenizedTexts.batch`), else no mask at all."""
    lengths = [seq if i % 2 == 0 or not masked else seq // 2 for i in range(batch)]
    texts = TokenizedTexts(torch.randint(1000, 30000, (batch, seq)), torch.tensor(lengths).numpy())
    inputs = texts.batch(torch.arange(batch).numpy(), device, prepared_mask=True)
    with autocast(device, "bf16"):
        loss = model(**inputs, labels=torch.randint(0, 20, (batch,), device=device)).loss
    loss.backward()


def attention_nodes(graph: torch.fx.Graph) -> list[str]:
    """The attention-related calls of a traced graph, with the dtypes of their tensor inputs
    (positional, then keyword)."""
    found = []
    for node in graph.nodes:
        if node.op == "call_function" and any(word in str(node.target) for word in ATTENTION_WORDS):
            inputs = [*node.args, *node.kwargs.values()]  # a mask may be a keyword (CPU flash)
            dtypes = [str(arg.meta["val"].dtype).replace("torch.", "") for arg in inputs
                      if isinstance(arg, torch.fx.Node) and hasattr(arg.meta.get("val"), "dtype")]
            found.append(f"{node.target}({', '.join(dtypes)})")
    return found


def recording_backend(record: dict):
    from functorch.compile import make_boxed_func
    from torch._functorch.aot_autograd import aot_module_simplified

    def compiler(part: str):
        def compile_graph(graph_module, example_inputs):
            record.setdefault(part, []).extend(attention_nodes(graph_module.graph))
            return make_boxed_func(graph_module.forward)
        return compile_graph

    def backend(graph_module, example_inputs):
        return aot_module_simplified(graph_module, example_inputs, fw_compiler=compiler("forward"),
                                     bw_compiler=compiler("backward"))
    return backend


def summary(counts: dict[str, int]) -> str:
    return "; ".join(f"{call} x{n}" for call, n in counts.items()) or "none"


def trace(dropout: float, device: torch.device, batch: int, seq: int, masked: bool) -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.profiler import profile

    print(f"--- attention dropout {dropout}, batch {batch} x {seq} tokens{', padded (mask)' if masked else ''}, "
          f"bf16 autocast, {device}")
    model = small_bert(dropout, device)  # no optimiser step: every pass below sees the same weights
    training_step(model, device, batch, seq, masked)  # warm-up
    with profile() as prof:
        training_step(model, device, batch, seq, masked)
    print("eager ran:", summary({event.key: event.count for event in prof.key_averages()
                                 if event.key.startswith("aten::")
                                 and any(word in event.key for word in ATTENTION_WORDS)}))

    torch._dynamo.reset()
    record: dict[str, list[str]] = {}
    training_step(compile_model(model, backend=recording_backend(record)), device, batch, seq, masked)
    for part in ("forward", "backward"):
        print(f"compiled {part}:", summary(Counter(record.get(part, []))))

    torch._dynamo.reset()
    with warnings.catch_warnings(record=True) as caught, \
            sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
        warnings.simplefilter("always")
        try:
            training_step(compile_model(model, backend="aot_eager"), device, batch, seq, masked)
            outcome = "ran"
        except Exception as error:  # noqa: BLE001 - the reason is the finding
            outcome = f"failed: {str(error).splitlines()[0][:300]}"
    print("compiled, flash / memory-efficient only:", outcome)
    reasons = dict.fromkeys(str(warning.message).splitlines()[0][:300] for warning in caught)
    for reason in list(reasons)[:12]:  # torch gives one warning per failed check, after a heading
        print("  warning:", reason)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--dropout", type=float, nargs="+", default=[0.1, 0.0])
    parser.add_argument("--masked", action="store_true", help="also trace a padded batch (with a mask)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=150)
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    if device.type == "cuda":
        configure_cuda()  # as a run does
    print("torch", torch.__version__)
    for masked in (False, True) if args.masked else (False,):
        for dropout in args.dropout:
            trace(dropout, device, args.batch, args.seq, masked)


if __name__ == "__main__":
    main()
