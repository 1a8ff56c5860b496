"""Diagnostics against gold labels: how well the marking, the three noise detectors and the
cleaning find the wrong labels. Gold labels are read here and nowhere in the method; every
function returns None (or nothing) where the data set has no gold train labels."""

from __future__ import annotations

import numpy as np

from src.diagnostics.detection import clean_noisy_curves, detection_metrics, detector_scores, precision_recall


def marking_quality(marked: np.ndarray, noisy: np.ndarray, gold: np.ndarray | None) -> dict | None:
    """Precision and recall of the noisy-sample marking [N] against gold labels [N]."""
    if gold is None:
        return None
    wrong = noisy != gold
    precision, recall = precision_recall(marked, wrong)
    return {"marked": int(marked.sum()), "truly_noisy": int(wrong.sum()), "precision": precision, "recall": recall}


def noise_detection(scores: np.ndarray, probs: np.ndarray, distances: np.ndarray, noisy: np.ndarray,
                    gold: np.ndarray | None, num_classes: int, ratio: float) -> tuple[dict | None, dict]:
    """The three detectors (dynamics score, loss, confident learning) against gold labels.

    scores [M, N] dynamics scores, probs [N, C] the models' mean last-epoch probabilities,
    distances [M, E, N] own-label distances, noisy and gold [N]. Returns the metrics per detector
    (with the clean / wrong distance curves) and the per-example arrays for the figures.
    """
    if gold is None:
        return None, {}
    wrong = noisy != gold
    detectors = detector_scores(np.mean(scores, 0), probs, noisy, num_classes, ratio)
    metrics = {name: detection_metrics(flags, score, wrong) for name, (flags, score) in detectors.items()}
    metrics["distance_curves"] = clean_noisy_curves(np.mean(distances, 0), wrong)
    arrays = {"wrong": wrong, **{f"{name}_score": score for name, (_, score) in detectors.items()},
              **{f"{name}_flags": flags for name, (flags, _) in detectors.items()}}
    return metrics, arrays


def abstained_quality(splits, probs: np.ndarray | None) -> dict:
    """How many rows without a label were predicted and, where their gold labels are known, how
    often the prediction agrees with them. probs [N_abstained, C] in `Splits.abstained_items` order."""
    gold = [split.gold for _, split in splits.abstained_items()]
    out = {"predicted": 0 if probs is None else len(probs)}
    if probs is not None and gold and all(g is not None for g in gold):
        out["agrees_with_gold"] = float((probs.argmax(1) == np.concatenate(gold)).mean())
    return out


def trusted_quality(given: np.ndarray, cleaned: np.ndarray, trusted: np.ndarray) -> dict:
    """How the cleaning did on the trusted rows (trusted [N] verified labels, -1 elsewhere;
    given and cleaned [N]): agreement of the given and of the cleaned labels with the verified
    ones, and how many wrong labels were fixed and right ones broken. Optimistic: a trusted row
    enters the kNN prior with its verified label, so it informs its own prior."""
    rows = trusted >= 0
    given, cleaned, verified = given[rows], cleaned[rows], trusted[rows]
    return {"given_agrees": float((given == verified).mean()), "cleaned_agrees": float((cleaned == verified).mean()),
            "fixed": int(((given != verified) & (cleaned == verified)).sum()),
            "broken": int(((given == verified) & (cleaned != verified)).sum())}


def cleaning_quality(noisy: np.ndarray, cleaned: np.ndarray, gold: np.ndarray | None) -> dict:
    """How many labels the cleaning changed and, where gold is known, agreement with it."""
    quality = {"changed": int((noisy != cleaned).sum()), "total": len(noisy)}
    if gold is not None and len(gold):
        quality["noisy_agrees_with_gold"] = float((noisy == gold).mean())
        quality["cleaned_agrees_with_gold"] = float((cleaned == gold).mean())
    return quality


def suggestion_quality(given: np.ndarray, suggested: np.ndarray, cleaned: np.ndarray, given_label_prob: np.ndarray,
                       noise_score: np.ndarray, gold: np.ndarray | None, unchecked: np.ndarray) -> dict | None:
    """Against gold, on the rows nobody checked (`unchecked` [N] bool; a trusted row's suggestion
    is its verified label, no merit of the method): how often the given, the cleaned and the
    suggested labels [N] are right, how many changes fixed a wrong label or broke a right one, and
    how well the labels file's two orders find the wrong labels (`detection_metrics`): `ranking`,
    by `given_label_prob` [N] ascending, and `noise_score_ranking`, by `noise_score` [N] descending."""
    if gold is None or not unchecked.any():
        return None
    given, suggested, cleaned, given_label_prob, noise_score, gold = (
        a[unchecked] for a in (given, suggested, cleaned, given_label_prob, noise_score, gold))
    wrong, changed = given != gold, suggested != given
    return {"rows": len(given), "given_agrees_with_gold": float((given == gold).mean()),
            "cleaned_agrees_with_gold": float((cleaned == gold).mean()),
            "suggested_agrees_with_gold": float((suggested == gold).mean()),
            "fixed": int((wrong & (suggested == gold)).sum()), "broken": int((~wrong & (suggested != gold)).sum()),
            "ranking": detection_metrics(changed, -given_label_prob, wrong),
            "noise_score_ranking": detection_metrics(changed, noise_score, wrong)}
