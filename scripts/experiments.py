"""Run a grid of experiments (data sets x noise x seeds x methods and ablations) and report it.

    python scripts/experiments.py --config quick            # demo data, about 2 min on 2 free cores
    python scripts/experiments.py --config real --data_root ../shared/datasets   # ~50 min on 2 cores
    python scripts/experiments.py --summary_only --readme   # re-aggregate, redraw, docs/results.md, readme
    python scripts/experiments.py --summary_only --per_seed   # and the per-seed differences

Every finished run is stored as cache/experiments/<config>/runs/<name>.json (with its npz of
detector scores) and skipped when the grid is run again with the same arguments. Runs that
share data, noise and seed reuse one stage 1 (cache/stage1), so each cell of the grid trains
three stage-1 variants (co-regularised ensemble, one plain PLM, ensemble without
co-regularisation) and the other methods cost seconds. A setting's extra flags (e.g.
--trusted validation) leave stage 1 as it is: its runs share the cell, and stage 1, of the same
data, noise and seed without them. The summary of every config found goes to
cache/experiments/summary.csv and summary.md; figures go to figure/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.errors import UserError  # noqa: E402
from src.methods import all_labels, flags_of, variant_labels  # noqa: E402

# Every method and ablation (src/methods.py); the runs of a cell share stage 1 through its cache.
# Variants (e.g. DyGen with the Dirichlet sample put on the simplex) run only on the data sets
# a grid names in "variants_on".
LABELS = all_labels()

# Stage-2 settings shared by the CPU grids, fixed before any run (none chosen on test data):
# the small data sets give few stage-2 steps per epoch, so a larger step than the paper's 1e-4.
CPU_STAGE2 = ["--total_iter", "10", "--vae_lr", "1e-3", "--lambda_t", "1"]

# The paper's stage settings (scripts/train.sh of the reference code: 10 epochs, batch 64, lr 1e-4,
# vae_lr 1e-4, total_iter 10, lambda_t 1, 2 models), with MiniLM.
PAPER_ARGS = ["--bert", "minilm", "--epochs", "10", "--lr", "1e-4", "--train_batch_size", "64",
              "--total_iter", "10", "--vae_lr", "1e-4", "--lambda_t", "1"]
# A setting's optional 4th element: (tag for run names and the summary's setting column, flags).
TRUSTED = ("trusted", ("--trusted", "validation"))  # WRENCH's clean validation labels as a trusted sample
# Grid subsets of a data set's train split are drawn with this seed: the same rows for every run seed.
SUBSET_SEED = 0

# name -> settings [(data set, noise type or None for real noise, noise ratio[, (tag, flags)])],
# seeds, flags; optional: "variants_on" (data sets the VARIANTS run on), "leave_out" (labels not
# run unless --methods names them), "subsets" (data set -> train rows kept, drawn with SUBSET_SEED),
# "dataset_args" (data set -> flags its runs add)
GRIDS = {
    "quick": {
        "settings": [("demo", "SN", 0.4)],
        "seeds": [0, 1],
        "args": ["--bert", "minilm", "--epochs", "3", "--lr", "1e-4", "--train_batch_size", "32",
                 *CPU_STAGE2],
    },
    # WRENCH real noise (majority vote) and one synthetic setting, MiniLM on the CPU. The noise
    # ratio here only sets how many examples are marked (fixed a priori, not the gold rate).
    # bf16 autocast: 1.85x faster stage 1 than fp32 on a CPU with AVX-512 BF16 (measured on the
    # demo, same loss and accuracy after one epoch); the whole grid is then about an hour.
    "real": {
        "settings": [("trec", None, 0.2), ("semeval", None, 0.2), ("semeval", "SN", 0.4)],
        "seeds": [0, 1, 2],
        "args": ["--bert", "minilm", "--epochs", "3", "--lr", "1e-4", "--train_batch_size", "32",
                 "--precision", "bf16", *CPU_STAGE2],
    },
    # The paper's settings in bf16 on the CPU. The marked share for real noise is fixed a priori
    # at 0.2, as in `real`.
    "paper": {
        "settings": [("semeval", None, 0.2), ("semeval", "SN", 0.4), ("trec", None, 0.2)],
        "seeds": [0, 1, 2],
        "args": [*PAPER_ARGS, "--precision", "bf16"],
        "variants_on": ["semeval"],
    },
    # The same settings on SemEval's asymmetric and instance-dependent noise.
    "paper_more": {
        "settings": [("semeval", "ASN", 0.4), ("semeval", "IDN", 0.4)],
        "seeds": [0, 1, 2],
        "args": [*PAPER_ARGS, "--precision", "bf16"],
    },
    # The paper's settings on real noise (TREC, SemEval, ChemProt) and SemEval ASN 40%, each
    # without and with the validation split as a trusted sample. With it, real noise marks the
    # share of wrong labels the trusted rows show (--noise_ratio auto); synthetic noise needs its
    # flip rate as a number, so ASN keeps 0.4. ChemProt: 3,000 train rows drawn with SUBSET_SEED
    # (full validation and test), to keep the grid affordable on CPUs. Left out: --no_coreg (a
    # third stage-1 training per cell), --uniform_prior (at or below chance in every `paper`
    # cell) and the normalised sample (equal to the raw one in `paper`); variants added later run.
    # A cell's stage 1 takes hours on a CPU (ChemProt's most): --stage1_checkpoints lets a stopped
    # grid go on from its last finished epoch (the same results).
    "real_paper": {
        "settings": [("trec", None, 0.2), ("trec", None, "auto", TRUSTED),
                     ("semeval", None, 0.2), ("semeval", None, "auto", TRUSTED),
                     ("chemprot", None, 0.2), ("chemprot", None, "auto", TRUSTED),
                     ("semeval", "ASN", 0.4), ("semeval", "ASN", 0.4, TRUSTED)],
        "seeds": [0, 1, 2],
        "args": [*PAPER_ARGS, "--precision", "bf16", "--stage1_checkpoints"],
        "variants_on": ["trec", "semeval", "chemprot"],
        "leave_out": ["dygen-no_coreg", "dygen-uniform_prior", "dygen-normalised_sample"],
        "subsets": {"chemprot": 3000},
        # ChemProt's texts are long and uneven (60 tokens on average, a random batch of 64 padded to
        # ~176, up to 402): split into length-sorted micro-batches, a stage-1 epoch is 2.7x faster
        # and needs 2.9 GB instead of 14 (bf16, benchmarks/RESULTS.md); the same updates
        "dataset_args": {"chemprot": ["--split_batches", "on"]},
    },
    # The paper's 20news settings with MiniLM, for a GPU machine.
    "gpu": {
        "settings": [("20news", "SN", 0.2), ("20news", "ASN", 0.4)],
        "seeds": [0, 1, 2],
        "args": PAPER_ARGS,
    },
}


def run_name(dataset: str, noise_type: str | None, ratio: float | str, seed: int, method: str, tag: str = "") -> str:
    return f"{dataset}-{noise_type or 'real'}-{ratio}{f'-{tag}' if tag else ''}-seed{seed}-{method}"


def unpack(setting: tuple) -> tuple[str, str | None, float | str, str, tuple[str, ...]]:
    """(data set, noise type, ratio, tag, extra flags) of a grid setting; no 4th element: no tag, no flags."""
    dataset, noise_type, ratio, *extra = setting
    tag, flags = extra[0] if extra else ("", ())
    return dataset, noise_type, ratio, tag, tuple(flags)


def grid_labels(grid: dict, dataset: str, methods: list[str] | None) -> list[str]:
    """The method labels a grid runs on `dataset`, in report order: `methods` when given, else all
    but the grid's "leave_out"; the VARIANTS only on its "variants_on" data sets."""
    variants = set(variant_labels())
    return [label for label in all_labels()
            if (label in methods if methods else label not in grid.get("leave_out", []))
            and (label not in variants or dataset in grid.get("variants_on", []))]


def subset_dir(cache_dir: str, experiment: str, dataset: str, count: int) -> Path:
    """Where a grid's subset of `dataset` (`count` train rows drawn with SUBSET_SEED) is written."""
    return Path(cache_dir) / "experiments" / experiment / "data" / f"{dataset}-train{count}-seed{SUBSET_SEED}"


def plan_subsets(name: str, data_root: str | None, cache_dir: str, datasets: list[str] | None = None) -> list[dict]:
    """The subsets the grid's runs read: for each, the data folder it is drawn from, where it goes,
    and how many train rows it keeps."""
    grid = GRIDS[name]
    used = {unpack(s)[0] for s in grid["settings"] if not datasets or unpack(s)[0] in datasets}
    return [{"dataset": dataset, "source": Path(data_root or "datasets") / dataset,
             "out": subset_dir(cache_dir, name, dataset, count), "count": count}
            for dataset, count in grid.get("subsets", {}).items() if dataset in used]


def plan_grid(name: str, data_root: str | None, cache_dir: str, seeds: list[int] | None,
              methods: list[str] | None, datasets: list[str] | None = None,
              tags: list[str] | None = None) -> list[list[dict]]:
    """Cells of runs; the runs of one cell (same data, noise type, seed; with and without a
    setting's extra flags) run in order and share what stage 1 they can. `tags`: only the settings
    with these tags ("none": the untagged ones)."""
    grid = GRIDS[name]
    subsets = {s["dataset"]: s["out"] for s in plan_subsets(name, data_root, cache_dir, datasets)}
    cells = []
    # seed-major: a grid stopped part-way has every setting at its first seeds
    for seed in seeds if seeds is not None else grid["seeds"]:
        by_data: dict[tuple, list[dict]] = {}
        for setting in grid["settings"]:
            dataset, noise_type, ratio, tag, extra = unpack(setting)
            if (datasets and dataset not in datasets) or (tags and (tag or "none") not in tags):
                continue
            cell = by_data.setdefault((dataset, noise_type), [])
            for method in grid_labels(grid, dataset, methods):
                argv = ["--dataset", dataset, "--noise_ratio", str(ratio), "--seed", str(seed),
                        *grid["args"], *grid.get("dataset_args", {}).get(dataset, []), *flags_of(method), *extra,
                        "--cache_dir", cache_dir, "--no-progress"]
                if noise_type:
                    argv += ["--noise_type", noise_type]
                if dataset in subsets:
                    argv += ["--path", str(subsets[dataset])]
                elif data_root and dataset != "demo":
                    argv += ["--path", str(Path(data_root) / dataset)]
                cell.append({"name": run_name(dataset, noise_type, ratio, seed, method, tag), "argv": argv,
                             "tag": tag})
        cells += [cell for cell in by_data.values() if cell]
    return cells


def write_subset(subset: dict) -> Path:
    """The subset's folder: `count` train rows drawn with SUBSET_SEED from the WRENCH files of
    `source`, validation, test and label.json copied. Written once, then kept (its files keep their
    times, so the preprocessing cache stays valid); put in place whole, so a stopped write leaves none."""
    from scripts.wrench_slice import write_slice
    from src.data.wrench import wrench_root

    out = subset["out"]
    if out.is_dir():
        return out
    staging = out.with_name(f"{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    write_slice(wrench_root(subset["source"]), staging,
                {"train.json": subset["count"], "valid.json": None, "test.json": None}, seed=SUBSET_SEED)
    os.replace(staging, out)
    return out


def _runs_dir(cache_dir: str, experiment: str) -> Path:
    return Path(cache_dir) / "experiments" / experiment / "runs"


# Flags that change how a run is carried out, never its result (tests/test_stage1_checkpoint.py):
# a run stored without them counts as made with them, and the other way round.
RESULT_NEUTRAL_FLAGS = ("--stage1_checkpoints",)


def is_finished(path: Path, argv: list[str]) -> bool:
    """A stored run counts only if it was made with these arguments (up to RESULT_NEUTRAL_FLAGS)."""
    def result_argv(args: list[str]) -> list[str]:
        return [a for a in args if a not in RESULT_NEUTRAL_FLAGS]

    try:
        stored = json.loads(path.read_text()).get("experiment_argv")
    except (OSError, ValueError):
        return False
    return isinstance(stored, list) and result_argv(stored) == result_argv(argv)


def run_cell(job: tuple[str, str, list[dict]]) -> list[dict]:
    """Run the unfinished runs of one cell in order; returns one status line per run."""
    from src.config import parse_config
    from src.pipeline import run
    from src.storage.files import atomic_write_bytes, atomic_write_json

    experiment, cache_dir, cell = job
    out = _runs_dir(cache_dir, experiment)
    statuses = []
    for item in cell:
        path = out / f"{item['name']}.json"
        if is_finished(path, item["argv"]):
            statuses.append({"name": item["name"], "status": "skipped"})
            continue
        start = time.perf_counter()
        try:
            config = parse_config(item["argv"])
            config.figure_dir = str(out.parent / "cleaning")  # each run's picture, beside the grid's runs
            record = run(config)
        except Exception as exc:  # noqa: BLE001 -- one failed run must not lose the rest of the grid
            traceback.print_exc()
            statuses.append({"name": item["name"], "status": f"failed: {type(exc).__name__}: {exc}"})
            continue
        record["experiment"] = experiment
        record["experiment_argv"] = item["argv"]
        record["setting_tag"] = item.get("tag", "")  # the setting's extra flags, in the summary's setting
        if record.get("arrays"):  # keep the detector scores beside the record
            atomic_write_bytes(out / f"{item['name']}.npz", Path(record["arrays"]).read_bytes())
            record["arrays"] = str(out / f"{item['name']}.npz")
        atomic_write_json(path, record)
        statuses.append({"name": item["name"], "status": "done", "accuracy": record["accuracy"],
                         "seconds": time.perf_counter() - start,
                         "stage1_reused": record["stage1_cache"]["hit"]})
    return statuses


def _init_worker(threads: int, slots, gpus: int) -> None:
    """A worker's threads and, with several GPUs visible, its own GPU (set before CUDA starts)."""
    if gpus > 1:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(slots.get() % gpus)
    import torch

    torch.set_num_threads(threads)


def visible_gpus() -> int:
    """How many GPUs this process sees (without starting CUDA here)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_grid(experiment: str, cells: list[list[dict]], cache_dir: str, jobs: int) -> int:
    """Run every cell (in `jobs` processes); returns the number of failed runs."""
    work = [(experiment, cache_dir, cell) for cell in cells]
    total, done, failed = sum(len(c) for c in cells), 0, 0

    def report(statuses):
        nonlocal done, failed
        for s in statuses:
            done += 1
            failed += s["status"].startswith("failed")
            extra = (f" acc {s['accuracy']:.4f}, {s['seconds']:.0f}s"
                     f"{', stage 1 reused' if s['stage1_reused'] else ''}") if s["status"] == "done" else ""
            print(f"[{done}/{total}] {s['name']}: {s['status']}{extra}", flush=True)

    if jobs <= 1:
        for job in work:
            report(run_cell(job))
        return failed
    import multiprocessing as mp

    # The cores are split between the workers: more threads than cores slows every run down. With
    # several GPUs, worker k runs on GPU k mod their number: one run per GPU, every GPU busy.
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = mp.get_context("spawn")
    slots, gpus = context.Queue(), visible_gpus()
    for k in range(jobs):
        slots.put(k)
    with context.Pool(jobs, initializer=_init_worker, initargs=(threads, slots, gpus)) as pool:
        for statuses in pool.imap_unordered(run_cell, work):
            report(statuses)
    return failed


def load_records(cache_dir: str) -> list[dict]:
    records = []
    for path in sorted((Path(cache_dir) / "experiments").glob("*/runs/*.json")):
        record = json.loads(path.read_text())
        if record.get("arrays") and path.with_suffix(".npz").exists():  # beside it, wherever the grid ran
            record["arrays"] = str(path.with_suffix(".npz"))
        records.append(record)
    return records


HEADLINE_BEGIN, HEADLINE_END = "<!-- headline:begin -->", "<!-- headline:end -->"
COMMANDS = {
    "quick": "python scripts/experiments.py --config quick",
    "real": "python scripts/experiments.py --config real --data_root <data>",
    "paper": "python scripts/experiments.py --config paper --data_root <data>",
    "paper_more": "python scripts/experiments.py --config paper_more --data_root <data>",
    "real_paper": "python scripts/experiments.py --config real_paper --data_root <data>",
    "gpu": "python scripts/experiments.py --config gpu --data_root <data> --jobs 1",
}


def results_markers(experiment: str) -> tuple[str, str]:
    """The lines that enclose one grid's generated part of docs/results.md."""
    return f"<!-- results:{experiment}:begin -->", f"<!-- results:{experiment}:end -->"


def results_block(markdown: str, experiment: str) -> str:
    """docs/results.md's generated part for one grid: its command, its tables, its figures."""
    begin, end = results_markers(experiment)
    lines = [begin, "<!-- generated by scripts/experiments.py --readme from cache/experiments/summary.csv -->", "",
             "```bash", COMMANDS.get(experiment, f"python scripts/experiments.py --config {experiment}"), "```", "",
             markdown.strip(), ""]
    images = [f"![{experiment} {kind}](../figure/{experiment}_{kind}.png)"
              for kind in ("accuracy", "dynamics", "detection_pr")
              if (ROOT / "figure" / f"{experiment}_{kind}.png").exists()]
    if images:
        lines += [f"Figures of `{experiment}`:", "", *images, ""]
    lines.append(end)
    return "\n".join(lines)


def headline_experiment(experiments: list[str]) -> str:
    """The grid the readme's headline table shows: the paper's settings where they have run."""
    return "paper" if "paper" in experiments else experiments[-1]


def replace_block(path: Path, begin: str, end: str, block: str) -> None:
    """Put `block` (which starts with `begin` and ends with `end`) in place of that part of `path`."""
    from src.storage.files import atomic_write_bytes

    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    atomic_write_bytes(path, text.encode())


def summarize_all(cache_dir: str, figure_dir: str, readme: bool, per_seed: bool = False) -> None:
    """Aggregate every stored run, draw the figures and (`readme`) rewrite docs/results.md's blocks
    and the readme's headline; `per_seed`: print, and put in the blocks, the per-seed differences."""
    from src.outputs import figures
    from src.outputs.report import per_seed_markdown, summarize, to_csv, to_markdown
    from src.storage.files import atomic_write_bytes

    records = load_records(cache_dir)
    if not records:
        print("no finished runs to summarise")
        return
    rows = summarize(records)
    out = Path(cache_dir) / "experiments"
    atomic_write_bytes(out / "summary.csv", to_csv(rows).encode())
    markdown = to_markdown(rows)
    atomic_write_bytes(out / "summary.md", markdown.encode())
    print(markdown)
    print(f"wrote {out / 'summary.csv'} and {out / 'summary.md'}")
    if per_seed:
        print(per_seed_markdown(records))
    for experiment in sorted({r["experiment"] for r in records}):
        mine = [r for r in records if r["experiment"] == experiment]
        for kind, draw, data in (("dynamics", figures.plot_dynamics, mine),
                                 ("accuracy", figures.plot_accuracy,
                                  [r for r in rows if r["experiment"] == experiment]),
                                 ("detection_pr", figures.plot_detection, mine)):
            path = Path(figure_dir) / f"{experiment}_{kind}.png"
            if draw(data, path):
                print(f"wrote {path}")
    if readme:
        experiments = [e for e in GRIDS if any(r["experiment"] == e for r in records)]
        for experiment in experiments:  # each grid's part; the parts of grids not run here stay
            table = to_markdown([r for r in rows if r["experiment"] == experiment])
            if per_seed:
                table += "\n" + per_seed_markdown([r for r in records if r["experiment"] == experiment])
            replace_block(ROOT / "docs" / "results.md", *results_markers(experiment), results_block(table, experiment))
        headline = headline_experiment(experiments)
        table = to_markdown([r for r in rows if r["experiment"] == headline], detection=False).strip()
        replace_block(ROOT / "readme.md", HEADLINE_BEGIN, HEADLINE_END, "\n".join(
            [HEADLINE_BEGIN, "<!-- generated by scripts/experiments.py --readme -->", "", table, "", HEADLINE_END]))
        print("updated docs/results.md and the headline table of readme.md")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", choices=list(GRIDS), default="quick", help="which grid to run")
    parser.add_argument("--data_root", default=None,
                        help="folder holding <dataset>/ for the real data sets (default: each run's "
                             "--path default, datasets/<dataset>)")
    parser.add_argument("--cache_dir", default="cache", help="runs, stage-1 cache and summary go here")
    parser.add_argument("--figure_dir", default="figure")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="cells run in parallel processes (each cell: one data/noise/seed)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="override the grid's seeds")
    parser.add_argument("--methods", nargs="+", choices=LABELS, default=None,
                        help="only these methods (default: every method and ablation the grid runs)")
    parser.add_argument("--datasets", nargs="+", default=None, help="only the grid's settings on these data sets")
    parser.add_argument("--tags", nargs="+", default=None,
                        help="only the grid's settings with these tags (e.g. trusted; none: the untagged ones)")
    parser.add_argument("--summary_only", action="store_true", help="do not run: re-aggregate and redraw")
    parser.add_argument("--readme", action="store_true",
                        help="rewrite docs/results.md's tables and the readme's headline table")
    parser.add_argument("--per_seed", action="store_true",
                        help="also the per-seed differences: the test accuracy of the DyGen setting chosen on "
                             "validation minus each other method's, and its suggested_label's agreement with gold "
                             "minus the given labels' "
                             "(printed; with --readme, in each grid's block of docs/results.md)")
    args = parser.parse_args(argv)
    failed = 0
    try:
        if not args.summary_only:
            cells = plan_grid(args.config, args.data_root, args.cache_dir, args.seeds, args.methods, args.datasets,
                              args.tags)
            subsets = plan_subsets(args.config, args.data_root, args.cache_dir, args.datasets)
            _validate(args.config, args.datasets, cells, subsets, args.tags)
            for subset in subsets:
                print(f"{subset['dataset']}: {write_subset(subset)}")
            start = time.perf_counter()
            failed = run_grid(args.config, cells, args.cache_dir, args.jobs)
            print(f"grid {args.config}: {time.perf_counter() - start:.0f}s, {failed} failed")
        summarize_all(args.cache_dir, args.figure_dir, args.readme, args.per_seed)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1 if failed else 0


def _validate(name: str, datasets: list[str] | None, cells: list[list[dict]], subsets: list[dict],
              tags: list[str] | None = None) -> None:
    """--datasets and --tags name the grid's data sets and tags, every run's flags parse, every data folder exists and
    every subset's WRENCH files are there, before anything is written."""
    from src.config import parse_config
    from src.data.wrench import FILES, wrench_root

    known = {unpack(setting)[0] for setting in GRIDS[name]["settings"]}
    if datasets and set(datasets) - known:
        raise UserError(f"--datasets {' '.join(sorted(set(datasets) - known))}: not in grid {name} "
                        f"({', '.join(sorted(known))})")
    known_tags = {unpack(setting)[3] or "none" for setting in GRIDS[name]["settings"]}
    if tags and set(tags) - known_tags:
        raise UserError(f"--tags {' '.join(sorted(set(tags) - known_tags))}: not in grid {name} "
                        f"({', '.join(sorted(known_tags))})")
    for subset in subsets:
        if subset["out"].is_dir():  # written before: its source is not read again
            continue
        if not subset["source"].exists():
            raise UserError(f"--data_root: {subset['source']} does not exist")
        root = wrench_root(subset["source"])
        for file in FILES.values():
            if not (root / file).is_file():
                raise UserError(f"{root / file}: file not found (grid {name} draws its {subset['dataset']} "
                                f"subset from the WRENCH files)")
    written = {str(subset["out"]) for subset in subsets}  # written after this check
    for cell in cells:
        for item in cell:
            config = parse_config(item["argv"])
            if config.path is not None and config.path not in written and not Path(config.path).exists():
                raise UserError(f"--data_root: {config.path} does not exist")


if __name__ == "__main__":
    sys.exit(main())
