"""run(config): data -> stage 1 -> dynamics -> prior -> stage 2 -> inference -> results files.

Each step is one function call on what the steps before it returned (typed results: `Setup`,
`Data`, `Stage1Run`, `Dynamics`, `Stage2Run`, `Inference`, `Diagnostics`, from which the run
record is built); no step reaches back. The maths lives in pure functions in the stage modules,
the files in src/outputs/record.py, and the comparisons with gold labels in
src/diagnostics/quality.py (whose results the method never reads).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from src.accel import ALONE, STAGE1_MODULES, SpeedLayer, World, broadcast, build, checked_on_rank0
from src.config import Config
from src.data import MAX_LENGTH, apply_noise, apply_trusted, check_knn_size, load_dataset, noise_rate
from src.data.base import Splits
from src.data.batches import shuffled_batches
from src.data.cache import cached_encode
from src.data.texts import TokenizedTexts, encode
from src.diagnostics.quality import (
    abstained_quality,
    cleaning_quality,
    marking_quality,
    noise_detection,
    suggestion_quality,
    trusted_quality,
)
from src.dynamics.euclidean_dist import distance_trajectories, dynamics_score
from src.dynamics.marking import cross_entropy_scores, mark_noisy, mark_noisy_per_class
from src.errors import UserError
from src.inference.evaluate import accuracy, check_class_memory, denoise, posterior_given_label
from src.inference.suggest import (
    NEVER,
    change_quality,
    changes_help,
    choose_margin,
    counted_share,
    crossfit_folds,
    label_prob,
    suggest_labels,
)
from src.methods import Plan, plan, run_label
from src.noise_rate import (
    AUTO_ESTIMATOR,
    confident_class_shares,
    estimate_noise_rates,
    frozen_noise_rates,
    trusted_class_shares,
)
from src.outputs.record import (
    check_output_dirs,
    fmt,
    log,
    log_summary,
    run_record,
    suggestion_record,
    write_cleaning_figure,
    write_labels,
    write_outputs,
)
from src.prior.generate_prior import (
    K_NEIGHBOURS,
    dirichlet_prior,
    knn_predict_proba,
    npc_anchors,
)
from src.runtime import Runtime, configure_cuda, resolve_runtime, seed_everything
from src.stage1.plm import load_tokenizer, max_positions, pretrained_embeddings, resolve_model_path
from src.stage1.train_stage1 import (
    Stage1Result,
    Stage1Settings,
    new_classifiers,
    out_of_memory_as_error,
    train_stage1,
)
from src.stage1.trusted import calibration_rows, stage1_labels
from src.stage2.train_stage2 import Stage2Settings, Trajectories, train_stage2
from src.stats import trusted_noise_rate
from src.storage import stage1_cache
from src.storage.files import staged_files
from src.storage.rows import column

CROSSFIT_FOLDS = 5  # folds of the trusted rows for the suggestion margin and its estimate
# Without trusted rows no change is suggested: chosen on validation gold (scripts/choose_margin.py
# over DyGen's runs on the demo, SemEval and TREC; docs/results.md), where on TREC's real noise every
# margin that changes labels made them worse than the given ones.
DEFAULT_MARGIN = NEVER


@dataclass(frozen=True)
class Rows:
    """Where each split lies in stage 1's outputs: train | validation | test | abstained (the
    rows of train, then of validation, that have no label)."""

    n_train: int
    n_val: int
    n_test: int
    n_abstained: int = 0

    @property
    def fit(self) -> np.ndarray:  # train + validation: what the method marks and fits on
        return np.arange(self.n_train + self.n_val)

    @property
    def test(self) -> np.ndarray:
        return np.arange(self.n_train + self.n_val, self.n_train + self.n_val + self.n_test)

    @property
    def abstained(self) -> np.ndarray:
        start = self.n_train + self.n_val + self.n_test
        return np.arange(start, start + self.n_abstained)


@dataclass(frozen=True)
class Setup:
    """What a run settles before it reads data: the device and precision, the method's stage
    settings (src/methods.py), the model, and this process's place under torchrun."""

    runtime: Runtime
    settings: Plan
    model_name: str
    world: World = ALONE


@dataclass(frozen=True)
class Data:
    """The data as the method uses it. The label arrays are over the train + validation rows."""

    splits: Splits
    max_length: int
    tokenizer: object
    texts: TokenizedTexts  # train | validation | test | abstained rows
    rows: Rows
    given: np.ndarray  # the noisy labels
    trusted: np.ndarray  # verified labels, -1 where nobody checked
    calibration: np.ndarray  # bool: checked rows kept out of stage 1 to calibrate the suggestion
    stage1_labels: np.ndarray  # the label each row trains stage 1 with (src/stage1/trusted.py)
    # the trusted sample: its share of wrong labels (src/stats.py), how many of its rows train stage 1
    # and how many calibrate; None without one
    trusted_rate: dict | None
    gold: np.ndarray | None  # gold labels, where the data set has them (diagnostics only)


@dataclass(frozen=True)
class Stage1Run:
    """Stage 1's result (None on the ranks of torchrun other than 0), the cache entry's
    description, and the classifiers (empty when the result was reused)."""

    result: Stage1Result | None
    entry: dict | None
    models: list


@dataclass(frozen=True)
class Dynamics:
    """What the dynamics give the marking, over the train + validation rows."""

    scores: np.ndarray  # [M, N] the dynamics score
    distances: np.ndarray  # [M, E, N] each epoch's distance to the noisy label's centroid
    marking_scores: np.ndarray  # [M, N] the score that marks (dynamics, or the last-epoch loss: --mark_score loss,
    # --no_dynamics)
    estimates: dict  # every noise-rate estimate (--noise_ratio auto)
    ratio: float  # the share of the untrusted rows to mark
    ratio_source: str


@dataclass(frozen=True)
class Stage2Run:
    vaes: list
    history: list[dict]  # per epoch: loss, test accuracy


@dataclass(frozen=True)
class Inference:
    """The method's predictions and its test accuracies."""

    denoised: np.ndarray | None  # [N_test, C] P(y | x)
    abstained: np.ndarray | None  # [N_abstained, C] P(y | x) of the rows without a label
    cleaned: np.ndarray  # [N_train + N_val, C] the cleaned-label distribution
    accuracy_before: float | None  # the stage-1 classifiers' averaged prediction
    accuracy_after: float | None  # after stage 2 (None for the methods without it)


@dataclass(frozen=True)
class Diagnostics:
    """Against gold labels and the trusted rows; the method never reads them."""

    marking: list  # per model: precision and recall of its marks
    detection: dict | None  # the three detectors
    detection_arrays: dict  # their per-row scores and flags
    trusted: dict | None  # the trusted sample's rate, and how the cleaning did on it
    cleaning: dict
    abstained: dict
    suggestion: dict | None


def run(config: Config, world: World = ALONE) -> dict | None:
    """Run the whole method once; returns the run record also written to cache/runs/. Under
    torchrun (`world`, src/accel/distributed.py) every rank trains stage 1 and rank 0 alone does
    the rest; the other ranks return None after stage 1."""
    started, speed = time.perf_counter(), build(config, world)  # the speed layer: what plugs into the stages
    timer = speed.timer  # seconds and memory per stage
    checked_on_rank0(partial(check_output_dirs, config), world)  # rank 0 writes; under torchrun all fail alike
    with timer("setup"):  # on CUDA this starts the device context
        setup = set_up(config, world)
    with timer("data"):
        splits, max_length = load_noisy_data(config, setup.model_name)
    with timer("tokenize"):
        data = prepare_data(config, setup, splits, max_length, speed)
    log_data(config, setup, data)
    with timer("stage1"), out_of_memory_as_error(config):  # co-regularised fine-tuning, embeddings each epoch
        stage1 = fine_tune(config, setup, data, speed)
    if not world.main:  # torchrun: the rest is rank 0's
        return None
    with timer("dynamics"):  # distance to the noisy label's centroid, score, marking
        dynamics = measure_dynamics(config, setup, data, stage1.result)
    with timer("prior"):  # kNN on the first-epoch embeddings of the unmarked examples (or NPC's)
        evidence = gather_evidence(config, setup, speed, data, stage1.result, dynamics)
        marks, priors = mark_and_prior(config, setup.settings, speed, evidence, data.trusted)
    stage2 = Stage2Run([], [])
    if setup.settings.stage2:
        with timer("stage2"):  # co-regularised Dirichlet VAEs, test accuracy logged each epoch
            stage2 = train_vaes(config, setup, speed, evidence, priors, splits.test.gold)
    with timer("inference"):  # P(y|x) = sum over noisy labels, with the last-epoch models
        inference = infer(setup.settings, evidence, stage2.vaes, splits.test.gold)
    with timer("suggest"):  # the labels to apply: the margin set on the trusted rows, cross-fitted
        suggestion = suggest(config, setup.settings, setup.runtime, speed, evidence, data.trusted, data.calibration,
                             inference.cleaned)

    # ---- diagnostics against gold labels (never read by the method), the record, the files ----
    diagnostics = diagnose(config, data, stage1.result, dynamics, marks, inference, suggestion)
    timer.seconds["total"] = time.perf_counter() - started
    record = run_record(config, setup, data, stage1, dynamics, stage2, inference, diagnostics, timer)
    record["suggestion"] = suggestion_record(suggestion, diagnostics.suggestion)
    with staged_files() as files:  # the run's files are put in place together, or (on a failure) none
        labels_file = write_labels(files, config, record["run_id"], splits, inference.cleaned,
                                   dynamics.scores.mean(0), np.any(marks, axis=0), inference.denoised,
                                   inference.abstained, suggested=suggestion["labels"])
        record["figure"] = str(write_cleaning_figure(files, config, record["run_id"], setup, data,
                                                     dynamics.marking_scores, marks, suggestion["labels"]))
        write_outputs(files, config, record, stage1.models, data.tokenizer, stage2.vaes, diagnostics.detection_arrays)
    log_summary(record, labels_file)
    return record


def set_up(config: Config, world: World) -> Setup:
    """The runtime, the plan and the model; the seeds; on CUDA its settings and memory counters."""
    setup = Setup(resolve_runtime(config), plan(config), config.model_name(), world)
    seed_everything(config.seed)
    if setup.runtime.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        configure_cuda()
    return setup


def prepare_data(config: Config, setup: Setup, splits: Splits, max_length: int, speed: SpeedLayer) -> Data:
    """The token ids of every row (rank 0 through the preprocessing cache) and the labels of the
    train + validation rows: given, verified, calibration, stage 1's."""
    tokenizer = load_tokenizer(setup.model_name)
    if setup.world.main:
        texts = cached_encode(encode, tokenizer, splits, max_length, cache_dir=config.cache_dir,
                              reuse=config.saved_dataset == "y", noise_type=config.noise_type,
                              noise_ratio=config.noise_ratio, seed=config.seed)
    else:  # the same ids; rank 0 writes the preprocessing cache
        texts = encode(tokenizer, splits.all_texts(), max_length)
    speed.release_host_memory()  # the tokenizer's per-text objects
    train, val = splits.train, splits.validation
    rows = Rows(len(train), len(val), len(splits.test), sum(len(s) for _, s in splits.abstained_items()))
    given = np.concatenate([train.noisy, val.noisy])  # noisy labels only
    trusted, calibration, stage1_labels = trusted_use(config, splits, given)
    checked = trusted >= 0
    rate = None
    if checked.any():  # the sample's share of wrong labels, and how many rows train stage 1 or calibrate
        rate = trusted_noise_rate(given[checked], trusted[checked]) | {
            "stage1_rows": int((checked & ~calibration).sum()), "calibration_rows": int(calibration.sum())}
    gold = None if train.gold is None or val.gold is None else np.concatenate([train.gold, val.gold])
    return Data(splits, max_length, tokenizer, texts, rows, given, trusted, calibration, stage1_labels, rate, gold)


def log_data(config: Config, setup: Setup, data: Data) -> None:
    splits, rows, trusted = data.splits, data.rows, data.trusted_rate
    log(f"{splits.name}: {rows.n_train} train / {rows.n_val} validation / {rows.n_test} test, {splits.num_classes} "
        f"classes, train noise rate {fmt(noise_rate(splits.train))}; model {setup.model_name} on "
        f"{setup.runtime.device} ({setup.runtime.precision}); method {run_label(config)}")
    if trusted is not None:
        log(f"{trusted['rows']} trusted rows: {trusted['stage1_rows']} train stage 1 with their verified label, "
            f"{trusted['calibration_rows']} calibrate the suggestion "
            f"(--calibration_share {config.calibration_share:g})")


def measure_dynamics(config: Config, setup: Setup, data: Data, stage1: Stage1Result) -> Dynamics:
    """Per model and epoch each row's distance to its noisy label's centroid, the dynamics score,
    the share to mark and the score that marks."""
    labels, num_classes = torch.as_tensor(data.given), data.splits.num_classes
    per_model = [distance_trajectories(e, labels, num_classes) for e in stage1.embeddings]  # M x [E, N]
    scores = np.stack([dynamics_score(d).numpy() for d in per_model])  # [M, N_train + N_val]
    estimates = {}
    if config.noise_ratio == "auto":  # every candidate, recorded even where a trusted sample decides
        estimates = noise_estimates(config, setup.runtime, setup.model_name, data.texts, stage1, scores, data.given,
                                    num_classes)
    ratio, ratio_source = marking_ratio(config, setup.settings, estimates, data.trusted_rate, data.splits)
    marking_scores = scores
    if setup.settings.marking == "loss":  # --mark_score loss, --no_dynamics: the same share, by each model's loss
        marking_scores = np.stack([cross_entropy_scores(p[data.rows.fit], data.given) for p in stage1.probs])
    return Dynamics(scores, np.stack([d.numpy() for d in per_model]), marking_scores, estimates, ratio, ratio_source)


def gather_evidence(config: Config, setup: Setup, speed: SpeedLayer, data: Data, stage1: Stage1Result,
                    dynamics: Dynamics) -> Evidence:
    """What marking, the prior and stage 2 are built from (`Evidence`)."""
    settings, rows = setup.settings, data.rows
    # [N_train + N_val] the label the prior votes with and stage 2 reconstructs: the given one,
    # or NPC's ŷ, the stage-1 classifier's prediction (NPC's `save_data`)
    method_labels = data.given if settings.label == "given" else stage1.probs[:, rows.fit].mean(0).argmax(-1)
    epochs = slice(None) if settings.trajectory == "all" else slice(-1, None)
    trajectories = Trajectories(stage1.embeddings, setup.runtime.device, epochs,  # z: every epoch, or the last
                                dtype=speed.z_dtype(setup.runtime))
    evidence = Evidence(stage1, trajectories, dynamics.marking_scores, dynamics.ratio, data.given, method_labels, rows,
                        data.splits.num_classes,
                        per_class_marking=config.mark_share == "per_class" and settings.mark_ratio != 0)
    if evidence.per_class_marking:
        log(f"marked share per noisy label ({'trusted rows' if (data.trusted >= 0).any() else 'confident joint'}): "
            + ", ".join(f"{name} {share:.3f}" for name, share in
                        zip(data.splits.class_names, marking_shares(evidence, data.trusted), strict=True)))
    return evidence


def epoch_test_accuracy(evidence: Evidence, gold: np.ndarray | None, epoch: int, vaes: list) -> dict:
    """Stage 2's report after each epoch: the test accuracy of P(y | x), where the test split has labels."""
    rows = evidence.rows
    if rows.n_test == 0 or gold is None:  # no labelled test split: nothing to report
        return {"test_accuracy": None}
    return {"test_accuracy": accuracy(denoise(vaes, evidence.trajectories, rows.test,
                                              evidence.stage1.probs[:, rows.test]), gold)}


def train_vaes(config: Config, setup: Setup, speed: SpeedLayer, evidence: Evidence, priors: list,
               test_gold: np.ndarray | None) -> Stage2Run:
    """Stage 2, its test accuracy logged after each epoch."""
    vaes, history = fit_stage2(config, setup.settings, setup.runtime, speed, evidence, priors,
                               partial(epoch_test_accuracy, evidence, test_gold), show_progress=config.progress)
    for record in history:
        log(f"stage 2 epoch {record['epoch']}/{config.total_iter}: loss {record['loss']:.4f}  "
            f"test acc {fmt(record['test_accuracy'])}")
    return Stage2Run(vaes, history)


def infer(settings: Plan, evidence: Evidence, vaes: list, test_gold: np.ndarray | None) -> Inference:
    """P(y | x) of the test rows and of the rows without a label, the cleaned-label distribution
    of the train + validation rows, and the test accuracies before and after stage 2."""
    rows, probs = evidence.rows, evidence.stage1.probs
    denoised, abstained = (predict(settings, evidence, vaes, index) if len(index) else None
                           for index in (rows.test, rows.abstained))
    cleaned = cleaned_posterior(settings, evidence, vaes, rows.fit)
    return Inference(denoised, abstained, cleaned, accuracy(probs[:, rows.test].mean(0), test_gold),
                     accuracy(denoised, test_gold) if settings.stage2 else None)


def diagnose(config: Config, data: Data, stage1: Stage1Result, dynamics: Dynamics, marks: list, inference: Inference,
             suggestion: dict) -> Diagnostics:
    """The run against gold labels, where the data set has them, and against the trusted rows."""
    given, gold, cleaned = data.given, data.gold, inference.cleaned.argmax(1)
    detection, arrays = noise_detection(dynamics.scores, stage1.probs[:, data.rows.fit].mean(0), dynamics.distances,
                                        given, gold, data.splits.num_classes, dynamics.ratio)
    trusted = data.trusted_rate
    if trusted is not None:  # how the cleaning did on the trusted rows
        trusted = trusted | {"source": trusted_source(config), **trusted_quality(given, cleaned, data.trusted)}
    given_label_prob = label_prob(inference.cleaned, given)  # [N_train + N_val] low: likely wrong
    return Diagnostics(
        [marking_quality(mark, given, gold) for mark in marks], detection, arrays, trusted,
        cleaning_quality(given, cleaned, gold), abstained_quality(data.splits, inference.abstained),
        suggestion_quality(given, suggestion["labels"], cleaned, given_label_prob, dynamics.scores.mean(0), gold,
                           unchecked=data.trusted < 0))


def trusted_use(config: Config, splits, given: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[N_train + N_val] each: the verified labels (-1 on the rows nobody checked), the checked
    rows kept out of stage 1 to calibrate the suggestion, and the label each row trains stage 1
    with (src/stage1/trusted.py: the other checked rows their verified one). given [N_train + N_val]:
    the noisy labels."""
    train, val = splits.train, splits.validation
    trusted = np.concatenate([s.trusted if s.trusted is not None else np.full(len(s), -1) for s in (train, val)])
    calibration = calibration_rows(trusted, config.calibration_share, config.seed)
    return trusted, calibration, stage1_labels(given, trusted, calibration, len(train))


def load_noisy_data(config: Config, model_name: str, local_only: bool = False):
    """The splits with their noise applied, and the maximum length; what can be refused is refused
    here, before anything is written (for a run and for --describe alike). `local_only`
    (--describe): the position limit only of a model on this machine (nothing is downloaded)."""
    splits = apply_noise(load_dataset(config.dataset, config.path, config.seed, config.columns()),
                         config.noise_type, config.noise_ratio, config.seed)
    splits = apply_trusted(splits, config.trusted)
    check_knn_size(splits, config.noise_ratio, k=K_NEIGHBOURS)
    check_class_memory(splits.num_classes, config.n_model, splits.name)
    max_length = config.max_length or MAX_LENGTH.get(config.dataset, 128)
    limit = max_positions(model_name, local_only)
    if limit is not None and max_length > limit:
        raise UserError(f"--max_length {max_length}: beyond the model's position limit {limit}")
    return splits, max_length


def stage1_settings(config: Config, runtime, settings, model_name: str, texts, splits, train_labels: np.ndarray,
                    world: World = ALONE) -> tuple[Stage1Settings, dict]:
    """train_stage1's settings, and the stage-1 cache key's parts: everything that changes stage 1's
    result (token ids, the labels it trains with, model, settings, device type, code).
    train_labels [N_train + N_val]: as train_stage1's."""
    train, val = splits.train, splits.validation
    options = Stage1Settings(
        epochs=config.epochs, batch_size=config.train_batch_size, eval_batch_size=runtime.eval_batch_size,
        lr=config.lr, weight_decay=config.weight_decay, alpha_t_hi=settings.alpha_t_hi,
        clip_gradient_norm=config.clip_gradient_norm, lr_schedule=config.lr_schedule, precision=runtime.precision,
        seed=config.seed)
    key_parts = {
        "ids": stage1_cache.array_digest(texts.input_ids.numpy()), "n_train": len(train), "n_val": len(val),
        # the labels stage 1 trains with (checked rows outside the calibration part: verified ones)
        "train_labels": stage1_cache.array_digest(train_labels),
        "val_labels": stage1_cache.array_digest(val.noisy), "num_classes": splits.num_classes,
        "model": stage1_cache.model_identity(model_name, resolve_model_path(model_name)),
        "n_model": settings.n_model, "device": runtime.device.type, "options": asdict(options),
        "speedups": {"split_batches": runtime.split_batches, "cuda_graphs": runtime.cuda_graphs},
        "code": stage1_cache.code_identity([*stage1_cache.STAGE1_ENTRY, *STAGE1_MODULES]),  # method's + speed layer's
    }
    if world.distributed:  # the same maths, but each rank's dropout masks fall on other rows
        key_parts["world_size"] = world.size
    return options, key_parts


def fine_tune(config: Config, setup: Setup, data: Data, speed: SpeedLayer) -> Stage1Run:
    """Stage 1, or its cached result when a run with the same settings finished before.

    The classifiers are empty when the result is reused (--save_model needs them, so it always
    trains). Under torchrun every rank trains, and only rank 0 reads or writes the cache (the
    others return no result)."""
    world, runtime, splits = setup.world, setup.runtime, data.splits
    options, key_parts = stage1_settings(config, runtime, setup.settings, setup.model_name, data.texts, splits,
                                         data.stage1_labels, world)
    models = []
    # Not with CUDA graphs (a graph holds the optimizer's tensors) nor under torchrun (rank 0 alone would go on).
    why_not = "CUDA graphs (add --no-cuda_graphs)" if runtime.cuda_graphs else "torchrun" if world.distributed else None
    checkpoints = config.stage1_checkpoints and why_not is None
    if config.stage1_checkpoints and why_not and world.main:
        log(f"stage 1: --stage1_checkpoints is off with {why_not}")

    def train_models(trajectory_dir, checkpoint=None):
        models.extend(new_classifiers(setup.model_name, splits.num_classes, setup.settings.n_model, config.seed))
        return train_stage1(models, data.texts, data.stage1_labels, splits.validation.noisy, options,
                            device=runtime.device, show_progress=config.progress, speedups=speed.stage1_steps(runtime),
                            new_trajectory=speed.trajectory_store(  # on disk, read by rows later
                                lambda m: stage1_cache.trajectory_path(trajectory_dir, m)), checkpoint=checkpoint)

    root = Path(config.cache_dir) / "stage1"
    reuse = config.reuse_stage1 and not config.save_model
    if world.distributed:  # every rank trains, unless rank 0 finds the result in the cache
        cached = world.main and reuse and stage1_cache.load(root, stage1_cache.cache_key(key_parts)) is not None
        if not broadcast(cached, world) and not world.main:
            train_models(None)
        if not world.main:
            return Stage1Run(None, None, models)
    stage1, entry = stage1_cache.load_or_train(root, key_parts, train_models, reuse=reuse, checkpoints=checkpoints)
    if entry["hit"]:
        log(f"stage 1: reused {root / entry['key']}")
    return Stage1Run(stage1, entry, models)


def noise_estimates(config: Config, runtime, model_name: str, texts, stage1, scores: np.ndarray,
                    fit_labels: np.ndarray, num_classes: int) -> dict[str, float]:
    """Every candidate estimate of the noise rate (noise_rate.py): from stage 1's outputs, and
    from the pretrained model's embeddings of the train + validation rows. Run only for
    `--noise_ratio auto`: their leave-one-out kNN searches cost more than the rest of the
    dynamics at WOS size."""
    estimates = estimate_noise_rates(stage1.embeddings, stage1.probs[:, : len(fit_labels)], scores,
                                     fit_labels, num_classes, seed=config.seed)
    features = pretrained_embeddings(model_name, texts, np.arange(len(fit_labels)), runtime.device,
                                     runtime.precision, runtime.eval_batch_size)  # [N_train + N_val, D]
    return estimates | frozen_noise_rates(features, fit_labels, num_classes, seed=config.seed)


def marking_ratio(config: Config, settings, estimates: dict, trusted: dict | None, splits) -> tuple[float, str]:
    """The share of the untrusted rows to mark, and where it came from: the plan's (--noise_ratio;
    0 for methods without marking), or with `auto` the trusted sample's share of wrong labels,
    or without one the `AUTO_ESTIMATOR` candidate."""
    source, estimate = "--noise_ratio", None
    if config.noise_ratio == "auto":
        if trusted is not None:
            source, estimate = "trusted", trusted["rate"]
            low, high = trusted["interval"]
            log(f"noise rate estimate {estimate:.4f} from {trusted['rows']} trusted rows "
                f"(95% interval {low:.4f}-{high:.4f})")
        else:
            source, estimate = AUTO_ESTIMATOR, estimates[AUTO_ESTIMATOR]
            log(f"noise rate estimate {estimate:.4f} ({AUTO_ESTIMATOR})")
    ratio = estimate if settings.mark_ratio == "auto" else settings.mark_ratio
    if settings.mark_ratio == "auto" and settings.knn_fit == "unmarked":  # the estimate may leave < k
        check_knn_size(splits, "auto", k=K_NEIGHBOURS, estimate=ratio)
    log(f"marking {ratio:.4f} of the {'untrusted ' if trusted else ''}train+validation rows"
        + ("" if config.noise_ratio == "auto" else " (--noise_ratio)"))
    return ratio, source


def trusted_source(config: Config) -> str:
    """Where the trusted sample came from, for the record."""
    return " and ".join(([f"column {config.trusted_column}"] if config.trusted_column else [])
                        + ([config.trusted] if config.trusted else []))


@dataclass(frozen=True)
class Evidence:
    """What marking, the prior and stage 2 are built from, once stage 1 and the dynamics ran."""

    stage1: object  # Stage1Result
    trajectories: Trajectories  # z per model, for stage 2
    marking_scores: np.ndarray  # [M, N_train + N_val] the score that marks (dynamics, or loss)
    ratio: float  # the share of the untrusted rows to mark
    given_labels: np.ndarray  # [N_train + N_val] the given (noisy) labels
    method_labels: np.ndarray  # [N_train + N_val] the label the method calibrates (`Plan.label`)
    rows: Rows
    num_classes: int
    per_class_marking: bool = False  # --mark_share per_class, for a method that marks


def marking_shares(evidence: Evidence, trusted_labels: np.ndarray) -> np.ndarray | None:
    """[C] with `--mark_share per_class` the share of each noisy label's rows to mark: from the
    trusted rows given (so that a cross-fitted fold's own rows do not inform it), else where
    stage 1's confident joint puts the wrong labels; None: one share of all rows, as the paper."""
    if not evidence.per_class_marking:
        return None
    given, checked = evidence.given_labels, trusted_labels >= 0
    if checked.any():
        return trusted_class_shares(given[checked], trusted_labels[checked], evidence.num_classes, evidence.ratio)
    probs = evidence.stage1.probs[:, evidence.rows.fit].mean(0)  # [N_train + N_val, C]
    return confident_class_shares(probs, given, evidence.num_classes, evidence.ratio)


def mark_and_prior(config: Config, settings, speed: SpeedLayer, evidence: Evidence, trusted_labels: np.ndarray):
    """Each model's marks [N_train + N_val] (trusted rows never) and Dirichlet prior [N_train, C].
    trusted_labels [N_train + N_val]: verified labels, -1 where nobody checked."""
    unchecked, shares = trusted_labels < 0, marking_shares(evidence, trusted_labels)
    if shares is None:
        marks = [mark_noisy(score, evidence.ratio, eligible=unchecked) for score in evidence.marking_scores]
    else:
        marks = [mark_noisy_per_class(score, evidence.given_labels, shares, eligible=unchecked)
                 for score in evidence.marking_scores]
    prior_labels = np.where(unchecked, evidence.method_labels, trusted_labels)  # trusted: verified
    priors = [prior_of_model(config, settings, evidence.stage1, m, marks[m], prior_labels, evidence.rows,
                             evidence.method_labels[: evidence.rows.n_train], speed.knn_screen_dtype())
              for m in range(settings.n_model)]
    return marks, priors


def fit_stage2(config: Config, settings, runtime, speed: SpeedLayer, evidence: Evidence, priors: list,
               on_epoch_end=None, show_progress: bool = False):
    """Stage 2 on the train rows: the VAEs and their per-epoch history."""
    n_train = evidence.rows.n_train
    stage2 = Stage2Settings(
        total_iter=config.total_iter, batch_size=config.vae_batch_size, lr=config.vae_lr, beta=config.beta,
        lambda_t=settings.lambda_t, warmup_epochs=config.warmup_epochs, softplus_beta=config.softplus_beta,
        normalise_sample=config.dirichlet_sample == "normalised", seed=config.seed)
    return train_stage2(evidence.trajectories, np.arange(n_train), evidence.method_labels[:n_train], priors,
                        evidence.num_classes, stage2, on_epoch_end=on_epoch_end, show_progress=show_progress,
                        speedups=speed.stage2_steps(runtime))


def predict(settings, evidence: Evidence, vaes: list, index: np.ndarray) -> np.ndarray:
    """P(y | x) [len(index), C]: stage 2's sum over noisy labels, or for base and coreg the
    stage-1 prediction itself."""
    probs = evidence.stage1.probs[:, index]  # [M, len(index), C]
    return denoise(vaes, evidence.trajectories, index, probs) if settings.stage2 else probs.mean(0)


def cleaned_posterior(settings, evidence: Evidence, vaes: list, index: np.ndarray) -> np.ndarray:
    """[len(index), C] the cleaned-label distribution of train/validation rows: DyGen's
    P(y | x, given label); NPC's, base's and coreg's P(y | x) (`predict`: NPC calibrates ŷ,
    never the given label)."""
    if settings.stage2 and settings.label == "given":
        return posterior_given_label(vaes, evidence.trajectories, index, evidence.given_labels[index])
    return predict(settings, evidence, vaes, index)


def crossfit_posterior(config: Config, settings, runtime, speed: SpeedLayer, evidence: Evidence,
                       trusted_labels: np.ndarray, calibration: np.ndarray,
                       fold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[K, C] twice: the cleaned posterior and the prediction P(y | x) of the K calibration rows
    (`calibration` [N_train + N_val] bool), each computed by a fit (marking, prior, stage 2) in
    which its fold's rows count as unchecked, so that no row's verified label informs its own
    figures. Stage 1 never read their verified labels (src/stage1/trusted.py), so the methods
    without stage 2 need no refit."""
    kept = np.flatnonzero(calibration)
    if not settings.stage2:
        return cleaned_posterior(settings, evidence, [], kept), predict(settings, evidence, [], kept)
    posterior, prediction = (np.empty((len(kept), evidence.num_classes)) for _ in range(2))
    for k in np.unique(fold):
        others = trusted_labels.copy()
        others[kept[fold == k]] = -1
        _, priors = mark_and_prior(config, settings, speed, evidence, others)
        vaes, _ = fit_stage2(config, settings, runtime, speed, evidence, priors)
        posterior[fold == k] = cleaned_posterior(settings, evidence, vaes, kept[fold == k])
        prediction[fold == k] = predict(settings, evidence, vaes, kept[fold == k])
    return posterior, prediction


def suggest(config: Config, settings, runtime, speed: SpeedLayer, evidence: Evidence, trusted_labels: np.ndarray,
            calibration: np.ndarray, cleaned: np.ndarray) -> dict:
    """The labels a user applies (src/inference/suggest.py) and how sure the run is of them.

    With calibration rows (trusted rows kept out of stage 1): the margin that makes the
    cross-fitted suggestions agree with their verified labels most often, and the estimated share
    of suggested changes that are right. Without: `DEFAULT_MARGIN`, that share unknown. Every
    trusted row gets its verified label."""
    given, checked = evidence.given_labels, trusted_labels >= 0
    n_kept = int(calibration.sum())
    out = {"margin": DEFAULT_MARGIN, "margin_source": "default", "estimate": None,
           "trusted_rows": int(checked.sum()), "calibration_rows": n_kept}
    if n_kept >= 2:
        fold = crossfit_folds(n_kept, min(CROSSFIT_FOLDS, n_kept), config.seed)
        posterior, prediction = crossfit_posterior(config, settings, runtime, speed, evidence, trusted_labels,
                                                   calibration, fold)
        given_kept, verified = given[calibration], trusted_labels[calibration]
        out["estimate"] = change_quality(posterior, given_kept, verified, fold)
        out["changes_help"] = changes_help(out["estimate"])  # else the changes did not beat the given labels
        out["margin"] = choose_margin(posterior, given_kept, verified) if out["changes_help"] else NEVER
        out["margin_source"] = "trusted"
        # the method's prediction on rows it never fitted on: a validation accuracy, for every method
        out["estimate"]["prediction_right"] = counted_share(int((prediction.argmax(1) == verified).sum()), n_kept)
    suggested = suggest_labels(cleaned, given, out["margin"])
    out["labels"] = np.where(checked, trusted_labels, suggested)  # [N_train + N_val]
    out["changes"] = int((out["labels"] != given).sum())
    out["changes_checked"] = int(((out["labels"] != given) & checked).sum())  # verified labels
    return out


def prior_of_model(config: Config, settings, stage1, m: int, marked: np.ndarray, fit_labels: np.ndarray,
                   rows: Rows, train_labels: np.ndarray, screen_dtype: torch.dtype) -> np.ndarray:
    """Model m's Dirichlet prior parameters [N_train, C] from its kNN (only the train split, on
    which stage 2 trains, is asked). fit_labels [N_train + N_val]: the labels the kNN votes with
    (the method's label, `Plan.label`; a trusted row's verified one); train_labels [N_train]: the
    method's label of the train rows, by which NPC picks its anchors; screen_dtype: the kNN search's
    screening product's (the speed layer's)."""
    embedded = column(stage1.embeddings[m], 0 if settings.knn_epoch == "first" else -1, len(fit_labels))
    left_out = marked  # DyGen: fitted on the unmarked train + validation rows
    if settings.knn_fit == "npc":  # NPC: on the most confident example of each class per batch
        batches = shuffled_batches(rows.n_train, config.train_batch_size, np.random.default_rng([config.seed, 3]))
        anchors = npc_anchors(stage1.probs[m, : rows.n_train], train_labels, batches)
        left_out = ~np.concatenate([anchors, np.zeros(rows.n_val, dtype=bool)])
    proba = knn_predict_proba(embedded, fit_labels, left_out, stage1.probs.shape[-1], rows=rows.n_train,
                              screen_dtype=screen_dtype, balance=config.prior_balance)
    return dirichlet_prior(proba, config.knn_mode, settings.prior_norm, config.selected_class)
