"""Constraints (projections after each step), the callback, sparsity report, config registry."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

import goodfit.regularize as R


def _net() -> nn.Module:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Conv1d(1, 4, 3)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(10.0)
    return net


def test_max_norm_per_unit():
    net = _net()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    R.MaxNorm(1.5)(net)
    for name in ("0.weight", "2.weight"):
        w0 = before[name].flatten(1)
        n0 = w0.norm(dim=1, keepdim=True)
        expect = torch.where(n0 > 1.5, w0 * 1.5 / n0, w0)  # w_u min(1, c/||w_u||)
        torch.testing.assert_close(net.get_parameter(name).detach().flatten(1), expect)
    # biases and BatchNorm parameters are not touched by default
    for name in ("0.bias", "1.weight", "1.bias", "2.bias"):
        torch.testing.assert_close(net.get_parameter(name).detach(), before[name])


def test_max_norm_leaves_small_units_alone():
    lin = nn.Linear(3, 2, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.1, 0.2, 0.2], [3.0, 4.0, 0.0]]))
    R.MaxNorm(1.0)(lin)
    expect = torch.tensor([[0.1, 0.2, 0.2], [0.6, 0.8, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(lin.weight.detach(), expect)


def test_unit_norm_and_non_neg():
    net = _net()
    R.UnitNorm()(net)
    norms = net[0].weight.detach().norm(dim=1)
    torch.testing.assert_close(norms, torch.ones(5, dtype=torch.float64))
    net = _net()
    before = net[0].weight.detach().clone()
    R.NonNeg(pattern="0")(net)
    torch.testing.assert_close(net[0].weight.detach(), before.clamp_min(0))
    assert (net[2].weight < 0).any()  # not selected


def test_norm_ball_l2_and_inf():
    net = _net()
    before = [p.detach().clone() for p in (net[0].weight, net[2].weight)]
    R.NormBall(2.0)(net)
    for b, p in zip(before, (net[0].weight, net[2].weight), strict=True):
        expect = b * min(1.0, 2.0 / float(b.norm()))  # projection onto ||W||_2 <= c
        torch.testing.assert_close(p.detach(), expect)
    R.NormBall(0.1, p="inf")(net)
    assert float(net[0].weight.detach().abs().max()) <= 0.1


def test_project_l1_ball_kkt():
    # Euclidean projection onto {||x||_1 <= r} is soft-thresholding with ||x||_1 = r (Duchi 2008)
    g = torch.Generator().manual_seed(0)
    v = torch.randn(50, generator=g, dtype=torch.float64)
    x = R.project_l1_ball(v, 3.0)
    assert float(x.abs().sum()) == pytest.approx(3.0, rel=1e-12)
    nz = x != 0
    theta = (v.abs() - x.abs())[nz]
    torch.testing.assert_close(theta, theta[0].expand_as(theta))  # one common threshold
    assert bool((v.abs()[~nz] <= theta[0] + 1e-12).all())  # zeros are below it
    assert bool((torch.sign(x[nz]) == torch.sign(v[nz])).all())
    inside = v * 0.01
    torch.testing.assert_close(R.project_l1_ball(inside, 3.0), inside)


def test_constraint_callback_after_step():
    net = _net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    cb = R.ConstraintCallback([R.MaxNorm(1.0)])
    x = torch.randn(3, 1, 6, dtype=torch.float64)
    net[2](x).sum().backward()
    opt.step()
    cb.on_after_step(SimpleNamespace(model=net))
    assert float(net[2].weight.detach().flatten(1).norm(dim=1).max()) <= 1.0 + 1e-12
    assert cb.overrides("on_after_step")


def test_sparsity_report_and_callback():
    net = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 2))
    with torch.no_grad():
        net[0].weight[:2].zero_()  # 8 of 20 zeros
        net[2].weight.zero_()
        net[0].bias.zero_()  # biases are not counted by default
    assert R.sparsity_report(net) == {"0": 8 / 20, "2": 1.0}
    rep = R.sparsity_report(net, include_bias_and_norm=True)
    assert rep["0"] == pytest.approx((8 + 5) / 25) and rep["1"] == 0.5  # BN shift starts at 0
    logged: dict[str, float] = {}
    trainer = SimpleNamespace(model=net, log=lambda k, v: logged.__setitem__(k, v))
    R.SparsityCallback().on_epoch_end(trainer)
    assert logged == {"sparsity/0": 0.4, "sparsity/2": 1.0, "sparsity/total": 18 / 30}
