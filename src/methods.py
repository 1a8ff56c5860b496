"""Baselines and ablations, each expressed as settings of the one DyGen pipeline.

No method has its own code path: `plan(config)` turns `--method` and the ablation flags into
the few knobs the stages already have (how many co-trained models, the co-regularisation
weights, which epochs form the trajectory z, how examples are marked, which examples and
which epoch the kNN prior is fitted on, the prior's weight, and whether stage 2 runs at all).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

METHODS = ("dygen", "base", "coreg", "npc")
ABLATIONS = ("no_dynamics", "no_coreg", "uniform_prior")
# Variants of DyGen that change a setting rather than remove a part: label suffix -> flags.
VARIANTS = {"normalised_sample": ["--dirichlet_sample", "normalised"], "balanced_prior": ["--prior_balance", "class"],
            "class_marking": ["--mark_share", "per_class"], "loss_marking": ["--mark_score", "loss"]}
# Variants also run together, as one setting (its label joins theirs in VARIANTS' order).
COMBINED_VARIANTS = (("balanced_prior", "class_marking"), ("class_marking", "loss_marking"),
                     ("balanced_prior", "class_marking", "loss_marking"))


@dataclass(frozen=True)
class Plan:
    n_model: int  # stage-1 classifiers (and stage-2 VAEs)
    alpha_t_hi: float  # stage-1 co-regularisation weight
    lambda_t: float  # stage-2 co-regularisation weight
    trajectory: str  # "all": z = every epoch's embedding; "last": the last epoch's only
    marking: str  # "dynamics": the top mark_ratio by dynamics score; "loss": by last-epoch loss
    mark_ratio: float  # share of train+validation marked noisy before the kNN prior (0: none)
    knn_fit: str  # "unmarked": the kNN is fitted on the unmarked rows; "npc": on NPC's anchors
    knn_epoch: str  # "first" or "last": the embeddings the kNN prior is fitted on
    prior_norm: float  # weight of the kNN prediction in the Dirichlet prior (0: uniform prior)
    stage2: bool  # False: report the stage-1 classifiers' averaged prediction
    label: str = "given"  # the label the prior votes with and stage 2 reconstructs: "given" (the
    # noisy label) or "prediction" (NPC's ŷ: the stage-1 classifier's argmax on each row)

    def to_dict(self) -> dict:
        return asdict(self)


def ablations_of(config) -> list[str]:
    return [name for name in ABLATIONS if getattr(config, name, False)]


def method_label(method: str, ablations: list[str]) -> str:
    """The name a run is reported under, e.g. `dygen`, `base`, `dygen-no_coreg`."""
    return "-".join([method, *ablations])


def run_label(config) -> str:
    """`config`'s method label, with a `-<variant>` suffix for each of VARIANTS' settings it has
    (e.g. `dygen-normalised_sample` when the Dirichlet sample is not the paper's)."""
    label = method_label(config.method, ablations_of(config))
    return label + "".join(f"-{name}" for name, (flag, value) in VARIANTS.items()
                           if str(getattr(config, flag.removeprefix("--"))) == value)


def variant_labels() -> list[str]:
    """The run labels of DyGen's variants, alone and combined (`COMBINED_VARIANTS`)."""
    return [f"dygen-{v}" for v in VARIANTS] + ["dygen-" + "-".join(c) for c in COMBINED_VARIANTS]


def all_labels() -> list[str]:
    """Every run label, in report order: DyGen, its variants and ablations, then the baselines
    (the most elaborate first)."""
    return ["dygen"] + variant_labels() + [f"dygen-{a}" for a in ABLATIONS] + ["coreg", "npc", "base"]


def flags_of(label: str) -> list[str]:
    """The main.py flags of a label from `all_labels()`, e.g. `dygen-no_coreg` -> [--no_coreg]."""
    method, _, change = label.partition("-")
    if method not in METHODS or (change and method != "dygen"):
        raise ValueError(f"unknown method label {label!r}")
    if not change:
        return [] if method == "dygen" else ["--method", method]
    if all(part in VARIANTS for part in change.split("-")):  # one variant, or several together
        return [flag for part in change.split("-") for flag in VARIANTS[part]]
    if change in ABLATIONS:
        return [f"--{change}"]
    raise ValueError(f"unknown method label {label!r}")


def plan(config) -> Plan:
    """The stage settings of `config.method` with its ablations applied (ablations: DyGen only)."""
    dygen = Plan(
        n_model=config.n_model, alpha_t_hi=config.alpha_t_hi, lambda_t=config.lambda_t,
        trajectory="all", marking=config.mark_score, mark_ratio=config.noise_ratio, knn_fit="unmarked",
        knn_epoch="first",
        prior_norm=config.prior_norm, stage2=True,
    )
    if config.method == "dygen":
        p = dygen.to_dict()
        if config.no_dynamics:  # no trajectory: z = the last epoch's embedding, and the same
            # share marked by a static signal (the last-epoch loss) instead of the dynamics score
            p.update(trajectory="last", marking="loss")
        if config.no_coreg:  # neither stage co-regularises; the M models stay independent
            p.update(alpha_t_hi=0.0, lambda_t=0.0)
        if config.uniform_prior:  # the Dirichlet prior is 1 + 1/C everywhere
            p.update(prior_norm=0.0)
        return Plan(**p)
    # Baselines: the flags above are DyGen's ablations; config.validate() rejects them here.
    single = {"n_model": 1, "alpha_t_hi": 0.0, "lambda_t": 0.0}
    if config.method == "base":  # one PLM, cross-entropy on the noisy labels
        return Plan(**{**dygen.to_dict(), **single, "stage2": False})
    if config.method == "coreg":  # the co-regularised ensemble alone
        return Plan(**{**dygen.to_dict(), "stage2": False})
    if config.method == "npc":  # NPC: one base model's predictions ŷ, calibrated with its final
        # embedding and NPC's own kNN prior
        return Plan(**{**dygen.to_dict(), **single, "trajectory": "last", "mark_ratio": 0.0,
                       "knn_fit": "npc", "knn_epoch": "last", "label": "prediction"})
    raise ValueError(f"unknown method {config.method!r}")
