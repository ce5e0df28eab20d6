"""Output noise, weight noise and adversarial examples, each against a hand computation or
torch's own function: label smoothing equals torch's, weight noise is absent in eval mode and has
the configured variance in training, FGSM equals x + eps sign(grad_x L) (clipped), PGD stays in
the eps-ball and the data range."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from goodfit.data.adversarial import (
    AdversarialTraining,
    fgsm,
    in_standardized_units,
    pgd,
    robust_accuracy,
)
from goodfit.regularize.output_noise import LabelSmoothingLoss, SoftTargetNoise, TargetNoise
from goodfit.regularize.weight_noise import WeightNoise, add_weight_noise


def _logits(n=16, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=g), torch.randint(0, k, (n,), generator=g)


# -- output noise --------------------------------------------------------------------------------


def test_label_smoothing_is_torchs_in_training_and_plain_cross_entropy_in_evaluation():
    out, y = _logits()
    loss = LabelSmoothingLoss(0.2)
    eps, k = 0.2, out.shape[1]
    # Szegedy et al.: the target (1 - eps) e_y + eps / K, written out by hand
    target = (1 - eps) * F.one_hot(y, k) + eps / k
    by_hand = -(target * F.log_softmax(out, dim=1)).sum(dim=1).mean()
    torch.testing.assert_close(loss(out, y), F.cross_entropy(out, y, label_smoothing=0.2))
    torch.testing.assert_close(loss(out, y), by_hand)
    with torch.no_grad():
        torch.testing.assert_close(loss(out, y), F.cross_entropy(out, y))


def test_soft_target_noise_mixes_the_one_hot_with_a_dirichlet_draw():
    x, y = torch.zeros(8, 3), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    torch.manual_seed(3)
    _, soft = SoftTargetNoise(0.3, 4)(x, y)
    torch.manual_seed(3)
    u = torch.distributions.Dirichlet(torch.ones(4)).sample((8,))
    torch.testing.assert_close(soft, 0.7 * F.one_hot(y, 4).float() + 0.3 * u)
    torch.testing.assert_close(soft.sum(dim=1), torch.ones(8))
    assert (soft >= 0).all() and (soft.argmax(dim=1) == y).all()  # 0.7 + 0.3 u_y > 0.3


def test_target_noise_adds_gaussian_noise_of_the_given_std():
    y = torch.zeros(20000, 1)
    torch.manual_seed(0)
    _, noisy = TargetNoise(0.5)(torch.zeros(20000, 1), y)
    # sample std of 20000 normals: relative standard error 1/sqrt(2n) = 0.5 %; 3 % is > 5 sigma
    assert abs(float(noisy.std()) - 0.5) < 0.015
    with pytest.raises(TypeError, match="regression"):
        TargetNoise(0.1)(torch.zeros(2, 1), torch.tensor([0, 1]))


# -- weight noise --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["additive", "multiplicative"])
def test_weight_noise_has_the_configured_variance_in_training_and_none_in_eval(kind):
    torch.manual_seed(0)
    layer = nn.Linear(200, 200)
    raw = layer.weight.detach().clone()
    add_weight_noise(layer, 0.05, kind, types=["Linear"])
    torch.testing.assert_close(layer.parametrizations.weight.original, raw, rtol=0, atol=0)
    layer.eval()
    assert torch.equal(layer.weight, raw)
    x = torch.randn(4, 200)
    torch.testing.assert_close(layer(x), F.linear(x, raw, layer.bias), rtol=0, atol=0)
    layer.train()
    noise = layer.weight.detach() - raw
    if kind == "multiplicative":
        noise = noise / raw
    # 40000 draws: the sample std's relative standard error is 1/sqrt(2n) = 0.35 %; 2 % is 5.7x
    assert abs(float(noise.std()) / 0.05 - 1) < 0.02
    assert abs(float(noise.mean())) < 5 * 0.05 / math.sqrt(noise.numel())
    assert not torch.equal(layer.weight, layer.weight)  # fresh noise at every access


def test_shuffled_weight_noise_adds_a_permutation_of_the_weights():
    torch.manual_seed(1)
    layer = nn.Linear(10, 7)
    raw = layer.weight.detach().clone()
    add_weight_noise(layer, 0.3, "shuffled", types=["Linear"])
    added = (layer.weight.detach() - raw) / 0.3
    torch.testing.assert_close(added.flatten().sort().values, raw.flatten().sort().values)
    assert not torch.allclose(added, raw)


def test_weight_noise_gradient_reaches_the_stored_weight_and_types_are_checked():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    names = add_weight_noise(net, 0.1, types=["Linear"])
    assert names == ["0", "2"]
    net(torch.randn(5, 3)).sum().backward()
    assert net[0].parametrizations.weight.original.grad is not None
    with pytest.raises(ValueError, match="match no layer"):
        add_weight_noise(nn.Sequential(nn.ReLU()), 0.1)
    with pytest.raises(ValueError, match="kind"):
        WeightNoise(0.1, "gaussian")


# -- adversarial ---------------------------------------------------------------------------------


def _net_and_data(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    x = torch.rand(32, 6)
    y = torch.randint(0, 3, (32,))
    return net, x, y


def _grad_x(net, x, y):
    return torch.func.grad(lambda z: F.cross_entropy(net(z), y))(x)


def test_fgsm_is_x_plus_eps_sign_of_the_input_gradient_clipped_to_the_range():
    net, x, y = _net_and_data()
    expected = x + 0.1 * _grad_x(net, x, y).sign()
    torch.testing.assert_close(fgsm(net, x, y, 0.1), expected)
    torch.testing.assert_close(fgsm(net, x, y, 0.1, lower=0.0, upper=1.0), expected.clamp(0.0, 1.0))
    assert all(p.grad is None for p in net.parameters())  # only grad_x was computed


def test_pgd_stays_in_the_eps_ball_and_the_range_and_one_full_step_is_fgsm():
    net, x, y = _net_and_data()
    torch.manual_seed(0)
    adv = pgd(net, x, y, 0.05, steps=7, lower=0.0, upper=1.0)
    assert float((adv - x).abs().max()) <= 0.05 + 1e-7
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    one = pgd(net, x, y, 0.1, steps=1, alpha=0.1, random_start=False)
    torch.testing.assert_close(one, fgsm(net, x, y, 0.1))
    # PGD (a stronger attack) does not raise the loss less than FGSM on this model

    def loss(z):
        with torch.no_grad():
            return float(F.cross_entropy(net(z), y))

    assert loss(pgd(net, x, y, 0.1, steps=20, random_start=False)) >= loss(fgsm(net, x, y, 0.1))


def test_pgd_per_feature_budget_in_standardized_units():
    net, x, y = _net_and_data()
    mean, std = torch.full((1, 6), 0.5), torch.linspace(0.1, 0.6, 6).reshape(1, 6)
    eps, lo, hi = in_standardized_units(0.02, 0.0, 1.0, mean, std)
    z = (x - mean) / std
    adv = pgd(net, z, y, eps, steps=5, lower=lo, upper=hi)
    raw = adv * std + mean  # back to the data's units: within 0.02 of x and inside [0, 1]
    assert float((raw - x).abs().max()) <= 0.02 + 1e-6
    assert float(raw.min()) >= -1e-6 and float(raw.max()) <= 1 + 1e-6


def test_adversarial_training_replaces_the_first_ratio_of_the_batch():
    net, x, y = _net_and_data()
    xb, yb = AdversarialTraining(net, "fgsm", 0.1, ratio=0.25)(x, y)
    torch.testing.assert_close(xb[:8], fgsm(net, x[:8], y[:8], 0.1))
    assert torch.equal(xb[8:], x[8:]) and torch.equal(yb, y)
    xb, _ = AdversarialTraining(net, "pgd", 0.1, ratio=0.0)(x, y)
    assert xb is x


def test_robust_accuracy_at_zero_eps_is_the_clean_accuracy():
    net, x, y = _net_and_data()
    clean = float((net(x).argmax(dim=1) == y).float().mean())
    assert robust_accuracy(net, x, y, "fgsm", 0.0) == pytest.approx(clean)
    assert robust_accuracy(net, x, y, "pgd", 0.3, steps=10) <= clean
