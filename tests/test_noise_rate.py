"""The noise-rate estimators on synthetic data where the true rate is known."""

import numpy as np
import pytest

from src.data.noise import symmetric_noise
from src.noise_rate import (
    confident_joint_rate,
    disagreement_rate,
    estimate_noise_rates,
    gmm_noise_rate,
    loo_knn_proba,
)

C = 4


def clusters(n: int, rate: float, seed: int, spread: float = 0.5):
    """Gaussian clusters around C well-separated centres; labels flipped with SN at `rate`."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, C, size=n)
    centres = 4.0 * np.eye(C, 8)  # [C, D]
    x = centres[gold] + spread * rng.standard_normal((n, 8))  # [N, D]
    noisy = symmetric_noise(gold, C, rate, rng)
    return x, noisy, gold


@pytest.mark.parametrize("weight", [0.1, 0.3, 0.5])
def test_gmm_recovers_the_weight_of_the_high_component(weight):
    rng = np.random.default_rng(0)
    n = 4000
    high = int(weight * n)
    scores = np.concatenate([rng.normal(2.0, 0.5, n - high), rng.normal(5.0, 0.7, high)])
    assert gmm_noise_rate(rng.permutation(scores)) == pytest.approx(weight, abs=0.02)


def test_gmm_of_constant_scores_is_zero():
    assert gmm_noise_rate(np.ones(50)) == 0.0


def test_loo_knn_leaves_each_example_out():
    # Two points far apart with different labels: with k=1 each one's only neighbour is the
    # other, so leave-one-out predicts the other's label (including itself would predict its own).
    x = np.array([[0.0], [10.0]])
    proba = loo_knn_proba(x, np.array([0, 1]), num_classes=2, k=1)
    np.testing.assert_allclose(proba, [[0, 1], [1, 0]])
    # Exact duplicates are other examples and still vote.
    proba = loo_knn_proba(np.array([[0.0], [0.0], [5.0]]), np.array([1, 1, 0]), num_classes=2, k=2)
    assert proba[0].argmax() == 1 and proba[0, 1] > 0.99


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.4])
def test_knn_estimates_recover_symmetric_noise_on_separable_clusters(rate):
    x, noisy, gold = clusters(3000, rate, seed=1)
    truth = float((noisy != gold).mean())
    proba = loo_knn_proba(x, noisy, C)
    assert disagreement_rate(proba, noisy) == pytest.approx(truth, abs=0.03)
    assert confident_joint_rate(proba, noisy) == pytest.approx(truth, abs=0.03)


def test_confident_joint_on_exact_probabilities():
    # Probabilities that put 0.9 on the true class: the joint counts exactly the flipped labels.
    rng = np.random.default_rng(2)
    gold = rng.integers(0, C, size=2000)
    noisy = symmetric_noise(gold, C, 0.3, rng)
    proba = np.full((2000, C), 0.1 / (C - 1))
    proba[np.arange(2000), gold] = 0.9
    assert confident_joint_rate(proba, noisy) == pytest.approx(float((noisy != gold).mean()), abs=1e-9)


def test_disagreement_rate_counts_argmax_mismatches():
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert disagreement_rate(proba, np.array([0, 0, 0, 1])) == 0.25


def test_estimate_noise_rates_averages_models_and_names_every_candidate():
    x, noisy, gold = clusters(1200, 0.3, seed=3)
    embeddings = [np.stack([x, x], 1), np.stack([x + 0.01, x], 1)]  # M=2 models, each [N, E=2, D]
    probs = np.stack([np.eye(C)[noisy]] * 2)  # [M, N, C]: classifiers that memorised the labels
    scores = np.stack([(noisy != gold) * 3.0 + np.random.default_rng(0).normal(0, 0.3, len(x))] * 2)
    estimates = estimate_noise_rates(embeddings, probs, scores, noisy, C)
    assert set(estimates) == {"gmm", "knn_first", "knn_last", "cj_first", "cj_last", "classifier"}
    truth = float((noisy != gold).mean())
    for name in ("gmm", "knn_first", "knn_last", "cj_first", "cj_last"):
        assert estimates[name] == pytest.approx(truth, abs=0.04), name
    assert estimates["classifier"] == 0.0  # memorised labels: never disagrees


def test_trusted_class_shares_are_shrunk_toward_the_overall_share():
    from src.noise_rate import SHRINK_ROWS, trusted_class_shares

    given = np.array([0] * 40 + [1] * 2)
    verified = np.array([0] * 30 + [1] * 10 + [1, 0])  # label 0: 10 of 40 wrong; label 1: 1 of 2 wrong
    shares = trusted_class_shares(given, verified, 3, overall=0.2)
    assert SHRINK_ROWS == 10
    np.testing.assert_allclose(shares, [(10 + 2) / 50, (1 + 2) / 12, 0.2])  # no trusted row: the overall share


def test_confident_class_shares_point_where_the_wrong_labels_are_and_mark_the_overall_share():
    from src.noise_rate import confident_class_shares

    # label 0: 6 rows, 3 of them confidently class 1; label 1: 4 rows, all confidently class 1
    labels = np.array([0] * 6 + [1] * 4)
    probs = np.array([[0.9, 0.1]] * 3 + [[0.1, 0.9]] * 3 + [[0.1, 0.9]] * 4)
    shares = confident_class_shares(probs, labels, 2, overall=0.2)
    assert shares[1] == 0 and shares[0] * 6 == pytest.approx(0.2 * 10)  # all marks where the joint points
    assert (confident_class_shares(np.array([[0.9, 0.1]] * 6 + [[0.1, 0.9]] * 4), labels, 2, 0.2) == 0.2).all()
