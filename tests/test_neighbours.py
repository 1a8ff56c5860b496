import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors

from src.noise_rate import loo_knn_proba
from src.prior.neighbours import nearest_rows


def test_nearest_rows_are_the_exact_neighbours(screening):
    # Far from the origin, as CLS embeddings are: without centring, a bf16 product could not
    # tell these neighbours apart (its rounding would be relative to |x| ~ 300, not to the
    # spread ~ 1); with it every neighbour list is exact.
    rng = np.random.default_rng(1)
    fit = rng.normal(size=(600, 48)).astype(np.float32) + 40.0
    query = np.concatenate([fit[:50], rng.normal(size=(50, 48)).astype(np.float32) + 40.0])
    dist, idx = nearest_rows(torch.as_tensor(query), torch.as_tensor(fit), k=12, chunk=32, screen_dtype=screening)
    exact = np.sqrt(((query[:, None, :].astype(np.float64) - fit[None].astype(np.float64)) ** 2).sum(-1))
    order = np.argsort(exact, axis=1, kind="stable")[:, :12]
    assert np.array_equal(idx, order)
    assert np.allclose(dist, np.take_along_axis(exact, order, 1), atol=1e-4)
    assert np.all(dist[:50, 0] == 0) and np.all(idx[:50, 0] == np.arange(50))  # a row finds itself


def test_half_precision_rows_give_the_neighbours_of_their_float32_values(screening):
    rng = np.random.default_rng(3)
    fit = rng.normal(size=(300, 32)).astype(np.float16)
    query = rng.normal(size=(40, 32)).astype(np.float16)
    half = nearest_rows(torch.as_tensor(query), torch.as_tensor(fit), k=5, screen_dtype=screening)
    full = nearest_rows(torch.as_tensor(query).float(), torch.as_tensor(fit).float(), k=5, screen_dtype=screening)
    assert np.array_equal(half[1], full[1]) and np.allclose(half[0], full[0])


def test_leave_one_out_neighbours_are_sklearns(screening):
    # sklearn's kneighbors() with no query: each row's k nearest others; duplicates still count.
    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 16)).astype(np.float32)
    x[1] = x[0]
    labels = rng.integers(0, 3, 200)
    distances, neighbours = NearestNeighbors(n_neighbors=5).fit(x).kneighbors()
    weights = 1.0 / np.maximum(distances, 1e-12)
    expected = np.zeros((200, 3))
    np.add.at(expected, (np.arange(200)[:, None], labels[neighbours]), weights)
    expected /= expected.sum(1, keepdims=True)
    assert np.allclose(loo_knn_proba(x, labels, 3, k=5, screen_dtype=screening), expected, atol=1e-6)
