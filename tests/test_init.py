"""Initializers vs. their formulas (seed 004): bounds, sample variance and distribution shape.

Statistical tolerances: a weight of shape (512, 1024) gives N = 524288 i.i.d. draws. The sample
variance s^2 of N draws has relative standard error sqrt((kurtosis - 1) / N): 1.2e-3 for a
uniform (kurtosis 1.8), 2.0e-3 for a normal (3), 1.6e-3 for a normal truncated at +-2 (2.37).
We allow rel=1e-2, i.e. at least 5 standard errors (fixed seeds make the tests deterministic; the
bound says a correct implementation passes for essentially any seed, while a wrong factor such
as 2/m vs 1/m or sqrt(6) vs sqrt(3) is off by far more). The distribution shape is checked with a
Kolmogorov-Smirnov test on 20000 draws against the exact CDF, rejecting at p < 1e-3.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats
from torch import nn

import goodfit.init as gi

M, N_OUT = 1024, 512  # fan_in m, fan_out n of a (512, 1024) Linear weight
REL = 1e-2


def _draw(fn, shape=(N_OUT, M), seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    w = torch.empty(*shape, dtype=torch.float64)
    fn(w, generator=g, **kw)
    return w


def _ks(w, dist):
    sub = w.flatten()[:20000].numpy()
    return stats.kstest(sub, dist.cdf).pvalue


UNIFORMS = [
    ("glorot_uniform", {}, math.sqrt(6 / (M + N_OUT))),  # seed 004 eq. (1)
    ("he_uniform", {}, math.sqrt(6 / M)),  # sqrt(2) * sqrt(3/m)
    ("torch_default", {}, 1 / math.sqrt(M)),  # seed 004 eq. (2)
    ("glorot_uniform", {"gain": 2.0}, 2.0 * math.sqrt(6 / (M + N_OUT))),
    ("he_uniform", {"gain": 1.0}, math.sqrt(3 / M)),
]


@pytest.mark.parametrize(("name", "kw", "bound"), UNIFORMS)
def test_uniform_schemes(name, kw, bound):
    w = _draw(gi.SCHEMES[name], **kw)
    amax = float(w.abs().max())
    assert amax <= bound
    # P(all N draws inside (1 - 1e-3) b) = (1 - 1e-3)^N ~ e^-524: the bound is actually reached
    assert amax >= bound * (1 - 1e-3)
    assert float(w.var()) == pytest.approx(bound**2 / 3, rel=REL)
    assert _ks(w, stats.uniform(-bound, 2 * bound)) > 1e-3


NORMALS = [
    ("glorot_normal", {}, math.sqrt(2 / (M + N_OUT))),
    ("he_normal", {}, math.sqrt(2 / M)),
    ("he_normal", {"gain": 5 / 3}, 5 / 3 / math.sqrt(M)),
]


@pytest.mark.parametrize(("name", "kw", "std"), NORMALS)
def test_normal_schemes(name, kw, std):
    w = _draw(gi.SCHEMES[name], **kw)
    assert abs(float(w.mean())) < 5 * std / math.sqrt(w.numel())
    assert float(w.std()) ** 2 == pytest.approx(std**2, rel=REL)
    assert _ks(w, stats.norm(0, std)) > 1e-3


def test_truncated_normal_constant_is_the_truncated_std():
    assert stats.truncnorm(-2, 2).std() == pytest.approx(gi.TRUNCATED_NORMAL_STD, rel=1e-14)


@pytest.mark.parametrize(
    ("mode", "rescale"), [("fan_in", True), ("fan_in", False), ("fan_out", True)]
)
def test_lecun_truncated_normal(mode, rescale):
    w = _draw(gi.lecun_normal, mode=mode, rescale=rescale)
    n = M if mode == "fan_in" else N_OUT
    sigma = math.sqrt(1 / n) / (gi.TRUNCATED_NORMAL_STD if rescale else 1.0)
    # no value beyond 2 sigma (outliers redrawn), and the bound is approached
    assert float(w.abs().max()) <= 2 * sigma
    assert float(w.abs().max()) >= 2 * sigma * (1 - 1e-2)
    # Flax: variance exactly 1/n; literal seed rule: 0.7737 / n
    target = 1 / n if rescale else stats.truncnorm(-2, 2).var() / n
    assert float(w.var()) == pytest.approx(target, rel=REL)
    assert _ks(w, stats.truncnorm(-2, 2, scale=sigma)) > 1e-3


def test_conv_fans():
    w = torch.empty(32, 16, 3, 3)
    assert gi.fans(w) == (16 * 9, 32 * 9)
    w = _draw(gi.he_normal, shape=(256, 64, 5, 5))
    assert float(w.var()) == pytest.approx(2 / (64 * 25), rel=REL)
    with pytest.raises(ValueError, match="2 dims"):
        gi.fans(torch.empty(5))


def test_orthogonal():
    w = _draw(gi.orthogonal, shape=(64, 128), gain=1.5)
    torch.testing.assert_close(w @ w.T, 2.25 * torch.eye(64, dtype=torch.float64))
    w = _draw(gi.orthogonal, shape=(16, 4, 3))
    f = w.flatten(1)
    torch.testing.assert_close(f.T @ f, torch.eye(12, dtype=torch.float64))


def test_torch_default_matches_pytorch_linear():
    torch.manual_seed(123)
    ref = nn.Linear(300, 200)
    torch.manual_seed(123)
    w = torch.empty(200, 300)
    gi.torch_default(w)
    torch.testing.assert_close(w, ref.weight.detach())


def test_apply_by_layer_type_with_gains():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(M, N_OUT),
        nn.Tanh(),
        nn.BatchNorm1d(N_OUT),
        nn.Unflatten(1, (8, 64)),
        nn.Conv1d(8, 128, 5),
    ).double()
    net.requires_grad_(False)  # only values matter here
    gi.apply(net, "he_normal", nonlinearity="tanh", generator=torch.Generator().manual_seed(1))
    g = 5 / 3  # calculate_gain("tanh")
    assert float(net[0].weight.var()) == pytest.approx(g**2 / M, rel=REL)
    assert float(net[4].weight.var()) == pytest.approx(g**2 / (8 * 5), rel=5 * REL)  # 5120 draws
    assert float(net[0].bias.abs().max()) == 0.0 and float(net[4].bias.abs().max()) == 0.0
    assert bool((net[2].weight == 1).all())  # normalization layers keep their init
    gi.apply(net, "he_normal")  # default gain sqrt(2) (ReLU)
    assert float(net[0].weight.var()) == pytest.approx(2 / M, rel=REL)
    gi.apply(net, "glorot_uniform", gain=3.0, bias=0.1)
    b = 3.0 * math.sqrt(6 / (M + N_OUT))
    assert float(net[0].weight.abs().max()) <= b
    assert float(net[0].weight.var()) == pytest.approx(b**2 / 3, rel=REL)
    assert bool((net[0].bias == 0.1).all())
    gi.apply(net, "torch_default", bias="torch_default")
    assert 0.9 / math.sqrt(M) < float(net[0].bias.abs().max()) <= 1 / math.sqrt(M)
    before = net[0].bias.detach().clone()
    gi.apply(net, "lecun_normal", bias="keep", nonlinearity=("leaky_relu", 0.2))
    assert torch.equal(net[0].bias.detach(), before)
    gain = math.sqrt(2 / (1 + 0.2**2))
    assert float(net[0].weight.var()) == pytest.approx(gain**2 / M, rel=REL)


def test_apply_errors():
    net = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(ValueError, match="unknown init scheme 'he'"):
        gi.apply(net, "he")
    with pytest.raises(ValueError, match="bias must be"):
        gi.apply(net, "he_normal", bias="ones")
    with pytest.raises(ValueError, match="gain must be"):
        gi.apply(net, "he_normal", gain=-1.0)
    with pytest.raises(ValueError, match="nonlinearity"):
        gi.apply(net, "he_normal", nonlinearity="swishy")
    with pytest.raises(ValueError, match="no Linear"):
        gi.apply(nn.Sequential(nn.ReLU()), "he_normal")
    with pytest.raises(ValueError, match="mode"):
        gi.lecun_normal(torch.empty(3, 3), mode="avg")
