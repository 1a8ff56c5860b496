import numpy as np
import pytest

from src.utils.noise import add_noise, asymmetric_noise, hashed_bag_of_words, symmetric_noise

N, C = 40000, 5


@pytest.fixture
def labels():
    return np.random.default_rng(0).integers(0, C, N)


@pytest.mark.parametrize("rate", [0.2, 0.4])
def test_symmetric_flip_rate_and_uniform_targets(labels, rate):
    noisy = symmetric_noise(labels, C, rate, np.random.default_rng(1))
    assert abs((noisy != labels).mean() - rate) < 0.01
    flipped_to = noisy[noisy != labels]
    counts = np.bincount(flipped_to, minlength=C) / len(flipped_to)
    assert np.allclose(counts, 1 / C, atol=0.02)


def test_asymmetric_maps_to_next_class(labels):
    noisy = asymmetric_noise(labels, C, 0.4, np.random.default_rng(1))
    flipped = noisy != labels
    assert abs(flipped.mean() - 0.4) < 0.01
    assert np.all(noisy[flipped] == (labels[flipped] + 1) % C)


def test_idn_rate_and_dependence_on_instance(labels):
    texts = [f"word{i % 50} other{i % 7} thing{i % 11}" for i in range(N)]
    noisy = add_noise(labels, C, "IDN", 0.3, np.random.default_rng(1), texts)
    assert abs((noisy != labels).mean() - 0.3) < 0.02
    assert noisy.min() >= 0 and noisy.max() < C
    # Same seed, same result; a different seed, a different one.
    again = add_noise(labels, C, "IDN", 0.3, np.random.default_rng(1), texts)
    other = add_noise(labels, C, "IDN", 0.3, np.random.default_rng(2), texts)
    assert np.array_equal(noisy, again) and not np.array_equal(noisy, other)


def test_hashed_features_are_stable_and_normalised():
    f = hashed_bag_of_words(["a b c", "a b c", "x"], 32)
    assert np.allclose(np.linalg.norm(f, axis=1), 1)
    assert np.array_equal(f[0], f[1])


def test_zero_rate_is_identity(labels):
    for kind in ("SN", "ASN"):
        assert np.array_equal(add_noise(labels, C, kind, 0.0, np.random.default_rng(0)), labels)
