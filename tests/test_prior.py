import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from src.errors import UserError
from src.model.generate_prior import dirichlet_prior, knn_predict_proba


def test_exact_matches_outweigh_the_rest_as_in_sklearn(screening):
    # Two fit rows at the query's own position with different labels: 1/2 each, the rest 0.
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(40, 6))
    emb[1] = emb[0]
    labels = np.arange(40) % 3
    proba = knn_predict_proba(emb, labels, np.zeros(40, bool), 3, k=5)
    assert np.allclose(proba[0], [0.5, 0.5, 0.0])


def test_knn_fitted_on_unmarked_only(screening):
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(80, 5))
    labels = rng.integers(0, 3, 80)
    marked = np.zeros(80, bool)
    marked[::4] = True
    got = knn_predict_proba(emb, labels, marked, 3, k=10)
    ref = KNeighborsClassifier(10, weights="distance").fit(emb[~marked], labels[~marked])
    expected = np.zeros((80, 3))
    expected[:, ref.classes_] = ref.predict_proba(emb)
    assert np.allclose(got, expected, atol=1e-5)
    # Unmarked points are their own nearest neighbour at distance 0: their label wins.
    assert np.all(got[~marked].argmax(1) == labels[~marked])
    # Asking for the first rows only (the train split) fits on all and answers for those rows.
    assert np.array_equal(knn_predict_proba(emb, labels, marked, 3, k=10, rows=50), got[:50])


def test_missing_class_gets_zero_column():
    emb = np.arange(40, dtype=float)[:, None]
    labels = np.where(np.arange(40) < 20, 0, 2)
    proba = knn_predict_proba(emb, labels, np.zeros(40, bool), 4, k=5)
    assert proba.shape == (40, 4) and np.all(proba[:, [1, 3]] == 0)


def test_too_few_unmarked_is_a_user_error():
    with pytest.raises(UserError):
        knn_predict_proba(np.zeros((12, 2)), np.zeros(12, int), np.arange(12) < 5, 2, k=10)


def test_dirichlet_prior_parameters():
    p = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    onehot = dirichlet_prior(p, "onehot", 5.0)
    base = 1 + 1 / 3
    assert np.allclose(onehot, [[base, base + 5, base], [base + 5, base, base]])
    proba = dirichlet_prior(p, "proba", 5.0)
    assert np.allclose(proba, 5 * p + base)
    top1 = dirichlet_prior(p, "proba", 5.0, selected_class=1)
    assert np.allclose(top1, [[base, base + 5, base], [base + 5, base, base]])
