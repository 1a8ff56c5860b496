import numpy as np
import torch

from src.diagnostics import marking_quality
from src.model.evaluate import true_label_probs
from src.model.stage1_step import lr_lambda


def test_inference_sum_matches_direct_loops():
    rng = np.random.default_rng(0)
    m, b, c = 2, 5, 3
    alpha = torch.tensor(rng.uniform(1.2, 6, size=(m, b, c, c)))
    p_noisy = torch.tensor(rng.dirichlet(np.ones(c), size=(m, b)))
    got = true_label_probs(alpha, p_noisy).numpy()
    expected = np.zeros((b, c))
    for i in range(b):
        for y in range(c):
            total = 0.0
            for model in range(m):
                for noisy in range(c):
                    a = alpha[model, i, noisy].numpy() - 1
                    total += a[y] / a.sum() * p_noisy[model, i, noisy].item()
            expected[i, y] = total / m
    assert np.allclose(got, expected)
    assert np.allclose(got.sum(1), 1)


def test_marking_quality():
    marked = np.array([True, True, False, False, True])
    noisy = np.array([0, 1, 2, 0, 1])
    gold = np.array([1, 1, 2, 2, 0])
    q = marking_quality(marked, noisy, gold)
    assert q["precision"] == 2 / 3 and q["recall"] == 2 / 3
    assert marking_quality(marked, noisy, None) is None


def test_lr_schedule_linear_and_restart():
    linear = lr_lambda(100, 10, "linear")
    assert linear(0) < linear(5) and abs(linear(5) - 1.0) < 1e-9  # warm-up over 6 steps
    assert linear(99) < 0.02 and linear(50) < 1
    restart = lr_lambda(100, 10, "restart")
    assert restart(10) == restart(0) and restart(95) > 0.9  # warm-up again every epoch
