import numpy as np
import pytest

from src.data.noise import add_noise, asymmetric_noise, hashed_bag_of_words, symmetric_noise

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


def test_idn_flip_targets_depend_on_the_instance():
    # Every example has label 0; two kinds of text. Class-conditional noise would send both kinds
    # to the same targets; IDN's targets follow each instance's features.
    n = 4000
    texts = ["alpha beta gamma" if i % 2 else "delta epsilon zeta" for i in range(n)]
    labels = np.zeros(n, dtype=np.int64)
    noisy = add_noise(labels, C, "IDN", 0.4, np.random.default_rng(3), texts)
    def targets(group):  # where the flipped examples of `group` went
        return np.bincount(noisy[group & (noisy != 0)], minlength=C) / (group & (noisy != 0)).sum()

    def total_variation(a, b):
        return 0.5 * np.abs(targets(a) - targets(b)).sum()

    odd, half = np.arange(n) % 2 == 1, np.arange(n) % 4 < 2
    assert total_variation(odd, ~odd) > 0.15  # the two kinds of text flip to different classes
    assert total_variation(odd & half, odd & ~half) < 0.08  # one kind split in two: the same targets
    assert abs((noisy != 0).mean() - 0.4) < 0.03


def test_idn_follows_its_formula():
    # reference: scores s = x_i . W[y_i] with the [N, F, C] product, the spec's flip distribution
    from scipy.stats import truncnorm

    rng_labels = np.random.default_rng(8)
    n, classes, rate = 300, 4, 0.3
    labels = rng_labels.integers(0, classes, n)
    texts = [" ".join(f"w{j}" for j in rng_labels.integers(0, 40, 6)) for _ in range(n)]
    x = hashed_bag_of_words(texts)
    rng = np.random.default_rng(9)
    q = truncnorm.rvs(-rate / 0.1, (1 - rate) / 0.1, loc=rate, scale=0.1, size=n, random_state=rng)
    w = rng.standard_normal((classes, x.shape[1], classes))
    s = np.einsum("nf,nfc->nc", x, w[labels])
    s[np.arange(n), labels] = -np.inf
    p = np.exp(s - s.max(1, keepdims=True))
    p = p / p.sum(1, keepdims=True) * q[:, None]
    p[np.arange(n), labels] = 1 - q
    cumulative = p.cumsum(1)
    u = rng.random((n, 1)) * cumulative[:, -1:]
    expected = (u > cumulative).sum(1).clip(max=classes - 1)
    got = add_noise(labels, classes, "IDN", rate, np.random.default_rng(9), texts)
    assert np.array_equal(got, expected)


def test_idn_at_wos_shape_stays_small():
    import tracemalloc

    from src.data.noise import instance_dependent_noise

    n, classes, features = 47_000, 134, 64  # the [N, F, C] float64 copy alone would be 3.2 GB
    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, n)
    x = rng.random((n, features))
    tracemalloc.start()
    noisy = instance_dependent_noise(labels, classes, 0.4, np.random.default_rng(1), x)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 30, f"peak {peak / 2**20:.0f} MB"
    assert abs((noisy != labels).mean() - 0.4) < 0.02
