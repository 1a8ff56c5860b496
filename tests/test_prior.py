import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from src.errors import UserError
from src.prior.generate_prior import dirichlet_prior, knn_predict_proba, npc_anchors


def test_exact_matches_outweigh_the_rest_as_in_sklearn(screening):
    # Two fit rows at the query's own position with different labels: 1/2 each, the rest 0.
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(40, 6))
    emb[1] = emb[0]
    labels = np.arange(40) % 3
    proba = knn_predict_proba(emb, labels, np.zeros(40, bool), 3, k=5, screen_dtype=screening)
    assert np.allclose(proba[0], [0.5, 0.5, 0.0])


def test_knn_fitted_on_unmarked_only(screening):
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(80, 5))
    labels = rng.integers(0, 3, 80)
    marked = np.zeros(80, bool)
    marked[::4] = True
    got = knn_predict_proba(emb, labels, marked, 3, k=10, screen_dtype=screening)
    ref = KNeighborsClassifier(10, weights="distance").fit(emb[~marked], labels[~marked])
    expected = np.zeros((80, 3))
    expected[:, ref.classes_] = ref.predict_proba(emb)
    assert np.allclose(got, expected, atol=1e-5)
    # Unmarked points are their own nearest neighbour at distance 0: their label wins.
    assert np.all(got[~marked].argmax(1) == labels[~marked])
    # Asking for the first rows only (the train split) fits on all and answers for those rows.
    assert np.array_equal(knn_predict_proba(emb, labels, marked, 3, k=10, rows=50, screen_dtype=screening), got[:50])


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
    proba = dirichlet_prior(p, "proba", 5.0, selected_class=None)
    assert np.allclose(proba, 5 * p + base)
    assert np.allclose(dirichlet_prior(p, "proba", 5.0, selected_class=3), 5 * p + base)
    # the paper's top-k: the kept probabilities stay as they are (not renormalised); default k = 1
    top1 = dirichlet_prior(p, "proba", 5.0)
    assert np.allclose(top1, [[base, base + 5 * 0.7, base], [base + 5 * 0.5, base, base]])
    top2 = dirichlet_prior(p, "proba", 5.0, selected_class=2)
    assert np.allclose(top2, [[base, base + 3.5, base + 1.0], [base + 2.5, base, base + 1.5]])


def test_npc_anchors_are_the_most_confident_of_each_class_per_batch():
    labels = np.array([0, 0, 1, 1, 0, 2, 2, 1])
    own = np.array([0.2, 0.9, 0.5, 0.6, 0.7, 0.1, 0.3, 0.99])
    probs = np.full((8, 3), 0.0)
    probs[np.arange(8), labels] = own
    anchors = npc_anchors(probs, labels, [np.array([0, 1, 2, 3]), np.array([4, 5, 6, 7])])
    # batch 1: class 0 -> row 1 (0.9), class 1 -> row 3 (0.6); batch 2: 0 -> 4, 2 -> 6, 1 -> 7
    assert np.flatnonzero(anchors).tolist() == [1, 3, 4, 6, 7]
    # another batch order gives other anchors: one example per class and batch
    one_batch = npc_anchors(probs, labels, [np.arange(8)])
    assert np.flatnonzero(one_batch).tolist() == [1, 6, 7]


def test_npc_prior_is_not_the_own_label():
    # NPC fits the kNN on the anchors only: other rows are predicted by their neighbours
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(3, 8)) * 4
    gold = np.repeat(np.arange(3), 30)
    emb = centres[gold] + rng.normal(size=(90, 8))
    noisy = gold.copy()
    noisy[::7] = (noisy[::7] + 1) % 3  # a seventh of the labels wrong
    probs = np.full((90, 3), 0.1)
    probs[np.arange(90), gold] = 0.8  # the classifier has learnt the clusters
    order = rng.permutation(90)
    batches = [order[i : i + 15] for i in range(0, 90, 15)]
    anchors = npc_anchors(probs, noisy, batches)
    assert not anchors[noisy != gold].any()  # a wrong label is never its batch's most confident
    proba = knn_predict_proba(emb, noisy, ~anchors, 3, k=10)
    wrong = noisy != gold
    assert np.all(proba[wrong].argmax(1) == gold[wrong])  # the prior corrects the flipped labels


def test_default_prior_is_sklearns_on_clustered_embeddings():
    # CLS-like rows: 384 dims, far from the origin, in tight clusters (where a bf16 screen
    # changes a few percent of the 10-NN sets); stored in float16 as the trajectories are.
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(6, 384)) * 0.3 + 5.0
    labels = rng.integers(0, 6, 1500)
    emb = (centres[labels] + rng.normal(size=(1500, 384)) * 0.25).astype(np.float16)
    noisy = np.where(rng.random(1500) < 0.3, rng.integers(0, 6, 1500), labels)
    marked = rng.random(1500) < 0.2
    got = knn_predict_proba(emb, noisy, marked, 6, k=10)
    wide = emb.astype(np.float32)
    ref = KNeighborsClassifier(10, weights="distance").fit(wide[~marked], noisy[~marked])
    expected = np.zeros((1500, 6))
    expected[:, ref.classes_] = ref.predict_proba(wide)
    assert np.allclose(got, expected, atol=1e-5)


def test_class_balanced_vote_measures_a_neighbourhood_against_the_class_sizes():
    from src.prior.generate_prior import class_balanced

    # fitted rows: 90 of class 0, 10 of class 1; a neighbourhood voting 0.6 / 0.4 holds 4x more of
    # class 1 than its share: balanced, class 1 wins (0.4 / 0.1 against 0.6 / 0.9)
    fit_labels = np.array([0] * 90 + [1] * 10)
    proba = np.array([[0.6, 0.4, 0.0], [1.0, 0.0, 0.0]])
    balanced = class_balanced(proba, fit_labels, 3)
    expected = np.array([0.6 / 0.9, 0.4 / 0.1, 0.0])
    np.testing.assert_allclose(balanced[0], expected / expected.sum())
    np.testing.assert_allclose(balanced[1], [1.0, 0.0, 0.0])  # a unanimous vote stays; absent class 2: 0
    assert proba[0].argmax() == 0 and balanced[0].argmax() == 1


def test_an_unmarked_row_votes_for_itself_so_its_prior_is_its_own_label():
    """The kNN is fitted on the unmarked rows and asked for all: an unmarked row is its own nearest
    neighbour at distance 0, which outweighs every other, so its prior is on its own label and only
    the marked rows' priors come from their neighbours (why no setting keeps unmarked labels)."""
    from src.prior.generate_prior import knn_predict_proba

    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(200, 8)).astype(np.float32)
    labels = rng.integers(0, 4, 200)  # random: the neighbours disagree with a row's label most often
    marked = rng.random(200) < 0.3
    for balance in ("none", "class"):
        proba = knn_predict_proba(embeddings, labels, marked, 4, balance=balance)
        assert (proba[~marked].argmax(1) == labels[~marked]).all()
        assert (proba[~marked].max(1) == 1.0).all()
        assert (proba[marked].argmax(1) != labels[marked]).any()
