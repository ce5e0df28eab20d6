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


def _relu_net():
    """A ReLU MLP: the case where a gain taken from the activation used to creep in."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(M, N_OUT), nn.ReLU(), nn.Linear(N_OUT, 10)).double()
    return net.requires_grad_(False)


TRUNC = gi.TRUNCATED_NORMAL_STD
# (scheme, kind, bound or std of layer 0 with gain 1): the formulas of seed 004 and the papers
FORMULAS = [
    ("glorot_uniform", "uniform", math.sqrt(6 / (M + N_OUT))),  # seed 004 eq. (1)
    ("xavier_uniform", "uniform", math.sqrt(6 / (M + N_OUT))),
    ("glorot_normal", "normal", math.sqrt(2 / (M + N_OUT))),  # Glorot & Bengio: var 2/(m+n)
    ("he_uniform", "uniform", math.sqrt(6 / M)),  # He et al. 2015 [He+15]: var 2/m
    ("he_normal", "normal", math.sqrt(2 / M)),
    ("kaiming_normal", "normal", math.sqrt(2 / M)),
    ("torch_default", "uniform", 1 / math.sqrt(M)),  # seed 004 eq. (2)
    ("lecun_normal", "truncated", math.sqrt(1 / M) / TRUNC),  # seed 004 eq. (3), var 1/m
]


def _check_layer(w, kind, scale):
    """``w`` is U(+-scale), N(0, scale^2) or N(0, scale^2) truncated at +-2 scale (REL: see top)."""
    amax, var = float(w.abs().max()), float(w.var())
    if kind == "uniform":
        assert scale * (1 - 1e-3) <= amax <= scale
        assert var == pytest.approx(scale**2 / 3, rel=REL)
        assert _ks(w, stats.uniform(-scale, 2 * scale)) > 1e-3
    elif kind == "normal":
        assert var == pytest.approx(scale**2, rel=REL)
        assert _ks(w, stats.norm(0, scale)) > 1e-3
    else:
        assert 2 * scale * (1 - 1e-2) <= amax <= 2 * scale
        assert var == pytest.approx((scale * TRUNC) ** 2, rel=REL)
        assert _ks(w, stats.truncnorm(-2, 2, scale=scale)) > 1e-3


@pytest.mark.parametrize(("scheme", "kind", "scale"), FORMULAS, ids=[f[0] for f in FORMULAS])
def test_apply_without_gain_is_the_schemes_formula(scheme, kind, scale):
    """On a ReLU net, no gain by default: Glorot's bound is sqrt(6/(m+n)), not sqrt(2) times it;
    LeCun's variance is 1/m, not 2/m; torch_default is torch's default."""
    net = gi.apply(_relu_net(), scheme, generator=torch.Generator().manual_seed(3))
    _check_layer(net[0].weight, kind, scale)
    assert float(net[0].bias.abs().max()) == 0.0


GAINS = [
    ("glorot_uniform", "relu", math.sqrt(2)),
    ("glorot_uniform", 1.5, 1.5),
    ("glorot_normal", "tanh", 5 / 3),
    ("torch_default", 2.0, 2.0),
    ("lecun_normal", ("leaky_relu", 0.2), math.sqrt(2 / (1 + 0.2**2))),
    ("lecun_normal", ["leaky_relu", 0.2], math.sqrt(2 / (1 + 0.2**2))),  # a TOML list
    ("lecun_normal", "selu", 3 / 4),
]


@pytest.mark.parametrize(("scheme", "gain", "g"), GAINS)
def test_apply_with_an_explicit_gain_multiplies_the_formula(scheme, gain, g):
    kind, scale = next((k, s) for n, k, s in FORMULAS if n == scheme)
    net = gi.apply(_relu_net(), scheme, gain=gain, generator=torch.Generator().manual_seed(4))
    _check_layer(net[0].weight, kind, g * scale)


@pytest.mark.parametrize(
    ("gain", "g"), [(None, math.sqrt(2)), ("relu", math.sqrt(2)), ("tanh", 5 / 3), (1.0, 1.0)]
)
def test_he_gain_replaces_its_relu_factor(gain, g):
    """He's formula is var g^2/m with the ReLU gain sqrt(2) (He et al.: 2/m); a gain replaces it,
    as torch's kaiming_normal_(nonlinearity=...) (so gain="relu" is He's formula, not twice)."""
    net = gi.apply(_relu_net(), "he_normal", gain=gain, generator=torch.Generator().manual_seed(5))
    _check_layer(net[0].weight, "normal", g / math.sqrt(M))
    net = gi.apply(_relu_net(), "he_uniform", gain=gain, generator=torch.Generator().manual_seed(6))
    _check_layer(net[0].weight, "uniform", g * math.sqrt(3 / M))


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.Sequential(nn.Linear(300, 200), nn.ReLU(), nn.Linear(200, 7)),
        lambda: nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 8, (5, 3), groups=4)),
    ],
    ids=["linear", "conv2d"],
)
def test_torch_default_is_torchs_reset_parameters(make):
    """``torch_default`` with torch's bias draws what a freshly constructed layer holds:
    ``kaiming_uniform_(a=sqrt(5))``, bound sqrt(2/(1+5)) sqrt(3/fan_in) = 1/sqrt(fan_in), and a
    bias U(+-1/sqrt(fan_in)); same generator state, same draws in the same order."""
    torch.manual_seed(7)
    fresh = make()
    ours = make()
    torch.manual_seed(7)
    gi.apply(ours, "torch_default", bias="torch_default")
    fresh.requires_grad_(False)
    ours.requires_grad_(False)
    layers = [(a, b) for a, b in zip(fresh, ours, strict=True) if hasattr(a, "weight")]
    for a, b in layers:
        torch.testing.assert_close(b.weight, a.weight)
        torch.testing.assert_close(b.bias, a.bias)
        fan_in = gi.fans(a.weight)[0]
        bound = math.sqrt(2 / (1 + 5)) * math.sqrt(3 / fan_in)
        assert 0.9 * bound <= float(b.weight.abs().max()) <= bound
    if isinstance(layers[1][0], nn.Conv2d):
        assert gi.fans(layers[1][0].weight)[0] == (16 // 4) * 5 * 3  # in_channels / groups


def test_apply_by_layer_type():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(M, N_OUT),
        nn.Tanh(),
        nn.BatchNorm1d(N_OUT),
        nn.Unflatten(1, (8, 64)),
        nn.Conv1d(8, 128, 5),
    ).double()
    net.requires_grad_(False)  # only values matter here
    gi.apply(net, "he_normal", gain="tanh", generator=torch.Generator().manual_seed(1))
    g = 5 / 3  # calculate_gain("tanh")
    assert float(net[0].weight.var()) == pytest.approx(g**2 / M, rel=REL)
    assert float(net[4].weight.var()) == pytest.approx(g**2 / (8 * 5), rel=5 * REL)  # 5120 draws
    assert float(net[0].bias.abs().max()) == 0.0 and float(net[4].bias.abs().max()) == 0.0
    assert bool((net[2].weight == 1).all())  # normalization layers keep their init
    gi.apply(net, "glorot_uniform", gain=3.0, bias=0.1)
    b = 3.0 * math.sqrt(6 / (M + N_OUT))
    assert float(net[0].weight.abs().max()) <= b
    assert float(net[0].weight.var()) == pytest.approx(b**2 / 3, rel=REL)
    assert bool((net[0].bias == 0.1).all())
    gi.apply(net, "torch_default", bias="torch_default")
    assert 0.9 / math.sqrt(M) < float(net[0].bias.abs().max()) <= 1 / math.sqrt(M)
    before = net[0].bias.detach().clone()
    gi.apply(net, "lecun_normal", bias="keep")
    assert torch.equal(net[0].bias.detach(), before)
    assert float(net[0].weight.var()) == pytest.approx(1 / M, rel=REL)


def test_apply_errors():
    net = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(ValueError, match="unknown init scheme 'he'"):
        gi.apply(net, "he")
    with pytest.raises(ValueError, match="bias must be"):
        gi.apply(net, "he_normal", bias="ones")
    for bad in (-1.0, 0.0, float("inf"), float("nan"), True):
        with pytest.raises(ValueError, match="gain must be a finite number > 0"):
            gi.apply(net, "he_normal", gain=bad)
    with pytest.raises(ValueError, match="gain 'swishy': Unsupported nonlinearity"):
        gi.apply(net, "he_normal", gain="swishy")
    with pytest.raises(ValueError, match="negative_slope"):
        gi.apply(net, "he_normal", gain=("leaky_relu", "x"))
    with pytest.raises(TypeError, match="nonlinearity"):
        gi.apply(net, "he_normal", nonlinearity="relu")  # the gain is opt-in through gain only
    with pytest.raises(ValueError, match="no Linear"):
        gi.apply(nn.Sequential(nn.ReLU()), "he_normal")
    with pytest.raises(ValueError, match="mode"):
        gi.lecun_normal(torch.empty(3, 3), mode="avg")
