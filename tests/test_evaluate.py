import numpy as np
import pytest
import torch

from src.diagnostics.quality import marking_quality
from src.inference.evaluate import true_label_probs
from src.stage1.stage1_step import lr_lambda


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


@pytest.mark.parametrize("total", [100, 17, 1000])
def test_lr_schedule_is_transformers_linear_schedule_with_warmup(total):
    """The paper's code: get_linear_schedule_with_warmup(num_warmup_steps=int(0.06 * t_total))."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    reference = get_linear_schedule_with_warmup(optimizer, int(0.06 * total), total)
    ours = lr_lambda(total, 10, "linear")
    for step in range(total + 1):
        assert ours(step) == pytest.approx(optimizer.param_groups[0]["lr"], abs=1e-12), step
        optimizer.step()
        reference.step()
    assert ours(0) == 0.0  # the first update runs at learning rate 0, as the paper's


def test_lr_schedule_restart_warms_up_every_epoch():
    restart, linear = lr_lambda(100, 10, "restart"), lr_lambda(100, 10, "linear")
    assert [restart(10 * e + s) for e in range(10) for s in range(10)] == [linear(s) for s in range(10)] * 10


def test_denoise_takes_fewer_rows_at_a_time_at_many_classes(monkeypatch):
    """[512, C, C] products took 200 GB at 10,000 classes: the batch shrinks to fit, and each
    row's result stays the same."""
    from src.inference import evaluate
    from src.stage2.network import DirichletVAE
    from src.stage2.train_stage2 import Trajectories

    torch.manual_seed(0)
    n, c = 40, 6
    vaes = [DirichletVAE(8, c), DirichletVAE(8, c)]  # z: 2 epochs x 4
    trajectories = Trajectories([np.random.default_rng(m).standard_normal((n, 2, 4)).astype(np.float16)
                                 for m in range(2)], torch.device("cpu"))
    probs = np.random.default_rng(2).dirichlet(np.ones(c), size=(2, n)).astype(np.float32)
    whole = evaluate.denoise(vaes, trajectories, np.arange(n), probs)
    rows = []
    for vae in vaes:
        real = vae.alpha_all_labels
        monkeypatch.setattr(vae, "alpha_all_labels", lambda z, real=real: rows.append(len(z)) or real(z))
    monkeypatch.setattr(evaluate, "DENOISE_BYTES", 7 * evaluate.PRODUCT_BYTES_PER_CELL * c * c)  # 7 rows fit
    assert np.allclose(evaluate.denoise(vaes, trajectories, np.arange(n), probs), whole, atol=1e-6)
    assert max(rows) == 7 and sum(rows) == 2 * n
    assert evaluate.denoise_rows(10_000, 512, 1 << 30) == 1 and evaluate.denoise_rows(134, 512, 1 << 30) == 512
