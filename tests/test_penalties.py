"""Penalties vs. the notes' formulas transcribed by hand (seed 000 §1.1.3, seed 001 / GBC 7.1)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import goodfit.regularize as R


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(2, 3, 3),  # 0
        nn.BatchNorm1d(3),  # 1
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 4, 5),  # 4
        nn.LayerNorm(5),  # 5
        nn.GroupNorm(1, 5),  # 6
        nn.Linear(5, 2),  # 7
    ).double()


def _weights(net):
    return [net[0].weight, net[4].weight, net[7].weight]


def _sq(ws):
    return sum(float((w.detach() ** 2).sum()) for w in ws)


def _abs(ws):
    return sum(float(w.detach().abs().sum()) for w in ws)


def test_l2_excludes_bias_and_norm_by_default():
    net = _net()
    pen = R.l2(0.3)
    assert pen(net).item() == pytest.approx(0.3 / 2 * _sq(_weights(net)), rel=1e-12)
    assert pen.selected(net) == {"l2": ["0.weight", "4.weight", "7.weight"]}
    pen(net).backward()
    for name, p in net.named_parameters():
        if name in ("0.weight", "4.weight", "7.weight"):
            torch.testing.assert_close(p.grad, 0.3 * p.detach())  # GBC 7.3: alpha w
        else:  # biases, BatchNorm/LayerNorm/GroupNorm gains and shifts get nothing
            assert p.grad is None, name


def test_include_bias_and_norm_opt_in():
    net = _net()
    pen = R.l1(0.2, include_bias_and_norm=True)
    allp = list(net.parameters())
    assert len(pen.selected(net)["l1"]) == len(allp) == 12  # 3 layers x 2 + 3 norms x 2
    assert pen(net).item() == pytest.approx(0.2 * _abs(allp), rel=1e-12)


def test_l2_batch_scaling_seed000():
    net = _net()
    m = 16
    pen = R.l2(0.5, batch_size=m)  # seed 000: lambda / (2m) ||W||^2
    assert pen(net).item() == pytest.approx(0.5 / (2 * m) * _sq(_weights(net)), rel=1e-12)
    with pytest.raises(ValueError, match="batch_size"):
        R.l2(0.5, batch_size=0)


def test_l1_gradient_is_lambda_sign():
    # seed 000: w_new = w - lr grad L - lambda sign(w); sign(0) = 0 at an exact zero.
    w = nn.Parameter(torch.tensor([[-2.0, 0.0, 3.0]], dtype=torch.float64))
    lin = nn.Linear(3, 1, bias=False).double()
    lin.weight = w
    R.l1(0.7)(lin).backward()
    torch.testing.assert_close(w.grad, 0.7 * torch.tensor([[-1.0, 0.0, 1.0]], dtype=torch.float64))


def test_elastic_net_three_forms():
    net = _net()
    ws = _weights(net)
    sq, ab = _sq(ws), _abs(ws)
    # seed 000: lambda2/(2m)||W||^2 + lambda1 ||W||_1
    v = R.elastic_net(l1=0.1, l2=0.4, batch_size=8)(net).item()
    assert v == pytest.approx(0.4 / 16 * sq + 0.1 * ab, rel=1e-12)
    # seed 001: lambda (alpha ||w||^2 + (1 - alpha) ||w||_1)
    v = R.elastic_net(lam=0.3, alpha=0.25)(net).item()
    assert v == pytest.approx(0.3 * (0.25 * sq + 0.75 * ab), rel=1e-12)
    # scikit-learn: lambda (r ||w||_1 + (1 - r)/2 ||w||^2)
    v = R.elastic_net(lam=0.3, l1_ratio=0.25)(net).item()
    assert v == pytest.approx(0.3 * (0.25 * ab + 0.375 * sq), rel=1e-12)


@pytest.mark.parametrize("bad", [{"alpha": 1.5}, {"alpha": -0.1}, {"l1_ratio": 2.0}])
def test_elastic_alpha_outside_unit_interval(bad):
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        R.elastic_net(lam=0.1, **bad)


def test_elastic_mixed_forms_rejected():
    with pytest.raises(ValueError, match="either"):
        R.elastic_net(l1=0.1, lam=0.2, alpha=0.5)
    with pytest.raises(ValueError, match="exactly one"):
        R.elastic_net(lam=0.2)


@pytest.mark.parametrize("factory", [R.l1, R.l2])
def test_negative_coefficient_rejected(factory):
    with pytest.raises(ValueError, match=">= 0"):
        factory(-1e-3)
    with pytest.raises(ValueError, match=">= 0"):
        factory(float("nan"))


def test_per_layer_coefficients_hit_the_right_layers():
    # seed 000: sum_j Lambda_j ||W_j||_{p_j}^{p_j}; per-layer rules replace the global term
    net = _net()
    pen = R.Penalty(
        [R.Term(p=2.0, coef=0.1, factor=0.5, label="l2")],
        per_layer=[
            {"pattern": "0", "coef": 2.0, "p": 1},
            {"type": "Linear", "coef": 3.0, "p": 3},  # claims 4.weight and 7.weight
        ],
    )
    w0, w4, w7 = _weights(net)
    w0, w4, w7 = (w.detach() for w in (w0, w4, w7))
    expect = 2.0 * float(w0.abs().sum()) + 3.0 * sum(
        float((w.detach().abs() ** 3).sum()) for w in (w4, w7)
    )
    assert pen(net).item() == pytest.approx(expect, rel=1e-12)
    sel = pen.selected(net)
    assert sel == {"per_layer[0]:0": ["0.weight"], "per_layer[1]:Linear": ["4.weight", "7.weight"]}
    pen(net).backward()
    # gradient of Lambda |w|^p is Lambda p |w|^(p-1) sign(w) (seed 000's per-layer update)
    g0, g4 = net[0].weight.grad, net[4].weight.grad
    torch.testing.assert_close(g4, 3.0 * 3 * w4.abs() ** 2 * w4.sign())
    torch.testing.assert_close(g0, 2.0 * w0.sign())
    assert net[0].bias.grad is None and net[4].bias.grad is None


def test_per_layer_glob_regex_and_global_rest():
    net = _net()
    pen = R.l2(0.2, per_layer=[{"pattern": "re:[47]", "coef": 1.0, "p": 2}])
    w0, w4, w7 = _weights(net)
    expect = 0.1 * _sq([w0]) + 1.0 * _sq([w4, w7])
    assert pen(net).item() == pytest.approx(expect, rel=1e-12)
    pen2 = R.l2(0.2, exclude=["0"])
    assert pen2(net).item() == pytest.approx(0.1 * _sq([w4, w7]), rel=1e-12)


def test_pattern_matching_nothing_names_it():
    net = _net()
    with pytest.raises(ValueError, match=r"'encoder\.\*'"):
        R.per_layer([{"pattern": "encoder.*", "coef": 1.0}], model=net)
    with pytest.raises(ValueError, match="'Conv2d'"):
        R.per_layer([{"type": "Conv2d", "coef": 1.0}], model=net)
    with pytest.raises(ValueError, match="'head'"):
        R.l2(0.1, exclude=["head"], model=net)
    # a pattern that only hits a normalization layer selects nothing by default
    with pytest.raises(ValueError, match="include_bias_and_norm"):
        R.per_layer([{"pattern": "1", "coef": 1.0}], model=net)


def test_schedule_and_callback():
    net = _net()
    pen = R.l2(lambda step: 0.01 * step)
    sq = _sq(_weights(net))
    assert pen(net).item() == 0.0
    cb = R.PenaltyScheduleCallback(pen)
    cb.on_batch_start(SimpleNamespace(step=7))
    assert pen(net).item() == pytest.approx(0.07 / 2 * sq, rel=1e-12)
    assert pen.coefficients() == {"l2": pytest.approx(0.07)}
    bad = R.l1(lambda step: -1.0)
    with pytest.raises(ValueError, match="schedule"):
        bad(net)


def test_prior_equals_negative_log_density():
    # seed 000: L_MAP = L - log P(W); Gaussian -> L2, Laplace -> L1 (constants dropped)
    net = _net()
    w = torch.cat([x.detach().flatten() for x in _weights(net)])
    sigma, b = 0.3, 0.2
    gauss = torch.distributions.Normal(torch.tensor(0.0, dtype=w.dtype), sigma)
    nll = -gauss.log_prob(w).sum() + w.numel() * math.log(1 / (sigma * math.sqrt(2 * math.pi)))
    assert R.from_prior("gaussian", sigma)(net).item() == pytest.approx(nll.item(), rel=1e-10)
    lap = torch.distributions.Laplace(torch.tensor(0.0, dtype=w.dtype), b)
    nll = -lap.log_prob(w).sum() - w.numel() * math.log(2 * b)
    assert R.from_prior("laplace", b)(net).item() == pytest.approx(nll.item(), rel=1e-10)
    assert R.prior_coefficient("gaussian", 0.5, n_data=100) == pytest.approx(1 / (0.25 * 100))
    with pytest.raises(ValueError, match="gaussian"):
        R.prior_coefficient("cauchy", 1.0)
    with pytest.raises(ValueError, match="scale"):
        R.prior_coefficient("laplace", 0.0)


def test_penalty_sum_and_tying():
    a, b = nn.Linear(3, 2).double(), nn.Linear(3, 2).double()
    net = nn.ModuleDict({"a": a, "b": b})
    tie = R.tying_penalty(a, b, coef=0.5)
    expect = 0.5 * sum(
        float(((pa - pb).detach() ** 2).sum())
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True)
    )
    assert tie(net).item() == pytest.approx(expect, rel=1e-12)
    tot = R.l2(0.1) + tie
    assert tot(net).item() == pytest.approx(expect + 0.05 * _sq([a.weight, b.weight]), rel=1e-12)
    tot.set_step(3)
    assert tie._step == 3
    with pytest.raises(ValueError, match="shape"):
        R.tying_penalty(nn.Linear(3, 2), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="only in A"):
        R.tying_penalty(nn.Linear(3, 2), nn.Linear(3, 2, bias=False))


def test_share_parameters():
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    R.share_parameters(a, b)
    assert a.weight is b.weight and a.bias is b.bias
    net = nn.Sequential(a, b)
    assert len(list(net.parameters())) == 2
    x = torch.randn(4, 3)
    (a(x).sum() + b(x).sum()).backward()
    torch.testing.assert_close(a.weight.grad, 2 * x.sum(0).expand(2, 3))
    with pytest.raises(ValueError, match="shape"):
        R.share_parameters(nn.Linear(3, 2), nn.Linear(2, 2))
