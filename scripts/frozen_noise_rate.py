"""The `frozen_*` noise-rate estimates on the settings of docs/noise-rate.md, against the truth.

They need no fine-tuning (the pretrained model's embeddings and out-of-fold logistic
regressions), so this takes minutes where the fine-tuned estimators need a whole stage 1:

  python scripts/frozen_noise_rate.py --data_root ../shared/datasets [--bert minilm] [--seed 0]

Prints one markdown row per setting: the train+validation share of wrong labels, then
`frozen_lr` and `frozen_cj` (the same data, noise and seed as `main.py` with those flags).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# (data set, noise type or None for its real noise, noise ratio): docs/noise-rate.md's rows
SETTINGS = [("demo", "SN", 0.2), ("demo", "SN", 0.4), ("demo", "ASN", 0.4), ("semeval", "SN", 0.4),
            ("semeval", None, 0.2), ("trec", None, 0.2)]


def main(argv: list[str] | None = None) -> None:
    import torch

    from src.config import parse_config
    from src.data.texts import encode
    from src.noise_rate import frozen_noise_rates
    from src.pipeline import load_noisy_data
    from src.stage1.plm import load_tokenizer, pretrained_embeddings

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_root", default="datasets", help="folder holding semeval/ and trec/")
    parser.add_argument("--bert", default="minilm")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    print("| data | truly wrong (train+validation) | `frozen_lr` | `frozen_cj` |\n|---|---|---|---|")
    for dataset, noise_type, ratio in SETTINGS:
        flags = ["--dataset", dataset, "--noise_ratio", str(ratio), "--seed", str(args.seed), "--bert", args.bert]
        flags += ["--noise_type", noise_type] if noise_type else []
        flags += [] if dataset == "demo" else ["--path", str(Path(args.data_root) / dataset)]
        config = parse_config(flags)
        splits, max_length = load_noisy_data(config, args.bert)
        fit = [splits.train, splits.validation]
        texts = encode(load_tokenizer(args.bert), [t for s in fit for t in s.texts], max_length)
        noisy, gold = np.concatenate([s.noisy for s in fit]), np.concatenate([s.gold for s in fit])
        features = pretrained_embeddings(args.bert, texts, np.arange(len(noisy)), torch.device("cpu"), "fp32")
        rates = frozen_noise_rates(features, noisy, splits.num_classes, seed=args.seed)
        name = f"{dataset}, {f'{noise_type} {ratio:.0%}' if noise_type else 'real'}"
        print(f"| {name} | {(noisy != gold).mean():.3f} | {rates['frozen_lr']:.3f} | {rates['frozen_cj']:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
