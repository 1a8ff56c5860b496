"""Figures of an experiment (matplotlib, Agg backend), from the run records and their npz files.

- dynamics: mean distance to the noisy label's centroid per epoch, truly clean vs truly
  wrong examples (band: ± one standard deviation across examples), DyGen's stage 1;
- accuracy: test accuracy of every method per setting (error bars: std over seeds);
- detection: precision-recall curves of the dynamics score and the loss, and confident
  learning's operating point, on train+validation;
- cleaning (one run): the noise score of kept and marked rows with the marking threshold, and
  the matrices of given vs suggested labels (and, with gold labels, of both against gold).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import precision_recall_curve

from src.outputs.report import METHOD_ORDER, setting_key
from src.storage.files import atomic_file

MAX_SHOWN_CLASSES = 30  # beyond this a matrix shows only the most frequent classes
MAX_ANNOTATED_CLASSES = 10  # up to this each cell of a matrix shows its count


def _title(key: tuple) -> str:
    _, dataset, noise, ratio, tag = key
    return f"{dataset}, {'real noise' if noise == 'real' else noise} r={ratio}" + (f", {tag}" if tag else "")


def _grid(n: int, width: float = 4.2, height: float = 3.4):
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def _dygen_by_setting(records: list[dict]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for r in records:
        if r["method_label"] == "dygen" and r.get("detection"):
            out.setdefault(setting_key(r), []).append(r)
    return {k: sorted(v, key=lambda r: r["config"]["seed"]) for k, v in sorted(out.items(), key=str)}


def plot_dynamics(records: list[dict], path: Path) -> bool:
    """Own-label centroid distance per epoch, clean vs noisy, averaged over seeds."""
    groups = _dygen_by_setting(records)
    if not groups:
        return False
    fig, axes = _grid(len(groups))
    for ax, (key, runs) in zip(axes, groups.items()):
        curves = [r["detection"]["distance_curves"] for r in runs]
        for name, color in (("clean", "tab:blue"), ("noisy", "tab:red")):
            mean = np.mean([c[f"{name}_mean"] for c in curves], 0)
            std = np.mean([c[f"{name}_std"] for c in curves], 0)
            epochs = np.arange(1, len(mean) + 1)
            label = "truly clean" if name == "clean" else "truly mislabelled"
            ax.plot(epochs, mean, marker="o", color=color, label=label)
            ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.2)
        ax.set_title(f"{_title(key)} ({len(runs)} seed{'s' if len(runs) > 1 else ''})", fontsize=10)
        ax.set_xlabel("stage-1 epoch")
        ax.set_ylabel("distance to own-label centroid")
        ax.set_xticks(epochs)
        ax.legend(fontsize=8)
    _suptitle(fig, "Training dynamics of DyGen's stage 1: distance to the noisy label's centroid "
                   "(band: ±1 sd over examples)")
    _save(fig, path)
    return True


def plot_accuracy(rows: list[dict], path: Path) -> bool:
    """Grouped bars: test accuracy per method for every setting (error bars: std over seeds)."""
    if not rows:
        return False
    settings = list(dict.fromkeys((r["dataset"], r["noise_type"], r["noise_ratio"], r.get("tag", "")) for r in rows))
    methods = [m for m in METHOD_ORDER if any(r["method"] == m for r in rows)]
    width = 0.8 / max(1, len(methods))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.25 * len(settings) * len(methods)) + 2.0, 4.2))
    colors = plt.get_cmap("tab10")
    for i, method in enumerate(methods):
        cells = {(r["dataset"], r["noise_type"], r["noise_ratio"], r.get("tag", "")): r for r in rows
                 if r["method"] == method}
        x = np.arange(len(settings)) + (i - (len(methods) - 1) / 2) * width
        mean = [100 * cells[s]["acc_mean"] if s in cells else np.nan for s in settings]
        std = [100 * cells[s]["acc_std"] if s in cells else 0 for s in settings]
        ax.bar(x, mean, width, yerr=std, capsize=2, label=method, color=colors(i))
        # Before stage 2: the same run's stage-1 prediction, a black tick (methods with a stage 2).
        before = [100 * cells[s]["acc_stage1_mean"] if s in cells and cells[s]["stage2"]
                  and cells[s]["acc_stage1_mean"] is not None else np.nan for s in settings]
        ax.scatter(x, before, marker="_", s=220, color="black", zorder=3,
                   label="before stage 2 (stage-1 prediction)" if i == 0 else None)
    ax.set_xticks(np.arange(len(settings)))
    ax.set_xticklabels([f"{d}\n{'real' if n == 'real' else n} r={r}" + (f"\n{t}" if t else "")
                        for d, n, r, t in settings])
    low = min(100 * v for r in rows for v in (r["acc_mean"], r["acc_stage1_mean"]) if v is not None)
    ax.set_ylim(max(0, low - 10), 100)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Test accuracy per method, mean ± sd over seeds\n(bars: the method's answer; black ticks: "
                 "the same run before stage 2)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    return True


def plot_detection(records: list[dict], path: Path) -> bool:
    """Precision-recall of the detectors on the lowest-seed DyGen run of each setting."""
    groups = {k: runs[0] for k, runs in _dygen_by_setting(records).items() if runs[0].get("arrays")}
    if not groups:
        return False
    fig, axes = _grid(len(groups))
    for ax, (key, run) in zip(axes, groups.items()):
        arrays = np.load(run["arrays"])
        wrong = arrays["wrong"]
        for name, color in (("dynamics", "tab:green"), ("loss", "tab:orange"), ("confident_learning", "tab:purple")):
            precision, recall, _ = precision_recall_curve(wrong, arrays[f"{name}_score"])
            auc = run["detection"][name]["roc_auc"]
            label = {"dynamics": "dynamics score", "loss": "last-epoch loss",
                     "confident_learning": "CL margin"}[name]
            ax.plot(recall, precision, color=color, label=f"{label} (ROC AUC {auc:.2f})")
            flags = arrays[f"{name}_flags"]
            hit = (flags & wrong).sum()
            ax.scatter([hit / max(1, wrong.sum())], [hit / max(1, flags.sum())], color=color,
                       marker="D" if name == "confident_learning" else "o", zorder=3, s=25)
        ax.axhline(wrong.mean(), color="grey", ls=":", lw=1, label=f"noise rate {wrong.mean():.2f}")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall (of truly mislabelled)")
        ax.set_ylabel("precision")
        ax.set_title(f"{_title(key)}, seed {run['config']['seed']}", fontsize=10)
        ax.legend(fontsize=7, loc="best")
    _suptitle(fig, "Noise detection on train+validation, DyGen's stage 1 (dots: the top r·N by each "
                   "score; diamond: the confident-learning rule's flags)")
    _save(fig, path)
    return True


def _suptitle(fig, text: str) -> None:
    width = int(fig.get_figwidth() * 12)  # characters that fit at font size 10
    fig.suptitle(textwrap.fill(text, width), fontsize=10)
    fig.tight_layout()


def _save(fig, path: Path, open_file=atomic_file) -> None:
    try:
        with open_file(path) as f:  # never a half-written png
            fig.savefig(f, dpi=110, format="png")
    finally:
        plt.close(fig)


def plot_cleaning(path: Path, scores: np.ndarray, marked: np.ndarray, given: np.ndarray, cleaned: np.ndarray,
                  class_names: list[str], gold: np.ndarray | None = None, score_name: str = "dynamics score",
                  title: str = "", trusted: np.ndarray | None = None, open_file=atomic_file) -> None:
    """One run's cleaning. scores and marked [M, N]: each model's marking score and marks on
    train+validation; given, cleaned (and gold) [N] class ids; trusted [N] bool: rows with a
    verified label (never marked). Top: per model, the histogram of the score for kept, marked
    and trusted rows and the threshold (the lowest marked score); bottom: the given-vs-cleaned
    matrix, and with gold labels given and cleaned against gold (rows: shares). `open_file`:
    how the png is written (atomically; by a run, staged with its other files)."""
    trusted = np.zeros(len(given), dtype=bool) if trusted is None else np.asarray(trusted, dtype=bool)
    matrices = [("given label", given, "suggested label", cleaned)]
    if gold is not None:
        matrices += [("gold label", gold, "given label", given), ("gold label", gold, "suggested label", cleaned)]
    cols = max(len(scores), len(matrices))
    fig, axes = plt.subplots(2, cols, figsize=(4.6 * cols, 8.6), squeeze=False)
    for ax in axes.flat:
        ax.set_visible(False)
    for m, (ax, score, mark) in enumerate(zip(axes[0], scores, marked)):
        ax.set_visible(True)
        bins = np.histogram_bin_edges(score, bins=40)
        kept = ~mark & ~trusted
        parts = [(score[kept], "tab:blue", f"kept ({int(kept.sum())})"),
                 (score[mark], "tab:red", f"marked noisy ({int(mark.sum())})")]
        if trusted.any():
            parts.append((score[trusted], "tab:green", f"trusted, never marked ({int(trusted.sum())})"))
        values, colors, labels = zip(*parts)
        ax.hist(list(values), bins=bins, stacked=True, color=list(colors), label=list(labels))
        if mark.any():
            ax.axvline(score[mark].min(), color="black", ls="--", lw=1, label="marking threshold")
        ax.set_xlabel(score_name)
        ax.set_ylabel("rows (train + validation)")
        ax.set_title(f"model {m}" + ("" if mark.any() else ": nothing marked"), fontsize=10)
        ax.legend(fontsize=8)
    for ax, (row_name, rows, col_name, cols_) in zip(axes[1], matrices):
        ax.set_visible(True)
        _label_matrix(ax, rows, cols_, class_names, row_name, col_name)
    _suptitle(fig, title or "What the cleaning changed")
    _save(fig, path, open_file)


def _label_matrix(ax, rows: np.ndarray, cols: np.ndarray, class_names: list[str], row_name: str,
                  col_name: str) -> None:
    """Counts of (row label, column label) pairs, coloured by each row's share; beyond
    MAX_SHOWN_CLASSES classes only the most frequent ones (a C x C image would be unreadable,
    and at thousands of classes would not fit in memory)."""
    shown = top_classes(rows, cols, len(class_names), MAX_SHOWN_CLASSES)  # class ids, in id order
    position = np.full(len(class_names), -1)
    position[shown] = np.arange(len(shown))
    r, k = position[rows], position[cols]
    both = (r >= 0) & (k >= 0)
    c = len(shown)
    counts = np.zeros((c, c), dtype=np.int64)
    np.add.at(counts, (r[both], k[both]), 1)
    shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    if c <= MAX_ANNOTATED_CLASSES:
        for i, j in np.ndindex(c, c):
            if counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if shares[i, j] > 0.6 else "black")
    # parse_math off: a class name such as `under_$10` is text, not matplotlib's maths
    names = [textwrap.shorten(class_names[k], 18, placeholder="…") for k in shown]
    ax.set_xticks(range(c), names, rotation=90, fontsize=7, parse_math=False)
    ax.set_yticks(range(c), names, fontsize=7, parse_math=False)
    agree = float((rows == cols).mean()) if len(rows) else float("nan")
    some = "" if c == len(class_names) else f" ({c} most frequent of {len(class_names)} classes)"
    ax.set_xlabel(col_name + some)
    ax.set_ylabel(row_name)
    ax.set_title(f"{row_name} vs {col_name}: {agree:.1%} agree", fontsize=10)


def top_classes(rows: np.ndarray, cols: np.ndarray, num_classes: int, limit: int) -> np.ndarray:
    """The ids of the `limit` classes most frequent in rows and cols together (all when there
    are no more), in id order."""
    if num_classes <= limit:
        return np.arange(num_classes)
    counts = np.bincount(np.concatenate([rows, cols]), minlength=num_classes)
    return np.sort(np.argsort(-counts, kind="stable")[:limit])
