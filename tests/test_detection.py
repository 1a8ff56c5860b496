"""Noise-detection metrics and confident learning, checked against hand-computed cases."""

import numpy as np
import pytest

from src.diagnostics.detection import (
    clean_noisy_curves,
    confident_learning_flags,
    detection_metrics,
    detector_scores,
    margin_scores,
)
from src.dynamics.marking import cross_entropy_scores, mark_noisy
from src.noise_rate import confident_joint, confident_thresholds

# Seven examples, three classes; all probabilities are exact binary fractions.
LABELS = np.array([0, 0, 0, 1, 1, 2, 2])
PROBS = np.array([
    [0.75, 0.25, 0.0],  # label 0: p0 >= t0 -> y* 0
    [0.5, 0.375, 0.125],  # label 0: p0 >= t0 -> y* 0
    [0.25, 0.125, 0.625],  # label 0: only p2 >= t2 -> y* 2 (flagged)
    [0.25, 0.75, 0.0],  # label 1: y* 1
    [0.5, 0.25, 0.25],  # label 1: only p0 >= t0 -> y* 0 (flagged; also its argmax)
    [0.0, 0.25, 0.75],  # label 2: y* 2
    [0.375, 0.5, 0.125],  # label 2: only p1 >= t1 -> y* 1 (flagged)
])


def test_thresholds_are_mean_self_confidence_per_class():
    # t0 = (.75 + .5 + .25) / 3, t1 = (.75 + .25) / 2, t2 = (.75 + .125) / 2
    assert confident_thresholds(PROBS, LABELS, 3).tolist() == [0.5, 0.5, 0.4375]
    # a class that no example carries never becomes anyone's y*
    assert confident_thresholds(PROBS, LABELS, 4)[3] == np.inf


def test_confident_joint_and_off_diagonal_flags():
    joint, y_star = confident_joint(PROBS, LABELS, 3)
    assert y_star.tolist() == [0, 0, 2, 1, 0, 2, 1]
    assert joint.tolist() == [[2, 0, 1], [1, 1, 0], [0, 1, 1]]
    flags = confident_learning_flags(PROBS, LABELS, 3)
    assert flags.tolist() == [False, False, True, False, True, False, True]


def test_label_above_its_threshold_is_still_flagged_when_another_class_wins():
    # Every threshold is 0.25, so every class is "confident"; y* is then the plain argmax.
    labels = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array([[0.25, 0.5, 0.25], [0.25, 0.25, 0.5], [0.5, 0.25, 0.25],
                      [0.25, 0.25, 0.5], [0.25, 0.5, 0.25], [0.5, 0.25, 0.25]])
    assert confident_thresholds(probs, labels, 3).tolist() == [0.25, 0.25, 0.25]
    _, y_star = confident_joint(probs, labels, 3)
    assert y_star.tolist() == [1, 2, 0, 2, 1, 0]
    assert confident_learning_flags(probs, labels, 3).all()


def test_example_with_no_confident_class_is_not_counted():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.5, 0.5]])  # t = [.75, .75]
    joint, y_star = confident_joint(probs, labels, 2)
    assert y_star.tolist() == [0, -1, 1, -1]
    assert joint.tolist() == [[1, 0], [0, 1]]
    assert not confident_learning_flags(probs, labels, 2).any()


def test_flag_top_and_loss_and_margin():
    assert mark_noisy(np.array([0.1, 0.9, 0.5, 0.3, 0.7]), 0.5).tolist() == [False, True, False, False, True]
    assert not mark_noisy(np.array([1.0, 2.0]), 0.0).any()
    probs = np.array([[0.5, 0.25, 0.25], [0.125, 0.875, 0.0]])
    np.testing.assert_allclose(cross_entropy_scores(probs, np.array([1, 1])), [np.log(4), -np.log(0.875)])
    np.testing.assert_allclose(margin_scores(probs, np.array([1, 0])), [0.25, 0.75])


def test_detection_metrics_by_hand():
    out = detection_metrics(np.array([1, 1, 0, 0], bool), np.array([4.0, 3.0, 2.0, 1.0]),
                            np.array([1, 0, 1, 0], bool))
    assert out["precision"] == 0.5 and out["recall"] == 0.5 and out["f1"] == 0.5
    assert out["roc_auc"] == pytest.approx(0.75)  # 3 of the 4 (wrong, clean) pairs ordered right
    assert out["flagged"] == 2 and out["truly_noisy"] == 2
    none = detection_metrics(np.zeros(3, bool), np.zeros(3), np.zeros(3, bool))
    assert none["roc_auc"] is None and none["f1"] == 0.0


def test_detector_scores_find_planted_noise():
    rng = np.random.default_rng(0)
    n, c = 400, 4
    gold = rng.integers(0, c, n)
    wrong = rng.random(n) < 0.2
    noisy = np.where(wrong, (gold + 1) % c, gold)
    probs = np.full((n, c), 0.1 / (c - 1))
    probs[np.arange(n), gold] = 0.9  # a model that learned the truth
    dynamics = wrong + rng.normal(0, 0.1, n)  # a score that separates the wrong labels
    detectors = detector_scores(dynamics, probs, noisy, c, wrong.mean())
    for name, (flags, score) in detectors.items():
        metrics = detection_metrics(flags, score, wrong)
        assert metrics["roc_auc"] > 0.95 and metrics["f1"] > 0.9, name


def test_clean_noisy_curves():
    distances = np.array([[1.0, 3.0, 5.0], [2.0, 2.0, 8.0]])  # [E=2, N=3]
    curves = clean_noisy_curves(distances, np.array([False, False, True]))
    assert curves["clean_mean"] == [2.0, 2.0] and curves["noisy_mean"] == [5.0, 8.0]
    assert curves["clean_std"] == [1.0, 0.0] and curves["noisy_std"] == [0.0, 0.0]


def test_confident_learning_matches_cleanlab():
    """The joint equals cleanlab's uncalibrated one; the flags equal its confident_learning filter
    except where the label is also the argmax, which cleanlab unflags and the paper's rule keeps."""
    pytest.importorskip("cleanlab")
    from cleanlab.count import compute_confident_joint
    from cleanlab.filter import find_label_issues

    rng = np.random.default_rng(0)
    for _ in range(3):
        n, num_classes = 300, 5
        probs = rng.dirichlet(np.full(num_classes, 0.5), size=n)
        labels = rng.integers(0, num_classes, n)
        labels[:num_classes] = np.arange(num_classes)  # every class carried by some example
        joint, _ = confident_joint(probs, labels, num_classes)
        np.testing.assert_array_equal(joint, compute_confident_joint(labels, probs, calibrate=False))
        ours = confident_learning_flags(probs, labels, num_classes)
        theirs = find_label_issues(labels, probs, filter_by="confident_learning")
        assert ours.sum() > 0
        np.testing.assert_array_equal(ours & (probs.argmax(1) != labels), theirs)
    # the one difference: label 0 is the argmax of row 0 but below t0, while p1 reaches t1
    probs = np.array([[0.45, 0.40, 0.15], [0.95, 0.03, 0.02], [0.9, 0.05, 0.05], [0.2, 0.35, 0.45],
                      [0.2, 0.4, 0.4], [0.1, 0.1, 0.8], [0.1, 0.2, 0.7]])
    labels = np.array([0, 0, 0, 1, 1, 2, 2])
    assert confident_learning_flags(probs, labels, 3).tolist() == [True] + [False] * 6
    assert not find_label_issues(labels, probs, filter_by="confident_learning").any()


def test_suggestion_quality_ranks_unchecked_rows_by_both_columns_of_the_labels_file():
    from src.diagnostics.quality import suggestion_quality

    gold = np.array([0, 0, 1, 1, 0, 1])
    given = np.array([0, 1, 1, 0, 1, 1])  # rows 1, 3 and 4 wrong; row 4 is checked
    unchecked = np.array([True, True, True, True, False, True])
    given_label_prob = np.array([0.9, 0.2, 0.8, 0.7, 0.1, 0.6])  # ranks row 3 below right row 5
    noise_score = np.array([0.1, 0.9, 0.2, 0.8, 0.0, 0.3])  # ranks both wrong rows first
    quality = suggestion_quality(given, given, given, given_label_prob, noise_score, gold, unchecked)
    assert quality["rows"] == 5 and quality["given_agrees_with_gold"] == 0.6
    assert quality["noise_score_ranking"]["roc_auc"] == 1.0
    assert quality["ranking"]["roc_auc"] == 5 / 6  # of the 6 (wrong, right) pairs, (row 3, row 5) misordered
