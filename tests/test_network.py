import pytest
import torch
import torch.nn.functional as F
from scipy.special import digamma, gammaln

from src.stage1.stage1_step import coregularized_loss
from src.stage2.network import (
    DirichletVAE,
    coregularization,
    dirichlet_mean,
    dirichlet_sample,
    kl_dirichlet,
    reconstruction_loss,
)


def test_alpha_is_above_one_plus_one_over_c_and_all_labels_matches_loop():
    torch.manual_seed(0)
    vae = DirichletVAE(input_dim=12, num_classes=4)
    z = torch.randn(6, 12)
    all_labels = vae.alpha_all_labels(z)  # [B, C, C]
    for label in range(4):
        onehot = F.one_hot(torch.full((6,), label), 4).float()
        assert torch.allclose(all_labels[:, label], vae.alpha(z, onehot), atol=1e-6)
    assert torch.all(all_labels > 1 + 1 / 4)


def test_encoder_and_decoder_are_linear_layers_over_the_concatenation():
    """Linear([z; onehot]) and Linear([z; u]) as the paper writes them, initialised as two
    nn.Linear(F + C, C) drawn in that order."""
    torch.manual_seed(3)
    vae = DirichletVAE(input_dim=12, num_classes=4)
    torch.manual_seed(3)
    joint_enc, joint_dec = torch.nn.Linear(16, 4), torch.nn.Linear(16, 4)  # same draws, same order
    assert torch.equal(vae.encoder.weight, joint_enc.weight) and torch.equal(vae.decoder.bias, joint_dec.bias)
    z, onehot = torch.randn(5, 12), F.one_hot(torch.tensor([0, 1, 2, 3, 1]), 4).float()
    u = torch.softmax(torch.randn(5, 4), -1)
    assert torch.allclose(vae.alpha(z, onehot),
                          F.softplus(joint_enc(torch.cat([z, onehot], 1))) + 1 + 1 / 4, atol=1e-6)
    assert torch.allclose(vae.decode(z, u), joint_dec(torch.cat([z, u], 1)), atol=1e-6)
    assert set(vae.state_dict()) == {"encoder.weight", "encoder.bias", "decoder.weight", "decoder.bias"}


def test_block_layers_compute_the_plain_layers_and_save_as_them():
    """The speed layer's swap (z / label blocks, z products in z's dtype): the same outputs and
    gradients as the plain VAE, no gradient for z, and the plain VAE's state dict."""
    from src.accel.split_linear import use_block_layers

    torch.manual_seed(3)
    plain = DirichletVAE(input_dim=12, num_classes=4)
    blocks = use_block_layers(DirichletVAE(12, 4))
    blocks.load_state_dict(plain.state_dict())  # a saved plain VAE loads into the block layers
    assert set(blocks.state_dict()) == set(plain.state_dict())
    for name, value in plain.state_dict().items():
        assert torch.equal(blocks.state_dict()[name], value), name
    z, onehot, eps = torch.randn(5, 12), F.one_hot(torch.tensor([0, 1, 2, 3, 1]), 4).float(), torch.rand(5, 4)
    outputs = []
    for vae in (plain, blocks):
        z_in = z.clone().requires_grad_(vae is plain)
        alpha, logits = vae(z_in, onehot, eps)
        (alpha.sum() + logits.square().sum()).backward()
        outputs.append((alpha, logits, vae.alpha_all_labels(z)))
    for ours, theirs in zip(*outputs):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.cat([blocks.encoder.weight_a.grad, blocks.encoder.weight_b.grad], 1),
                               plain.encoder.weight.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(blocks.decoder.bias.grad, plain.decoder.bias.grad, rtol=1e-5, atol=1e-6)


def test_stage2_trains_the_same_with_and_without_the_speed_layer():
    import numpy as np

    from src.accel.stage2 import Stage2Speedups
    from src.stage2.train_stage2 import Stage2Settings, Trajectories, train_stage2

    rng = np.random.default_rng(1)
    n, classes = 80, 3
    labels = rng.integers(0, classes, n)
    embeddings = [rng.normal(size=(n, 2, 8)).astype(np.float16) for _ in range(2)]
    priors = [np.full((n, classes), 1.3) + 4 * np.eye(classes)[labels] for _ in range(2)]
    runs = [train_stage2(Trajectories(embeddings, torch.device("cpu")), np.arange(n), labels, priors, classes,
                         Stage2Settings(total_iter=3, batch_size=16, lr=1e-2), show_progress=False, speedups=speedups)
            for speedups in (None, Stage2Speedups())]
    (plain, plain_history), (fast, fast_history) = runs
    assert [h["loss"] for h in fast_history] == pytest.approx([h["loss"] for h in plain_history], rel=1e-4)
    for a, b in zip(plain, fast):
        for name, value in a.state_dict().items():
            torch.testing.assert_close(b.state_dict()[name], value, rtol=1e-4, atol=1e-5, msg=name)


def test_dirichlet_sample_is_the_papers_raw_u_by_default():
    alpha = torch.tensor([[2.0, 3.0, 5.0]])
    eps = torch.tensor([[0.3, 0.6, 0.9]])
    raw = torch.exp((torch.log(eps * alpha) + torch.lgamma(alpha)) / alpha)
    # the paper's reparameterize(): ((1 / alpha) * (log(eps * alpha) + lgamma(alpha))).exp()
    assert torch.allclose(dirichlet_sample(alpha, eps), raw, atol=1e-6)
    assert not torch.allclose(raw.sum(), torch.tensor(1.0), atol=1e-3)  # not on the simplex
    assert torch.allclose(dirichlet_sample(alpha, eps, normalise=True), raw / raw.sum(), atol=1e-6)
    samples = dirichlet_sample(alpha.expand(20000, 3), normalise=True)
    assert torch.allclose(samples.sum(1), torch.ones(20000))
    # Larger alpha -> larger share on average.
    mean = samples.mean(0)
    assert mean[2] > mean[1] > mean[0]


def test_vae_feeds_the_decoder_the_raw_sample_unless_told(monkeypatch):
    torch.manual_seed(0)
    z, onehot = torch.randn(4, 6), F.one_hot(torch.tensor([0, 1, 2, 0]), 3).float()
    eps = torch.rand(4, 3)
    for normalise in (False, True):
        vae = DirichletVAE(6, 3, normalise_sample=normalise)
        alpha, logits = vae(z, onehot, eps)
        u = dirichlet_sample(alpha, eps, normalise=normalise)
        assert torch.allclose(logits, vae.decode(z, u), atol=1e-6)


def test_kl_term_matches_direct_formula():
    alpha = torch.tensor([[1.5, 2.0, 4.0], [3.0, 1.2, 1.1]], dtype=torch.float64)
    prior = torch.tensor([[1.3, 6.3, 1.3], [6.3, 1.3, 1.3]], dtype=torch.float64)
    a, p = alpha.numpy(), prior.numpy()
    expected = (gammaln(p) - gammaln(a) + (a - p) * digamma(a)).sum()
    assert abs(kl_dirichlet(alpha, prior).item() - expected) < 1e-9


def test_kl_term_against_torch_distributions():
    """The paper's (NPC's) closed form drops the terms of KL(Dir(alpha) || Dir(prior)) that depend
    only on the totals a0 = sum(alpha), p0 = sum(prior): lgamma(a0) - lgamma(p0) - (a0 - p0) *
    digamma(a0). It is exact when the totals agree, and off by exactly those terms otherwise
    (for the two rows below: 0.0 and +1.0980 nats, against exact KLs of 4.5937 and 0.5035).
    The paper's form is kept; this pins how far it is from the exact divergence."""
    from torch.distributions import Dirichlet, kl_divergence

    alpha = torch.tensor([[1.5, 2.0, 4.0], [3.0, 1.2, 1.1]], dtype=torch.float64)
    prior = torch.tensor([[1.0, 5.5, 1.0], [6.3, 1.3, 1.3]], dtype=torch.float64)  # totals 7.5 / 5.3, 8.9
    exact = kl_divergence(Dirichlet(alpha), Dirichlet(prior))  # [2]
    paper = torch.stack([kl_dirichlet(alpha[i : i + 1], prior[i : i + 1]) for i in range(2)])
    a0, p0 = alpha.sum(1), prior.sum(1)
    totals = torch.lgamma(a0) - torch.lgamma(p0) - (a0 - p0) * torch.digamma(a0)
    torch.testing.assert_close(paper, exact - totals, atol=1e-9, rtol=0)
    assert abs(paper[0] - exact[0]) < 1e-9  # equal totals: the same value
    assert paper[1] - exact[1] == pytest.approx(1.0980, abs=1e-4)
    assert exact.tolist() == pytest.approx([4.5937, 0.5035], abs=1e-4)


def test_dirichlet_sample_inverts_the_gamma_cdf_near_zero():
    """u_k is the small-eps inverse of Gamma(alpha_k, 1)'s CDF, F(x) ~ x^a / (a * Gamma(a)):
    against scipy's exact quantile it agrees in the lower tail (relative error about x / (a + 1))
    and is far off at the median."""
    from scipy.stats import gamma

    alpha = torch.tensor([[0.5, 1.0, 2.0, 4.0]], dtype=torch.float64)
    for eps, tolerance in ((1e-9, 3e-3), (1e-6, 0.015), (1e-3, 0.09)):
        u = dirichlet_sample(alpha, torch.full_like(alpha, eps))
        exact = torch.as_tensor(gamma.ppf(eps, alpha.numpy()))
        assert ((u - exact).abs() / exact).max() < tolerance, eps
    u = dirichlet_sample(alpha, torch.full_like(alpha, 0.5))  # the median: 14% to 49% off
    assert (u[0] / torch.as_tensor(gamma.ppf(0.5, alpha[0].numpy())) - 1).abs().min() > 0.1


def test_reconstruction_is_summed_bce():
    logits, target = torch.randn(5, 3), F.one_hot(torch.tensor([0, 1, 2, 1, 0]), 3).float()
    expected = -(target * F.logsigmoid(logits) + (1 - target) * F.logsigmoid(-logits)).sum()
    assert torch.allclose(reconstruction_loss(logits, target), expected, atol=1e-5)


def test_coregularization_zero_when_models_agree_positive_otherwise():
    alpha = torch.rand(7, 4) * 3 + 1.5
    assert coregularization(torch.stack([alpha, alpha])).abs().item() < 1e-6
    other = torch.rand(7, 4) * 3 + 1.5
    reg = coregularization(torch.stack([alpha, other]))
    a, b = dirichlet_mean(alpha), dirichlet_mean(other)
    mean = (a + b) / 2
    expected = (mean * (mean / a).log()).sum() + (mean * (mean / b).log()).sum()
    assert reg.item() > 0 and abs(reg.item() - expected.item()) < 1e-5


def test_stage2_loss_is_the_spec_loss_model_by_model():
    """Stage 2's loss, written out from the spec: mean_m (recon_m + beta * KL_m) +
    lambda_t * sum_m KL(a || abar_m) / M, each model with its own z, prior and draws."""
    from src.stage2.train_stage2 import stage2_loss

    torch.manual_seed(0)
    vaes = [DirichletVAE(input_dim=10, num_classes=4) for _ in range(2)]
    zs = [torch.randn(6, 10) for _ in vaes]
    onehot = F.one_hot(torch.tensor([0, 3, 1, 1, 2, 0]), 4).float()
    priors = 1.25 + 5 * torch.rand(2, 6, 4)
    eps = torch.rand(2, 6, 4)
    beta, lambda_t = 0.7, 2.0
    alphas, terms = [], []
    for m, (vae, z) in enumerate(zip(vaes, zs)):
        alpha, logits = vae(z, onehot, eps[m])
        alphas.append(alpha)
        terms.append(reconstruction_loss(logits, onehot) + beta * kl_dirichlet(alpha, priors[m]))
    abar = [(a - 1) / (a - 1).sum(-1, keepdim=True) for a in alphas]
    mean = (abar[0] + abar[1]) / 2
    coreg = sum((mean * (mean / b).log()).sum() for b in abar)
    expected = (terms[0] + terms[1]) / 2 + lambda_t * coreg / 2
    loss = stage2_loss(vaes, zs, onehot, list(priors), beta, lambda_t, list(eps))
    assert torch.allclose(loss, expected, rtol=1e-5)
    # before the co-regularisation starts (lambda_t = 0) only the models' own terms count
    loss = stage2_loss(vaes, zs, onehot, list(priors), beta, 0.0, list(eps))
    assert torch.allclose(loss, expected - lambda_t * coreg / 2, rtol=1e-5)


def test_stage1_coregularization_zero_when_models_agree():
    logits = torch.randn(8, 5)
    labels = torch.randint(0, 5, (8,))
    same = coregularized_loss(torch.stack([logits, logits]), labels, alpha=5.0)
    assert torch.allclose(same, F.cross_entropy(logits, labels), atol=1e-6)
    different = coregularized_loss(torch.stack([logits, torch.randn(8, 5)]), labels, alpha=5.0)
    no_reg = coregularized_loss(torch.stack([logits, torch.randn(8, 5)]), labels, alpha=0.0)
    assert different.item() > 0 and no_reg.item() > 0


@pytest.mark.parametrize("on_disk", [False, True])
def test_trajectories_gather_rows_without_building_the_whole_matrix(on_disk, tmp_path):
    from src.stage2.train_stage2 import Trajectories
    from src.storage.row_file import RowFile

    rng = torch.Generator().manual_seed(0)
    buffer = torch.randn(2, 10, 3, 4, generator=rng).half()  # per model [N, E, D], as stage 1 stores it
    models = ([RowFile.from_array(tmp_path / f"t{m}.npy", buffer[m].numpy()) for m in range(2)] if on_disk
              else list(buffer.numpy()))
    view = Trajectories(models, torch.device("cpu"))
    assert view.input_dim == 12 and view.num_models == 2
    z = view(1, [7, 2])  # z^m = [h^1; h^2; h^3] of rows 7 and 2 -> [2, E*D] float32
    expected = torch.stack([torch.cat([buffer[1, i, e] for e in range(3)]) for i in (7, 2)]).float()
    assert z.dtype == torch.float32 and torch.equal(z, expected)
    last = Trajectories(models, torch.device("cpu"), slice(-1, None))  # the "last epoch only" ablation
    assert last.input_dim == 4 and torch.equal(last(0, [3]), buffer[0, 3, 2][None].float())


def test_bf16_z_products_give_float32_outputs_and_weight_gradients():
    """ConstantInputLinear: the products of bf16-rounded z and W, accumulated in float32; the
    weight gradient is that of those products, returned in float32 for Adam; z gets none."""
    from src.accel.split_linear import ConstantInputLinear

    gen = torch.Generator().manual_seed(0)
    z = torch.randn(16, 300, generator=gen).half()  # stored half precision, as stage 1 writes it
    layer = torch.nn.Linear(300, 7)
    grad_out = torch.randn(16, 7, generator=gen)

    out = ConstantInputLinear.apply(z.bfloat16(), layer.weight, layer.bias)
    out.backward(grad_out)
    assert out.dtype == torch.float32 and layer.weight.grad.dtype == torch.float32
    w_bf16 = layer.weight.detach().bfloat16().float()
    expected = z.bfloat16().float() @ w_bf16.T + layer.bias.detach()
    assert torch.allclose(out, expected, rtol=1e-2, atol=1e-2)  # bf16 output rounding only
    expected_grad = grad_out.bfloat16().float().T @ z.bfloat16().float()
    assert torch.allclose(layer.weight.grad, expected_grad, rtol=1e-2, atol=1e-2)
    assert torch.allclose(layer.bias.grad, grad_out.sum(0))
    # and close to the float32 layer itself
    reference = torch.nn.functional.linear(z.float(), layer.weight.detach(), layer.bias.detach())
    assert (out - reference).abs().max() < 0.05 * reference.abs().max()


def test_vae_with_bf16_z_trains_like_float32():
    """Stage 2 with bf16 z products (a CPU run with --precision bf16) follows the float32 run."""
    import numpy as np

    from src.accel.stage2 import Stage2Speedups
    from src.stage2.train_stage2 import Stage2Settings, Trajectories, train_stage2

    rng = np.random.default_rng(0)
    n, classes = 96, 4
    labels = rng.integers(0, classes, n)
    centres = rng.normal(size=(classes, 3, 16))
    embeddings = [(centres[labels] + rng.normal(size=(n, 3, 16))).astype(np.float16) for _ in range(2)]
    priors = [np.full((n, classes), 1.25) + 5 * np.eye(classes)[labels] for _ in range(2)]

    def fit(dtype):
        trajectories = Trajectories(embeddings, torch.device("cpu"), dtype=dtype)
        vaes, history = train_stage2(trajectories, np.arange(n), labels, priors, classes,
                                     Stage2Settings(total_iter=4, batch_size=32, lr=1e-2), show_progress=False,
                                     speedups=Stage2Speedups())
        with torch.no_grad():
            alpha = vaes[0].alpha_all_labels(trajectories(0, np.arange(n)))
        return [h["loss"] for h in history], alpha

    loss32, alpha32 = fit(torch.float32)
    loss16, alpha16 = fit(torch.bfloat16)
    assert loss16 == pytest.approx(loss32, rel=2e-2)
    assert torch.allclose(alpha16, alpha32, rtol=5e-2, atol=5e-2)
