"""Where a CUDA process's host memory goes: resident memory after the first use of each family
of kernels that stage 1 and stage 2 run (CUDA loads a library's kernels lazily, at first use,
and keeps host memory for each module it loads).

    python benchmarks/cuda_host_memory.py [model_dir]

Prints, after each step, the resident anonymous memory (the process's own data) and the
resident mapped files (the libraries), in MB, with the change from the step before. With a
model directory, last: two classifiers loaded, moved to the GPU, and one bf16 training pass.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.accel.host_memory import host_memory_mb, release_freed_host_memory  # noqa: E402


def resident_mb() -> tuple[int, int]:
    """(own data, mapped files) resident now, in MB."""
    now = host_memory_mb()
    return round(now["anon"]), round(now["file"])


def main() -> None:
    if not torch.cuda.is_available():
        print("cuda_host_memory.py: needs a CUDA device", file=sys.stderr)
        sys.exit(2)
    last = resident_mb()
    print(f"{'after':36s} {'anon MB':>14s} {'files MB':>14s}")

    def report(name: str) -> None:
        nonlocal last
        torch.cuda.synchronize()
        now = resident_mb()
        print(f"{name:36s} {now[0]:6d} ({now[0] - last[0]:+5d}) {now[1]:6d} ({now[1] - last[1]:+5d})", flush=True)
        last = now

    report("import torch (and the project's helpers)")
    x = torch.ones(4, device="cuda")
    report("CUDA context, first tensor")
    x = x + 1
    report("elementwise kernel")
    a = torch.randn(9600, 384, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    w = torch.randn(1536, 384, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    b = torch.randn(1536, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    report("random tensors")
    a @ w.t()
    report("bf16 matrix product (cuBLAS)")
    F.linear(a.float(), w.float(), b.float())
    report("fp32 linear layer")
    F.linear(a, w, b).sum().backward()
    report("bf16 linear layer, backward")
    with torch.autocast("cuda", torch.bfloat16):
        torch.nn.LayerNorm(384, device="cuda")(a).sum().backward()
    report("layer norm (autocast), backward")
    F.gelu(a).sum().backward()
    report("GELU, backward")
    F.dropout(a, 0.1).sum().backward()
    report("dropout, backward")
    q = torch.randn(64, 12, 150, 32, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    mask = torch.zeros(64, 1, 1, 150, device="cuda", dtype=torch.bfloat16)
    F.scaled_dot_product_attention(q, q, q, attn_mask=mask).sum().backward()
    report("attention with a mask, backward")
    F.scaled_dot_product_attention(q, q, q).sum().backward()
    report("attention without a mask, backward")
    logits = torch.randn(64, 20, device="cuda", requires_grad=True)
    F.cross_entropy(logits, torch.zeros(64, dtype=torch.long, device="cuda")).backward()
    report("cross entropy, backward")
    embedding = torch.nn.Embedding(30522, 384, device="cuda")
    embedding(torch.randint(0, 30000, (64, 150), device="cuda")).sum().backward()
    report("embedding, backward")
    params = [torch.nn.Parameter(torch.randn(1000, 384, device="cuda")) for _ in range(20)]
    for p in params:
        p.grad = torch.randn_like(p)
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    report("gradient clipping (foreach norm)")
    torch.optim.AdamW(params, lr=torch.tensor(1e-3, device="cuda"), fused=True, capturable=True).step()
    report("fused AdamW (capturable)")
    if len(sys.argv) > 1:
        from src.stage1.plm import load_classifier

        models = [load_classifier(sys.argv[1], 20) for _ in range(2)]
        report("2 classifiers loaded (transformers)")
        for model in models:
            model.cuda()
        release_freed_host_memory()
        report("moved to the GPU")
        ids = torch.randint(1000, 30000, (64, 150), device="cuda")
        with torch.autocast("cuda", torch.bfloat16):
            for model in models:
                model(input_ids=ids).logits.float().sum().backward()
        report("bf16 training pass of each")


if __name__ == "__main__":
    main()
