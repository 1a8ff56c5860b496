"""Prepare what `benchmarks/gpu_check.sh` needs on a lent GPU machine, which has no internet and no
copy of the data sets: the 20news archive and MiniLM with its weights in half precision (the
machine's copy of the working tree may carry 64 MiB; `load_classifier` widens the weights back
to float32 there).

    python benchmarks/device_assets.py [--out .device] [--data ../shared/datasets/20newsgroups/20news-bydate.tar.gz]

Writes <out>/20news-bydate.tar.gz and <out>/minilm/ (config, tokenizer, float16 weights), and adds
<out>/ to .git/info/exclude, so that git ignores it and the device tool carries it only when
asked (`carry: [".device"]`). Prints the folder's size.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.errors import UserError  # noqa: E402
from src.stage1.plm import load_tokenizer, resolve_model_path  # noqa: E402

CARRY_LIMIT_MB = 64


def ignore_in_git(folder: Path) -> None:
    """Add `folder` (inside the repository) to .git/info/exclude once."""
    exclude = ROOT / ".git" / "info" / "exclude"
    entry = f"/{folder.resolve().relative_to(ROOT)}/"
    lines = exclude.read_text().splitlines() if exclude.exists() else []
    if entry not in lines:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        exclude.write_text("\n".join([*lines, entry]) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / ".device")
    parser.add_argument("--data", type=Path,
                        default=ROOT.parent / "shared" / "datasets" / "20newsgroups" / "20news-bydate.tar.gz")
    parser.add_argument("--bert", default="minilm", help="the model to carry (an alias or a local directory)")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"error: {args.data}: no such file (pass --data)", file=sys.stderr)
        return 2
    import torch
    from transformers import AutoModel

    try:  # both read before anything is written
        tokenizer = load_tokenizer(args.bert)
        model = AutoModel.from_pretrained(resolve_model_path(args.bert), dtype=torch.float16, local_files_only=True)
    except UserError as exc:  # already names the flag
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"error: --bert {args.bert}: could not load the model ({exc})", file=sys.stderr)
        return 2
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if out.is_relative_to(ROOT):
        ignore_in_git(out)
    shutil.copyfile(args.data, out / args.data.name)
    model.save_pretrained(out / "minilm")
    tokenizer.save_pretrained(out / "minilm")
    size_mb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
    print(f"{out}: {size_mb:.1f} MB (the device tool carries at most {CARRY_LIMIT_MB} MiB)")
    if size_mb > CARRY_LIMIT_MB:
        print(f"error: {out} is larger than the {CARRY_LIMIT_MB} MiB the device tool carries", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
