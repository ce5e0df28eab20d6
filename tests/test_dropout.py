"""Tests for goodfit.nn.dropout and its functional twins (seed 000 §1.1.4, seed 001)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import gradcheck

from goodfit.nn import functional
from goodfit.nn.dropout import (
    DROPOUTS,
    POOL_DROPOUTS,
    AdditiveGaussianNoise,
    AvgPoolDropout,
    ClassicDropout,
    DropConnectConv2d,
    DropConnectLinear,
    GaussianDropout,
    MaxDrop,
    MaxPoolDropout,
    make_dropout,
    make_pool_dropout,
)

# Statistical tolerance used throughout: we compare a Monte-Carlo mean over K independent masks
# with the evaluation output, element by element, as z = (mean - eval) / (s / sqrt(K)) with s the
# sample standard deviation of the K draws. By the CLT z ~ N(0, 1) (K >= 1000, t ~ normal); with
# at most ~1000 elements P(max |z| > 5.5) <= 1000 * 3.8e-8 < 1e-4, so Z_MAX = 5.5 does not flake,
# while a wrong scale (e.g. a missing 1/(1-p)) gives |z| in the hundreds.
Z_MAX = 5.5
TIGHT = {"rtol": 1e-10, "atol": 1e-10}  # float64, same formula up to summation order


@pytest.fixture(autouse=True)
def _one_thread():
    # many tiny ops: intra-op threads only add contention on a shared machine
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _max_z(draws: torch.Tensor, expected: torch.Tensor) -> float:
    """draws: (K, *shape) training outputs; expected: (*shape) evaluation output."""
    k = draws.shape[0]
    mean = draws.mean(0)
    s = draws.std(0)
    diff = mean - expected
    nz = s > 0
    # where the draws do not vary the mean must equal the evaluation output exactly
    assert torch.allclose(diff[~nz], torch.zeros_like(diff[~nz]), atol=1e-12)
    return (diff[nz].abs() / (s[nz] / math.sqrt(k))).max().item()


def _seeded(f, seed=0):
    """Wrap f so that every call redraws the same masks (fixed masks for gradcheck)."""

    def g(*args):
        torch.manual_seed(seed)
        return f(*args)

    return g


# --------------------------------------------------------------------------------------------------
# expectation preservation
# --------------------------------------------------------------------------------------------------
K = 4000


@pytest.mark.parametrize(
    ("kind", "kwargs"),
    [
        ("standard", {}),
        ("classic", {}),
        ("gaussian", {}),
        ("gaussian_seed000", {}),
        ("additive_gaussian", {}),
        ("spatial", {"scale": "classic"}),
    ],
)
def test_expectation_preserved_feature_vectors(kind, kwargs):
    torch.manual_seed(0)
    x = torch.randn(64, dtype=torch.float64)
    layer = make_dropout(kind, 0.3, dims=0, **kwargs) if kind != "spatial" else None
    if kind == "spatial":  # classic channel dropout needs (N, C, L): one channel per element
        layer = make_dropout(kind, 0.3, dims=1, **kwargs)
        xb = x.view(1, 64, 1).expand(K, 64, 1)
    else:
        xb = x.expand(K, 64)  # K rows = K independent masks of the same input
    expected = layer.eval()(xb[:1]).reshape(64)
    draws = layer.train()(xb).reshape(K, 64)
    assert _max_z(draws, expected) < Z_MAX


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_spatial_dropout_expectation_and_channel_mask(dims):
    torch.manual_seed(1)
    layer = make_dropout("spatial", 0.4, dims=dims)
    x = torch.rand((1, 8) + (3,) * dims, dtype=torch.float64) + 0.5
    xb = x.expand((K, 8) + (3,) * dims)
    y = layer(xb)
    # one mask entry per (sample, channel): each channel is all-zero or all x / (1 - p)
    kept = (y != 0).reshape(K, 8, -1)
    assert torch.equal(kept.all(-1), kept.any(-1))
    torch.testing.assert_close(y[y != 0], (xb / 0.6)[y != 0])
    assert _max_z(y, layer.eval()(x)[0]) < Z_MAX


def test_gaussian_dropout_mask_variance_both_conventions():
    # relative SE of a variance estimate from n normal draws is sqrt(2/(n-1)); 6 SE tolerance
    torch.manual_seed(2)
    n = 400_000
    x = torch.ones(n, dtype=torch.float64)
    for p in (0.2, 0.5):
        for conv, var in (("srivastava", p / (1 - p)), ("seed000", p * (1 - p))):
            m = GaussianDropout(p, convention=conv)(x)
            assert abs(m.var().item() / var - 1) < 6 * math.sqrt(2 / (n - 1))
            assert abs(m.mean().item() - 1) < 6 * math.sqrt(var / n)
    m = GaussianDropout(sigma=0.7)(x)
    assert abs(m.var().item() / 0.49 - 1) < 6 * math.sqrt(2 / (n - 1))
    a = AdditiveGaussianNoise(0.3)(x) - x
    assert abs(a.var().item() / 0.09 - 1) < 6 * math.sqrt(2 / (n - 1))


def test_gaussian_channelwise_mask_is_per_channel():
    torch.manual_seed(3)
    x = torch.ones(5, 4, 6, 6)
    y = GaussianDropout(0.5, channelwise=True)(x)
    assert torch.equal(y.amin((2, 3)), y.amax((2, 3)))
    assert not torch.equal(y[:, 0], y[:, 1])


def test_alpha_dropout_is_torch_and_matches_seed000_description():
    # seed 000: a dropped unit becomes SELU's negative saturation -lambda*alpha, and mean and
    # variance are kept; torch then applies the affine a*y + b (Klambauer et al. 2017).
    torch.manual_seed(4)
    p = 0.2
    layer = make_dropout("alpha", p, dims=0)
    assert type(layer) is nn.AlphaDropout
    x = torch.randn(2000, 100, dtype=torch.float64)
    torch.manual_seed(5)
    y = layer(x)
    torch.manual_seed(5)
    assert torch.equal(y, F.alpha_dropout(x, p, True))
    lam, alpha = 1.0507009873554805, 1.6732632423543772
    a = ((1 - p) * (1 + p * (lam * alpha) ** 2)) ** -0.5
    b = -a * (-lam * alpha) * p
    dropped = torch.isclose(y, torch.full_like(y, a * (-lam * alpha) + b))
    # fraction dropped ~ p: binomial SE sqrt(p(1-p)/n), 6 SE
    assert abs(dropped.double().mean().item() - p) < 6 * math.sqrt(p * (1 - p) / x.numel())
    # zero-mean unit-variance input keeps mean 0 / variance 1 (SE 1/sqrt(n), sqrt(2/n) approx.)
    n = x.numel()
    assert abs(y.mean().item()) < 6 / math.sqrt(n)
    assert abs(y.var().item() - 1) < 6 * math.sqrt(2 / n) * 1.5  # 1.5: non-normal kurtosis bound
    assert torch.equal(layer.eval()(x), x)
    feat = make_dropout("alpha", p, dims=2, channelwise=True)
    assert type(feat) is nn.FeatureAlphaDropout


# --------------------------------------------------------------------------------------------------
# pooling dropouts: evaluation rules and expectations
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_max_pool_dropout_eval_rule_is_scaled_max(dims):
    torch.manual_seed(6)
    x = torch.randn((2, 3) + (4,) * dims, dtype=torch.float64)
    layer = make_pool_dropout("max_pool_dropout", 0.3, 2, dims=dims).eval()
    maxpool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[dims - 1]
    torch.testing.assert_close(layer(x), 0.7 * maxpool(x, 2), rtol=0, atol=0)


def test_max_pool_dropout_train_is_max_of_masked_input():
    torch.manual_seed(7)
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    torch.manual_seed(8)
    y = MaxPoolDropout(0.4, 3)(x)
    torch.manual_seed(8)
    mask = torch.empty_like(x).bernoulli_(0.6)
    # transcription: y = max over each 3x3 window of x * M
    ref = torch.empty(2, 3, 2, 2, dtype=torch.float64)
    for i in range(2):
        for j in range(2):
            ref[:, :, i, j] = (x * mask)[:, :, 3 * i : 3 * i + 3, 3 * j : 3 * j + 3].amax((2, 3))
    torch.testing.assert_close(y, ref, rtol=0, atol=0)


def test_max_pool_dropout_probabilistic_eval_is_training_expectation():
    # Wu & Gu's weighted pooling is E[max(x * M)] exactly for x >= 0
    torch.manual_seed(9)
    x = torch.rand(1, 4, 6, 6, dtype=torch.float64)
    layer = MaxPoolDropout(0.5, 2, eval_rule="probabilistic")
    draws = layer.train()(x.expand(K, 4, 6, 6))
    assert _max_z(draws, layer.eval()(x)[0]) < Z_MAX
    # and the transcription of sum_i (1-p) p^(n-i) a_(i) on one window
    w = x[0, 0, :2, :2].flatten().sort().values
    ref = sum(0.5 * 0.5 ** (3 - i) * w[i] for i in range(4))
    torch.testing.assert_close(layer(x)[0, 0, 0, 0], ref)
    # the seed-000 scaled rule (1-p) max is below the expectation here: it is an approximation
    assert (layer.train()(x.expand(K, 4, 6, 6)).mean(0) > 0.5 * F.max_pool2d(x[0], 2)).all()


@pytest.mark.parametrize("scale", ["inverted", "classic"])
def test_avg_pool_dropout_expectation(scale):
    torch.manual_seed(10)
    x = torch.randn(1, 4, 6, 6, dtype=torch.float64)
    layer = AvgPoolDropout(0.3, 2, scale=scale)
    draws = layer.train()(x.expand(K, 4, 6, 6))
    ev = layer.eval()(x)[0]
    factor = 1.0 if scale == "inverted" else 0.7  # seed 000 eval: plain average (inverted)
    torch.testing.assert_close(ev, factor * F.avg_pool2d(x[0], 2))
    assert _max_z(draws, ev) < Z_MAX


def test_max_drop_eval_rule_and_kernel1_expectation():
    torch.manual_seed(11)
    x = torch.randn(1, 4, 6, 6, dtype=torch.float64)
    layer = MaxDrop(2, mu=0.8, sigma=0.3).eval()
    torch.testing.assert_close(layer(x), 0.8 * F.max_pool2d(x, 2), rtol=0, atol=0)
    # kernel 1: max of one element, E[x * M] = mu x exactly
    layer1 = MaxDrop(1, mu=0.8, sigma=0.3)
    draws = layer1.train()(x.expand(K, 4, 6, 6))
    assert _max_z(draws, layer1.eval()(x)[0]) < Z_MAX
    # train: max of x * M with M ~ N(mu, sigma^2)
    torch.manual_seed(12)
    y = layer.train()(x)
    torch.manual_seed(12)
    m = torch.randn_like(x) * 0.3 + 0.8
    torch.testing.assert_close(y, F.max_pool2d(x * m, 2), rtol=0, atol=0)


def test_make_pool_dropout_max_drop_defaults_match_bernoulli_moments():
    layer = make_pool_dropout("max_drop", 0.3, 2, dims=2)
    assert layer.mu == pytest.approx(0.7)
    assert layer.sigma == pytest.approx(math.sqrt(0.3 * 0.7))


# --------------------------------------------------------------------------------------------------
# DropConnect
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", ["inverted", "classic"])
def test_dropconnect_linear_expectation_and_eval(scale):
    torch.manual_seed(13)
    layer = DropConnectLinear(20, 5, p=0.4, scale=scale).double()
    x = torch.randn(3, 20, dtype=torch.float64)
    with torch.no_grad():
        draws = torch.stack([layer(x) for _ in range(1000)])
        ev = layer.eval()(x)
    c = 0.6 if scale == "classic" else 1.0
    torch.testing.assert_close(ev, F.linear(x, c * layer.weight, layer.bias))
    assert _max_z(draws, ev) < Z_MAX


@pytest.mark.parametrize("scale", ["inverted", "classic"])
def test_dropconnect_train_mask_on_weights_reused_in_backward(scale):
    # one mask M = keep_mask(W.shape, p) per call (same seed -> same mask); the layer computes
    # f((M / c) * W, x) and its weight gradient is grad_W = grad_(M W / c) * M / c with the
    # SAME mask (no redraw in backward); c = 1 - p (inverted) or 1 (classic)
    p = 0.3
    c = 1 - p if scale == "inverted" else 1.0
    torch.manual_seed(14)
    lin = DropConnectLinear(40, 30, p=p, scale=scale).double()
    conv = DropConnectConv2d(3, 4, 3, padding=1, p=p, scale=scale).double()
    for layer, x, f in (
        (lin, torch.randn(5, 40, dtype=torch.float64), F.linear),
        (
            conv,
            torch.randn(2, 3, 6, 6, dtype=torch.float64),
            lambda a, w, b: F.conv2d(a, w, b, 1, 1),
        ),
    ):
        x.requires_grad_()
        torch.manual_seed(15)
        y = layer(x)
        torch.manual_seed(15)
        m = functional.keep_mask(layer.weight.shape, p, dtype=torch.float64)
        assert set(m.unique().tolist()) == {0.0, 1.0}
        w_ref = (layer.weight.detach() * m / c).requires_grad_()
        x_ref = x.detach().clone().requires_grad_()
        b_ref = layer.bias.detach().clone().requires_grad_()
        y_ref = f(x_ref, w_ref, b_ref)
        torch.testing.assert_close(y, y_ref, **TIGHT)
        g = torch.randn_like(y)
        y.backward(g)
        y_ref.backward(g)
        torch.testing.assert_close(layer.weight.grad, w_ref.grad * m / c, **TIGHT)
        torch.testing.assert_close(x.grad, x_ref.grad, **TIGHT)
        torch.testing.assert_close(layer.bias.grad, b_ref.grad, **TIGHT)
        torch.manual_seed(16)
        y2 = layer(x)
        assert not torch.equal(y, y2)  # a fresh mask on the next call


# --------------------------------------------------------------------------------------------------
# keep_mask: the Bernoulli weight mask of DropConnect
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.3, 0.5, 0.0, 1.0 - 1e-12, 0.9])
def test_keep_mask_transcription(p):
    # keep iff U >= t, t = round(p 2^32), U = 2^24 b + r: b a uniform byte (8 per 64-bit draw),
    # r (uniform on [0, 2^24)) drawn after all bytes, only where b == t // 2^24, in order
    shape = (128, 51)  # 6528 entries, not a multiple of 8
    n = 128 * 51
    torch.manual_seed(22)
    got = functional.keep_mask(shape, p, dtype=torch.float64)
    assert got.shape == shape and got.dtype == torch.float64
    t = round(p * 2**32)
    if t >= 2**32:
        assert not got.any()
        return
    torch.manual_seed(22)
    words = torch.empty((n + 7) // 8, dtype=torch.int64).random_(-(2**63), None)
    # the 8 bytes of each 64-bit word, least significant first (the little-endian uint8 view)
    b = [(w >> (8 * k)) & 0xFF for w in words.tolist() for k in range(8)][:n]
    ties = [i for i, v in enumerate(b) if v == t >> 24] if t % 2**24 else []
    low = torch.empty(len(ties), dtype=torch.int32).random_(0, 2**24).tolist()
    r = dict(zip(ties, low, strict=True))
    ref = [1.0 if (b[i] << 24) + r.get(i, 0) >= t else 0.0 for i in range(n)]
    if p in (0.3, 0.9):  # the refinement path is exercised, with both outcomes
        assert {ref[i] for i in ties} == {0.0, 1.0}
    assert got.flatten().tolist() == ref


def test_keep_mask_statistics():
    # P(drop) = round(p 2^32) / 2^32 = p up to 2^-33. Over n entries the drop fraction has sd
    # sqrt(p (1 - p) / n); |z| < Z_MAX overall and for each of the 8 byte lanes of the 64-bit
    # draws (a lane with fewer random bits, e.g. a sign bit, would be off by > 0.1 = 100 sd).
    p, n = 0.3, 1 << 21
    torch.manual_seed(23)
    drop = 1.0 - functional.keep_mask((n,), p, dtype=torch.float64)
    sd = math.sqrt(p * (1 - p) / n)
    assert abs(drop.mean().item() - p) / sd < Z_MAX
    lanes = drop.view(-1, 8).mean(0)
    assert ((lanes - p).abs() / (sd * math.sqrt(8))).max().item() < Z_MAX
    # neighbouring entries are independent: P(both dropped) = p^2
    both = (drop[0::2] * drop[1::2]).mean().item()
    sd2 = math.sqrt(p * p * (1 - p * p) / (n // 2))
    assert abs(both - p * p) / sd2 < Z_MAX
    # same seed -> same mask; float32 by default
    torch.manual_seed(24)
    a = functional.keep_mask((7, 9), p)
    torch.manual_seed(24)
    assert a.dtype == torch.float32 and torch.equal(a, functional.keep_mask((7, 9), p))


def test_dropconnect_moment_matching_transcription_and_accuracy():
    torch.manual_seed(16)
    p, n_in = 0.5, 400
    layer = DropConnectLinear(
        n_in, 6, p=p, scale="classic", inference="moment_matching", activation=torch.relu,
        num_samples=20_000,
    ).double()  # fmt: skip
    x = torch.randn(2, n_in, dtype=torch.float64)
    layer.eval()
    torch.manual_seed(17)
    y = layer(x)
    # transcription of Wan et al. (2013) Alg. 2 (classic scaling): mean = (1-p) W x + b,
    # var = p (1-p) (W*W)(x*x), output = mean_k relu(mean + sqrt(var) z_k)
    w, b = layer.weight.detach(), layer.bias.detach()
    mean = (1 - p) * x @ w.T + b
    var = p * (1 - p) * (x * x) @ (w * w).T
    torch.manual_seed(17)
    z = torch.randn(20_000, 2, 6, dtype=torch.float64)
    torch.testing.assert_close(y, torch.relu(mean + var.sqrt() * z).mean(0))
    # it is closer to the training average than the mean-weight rule relu((1-p) W x + b)
    layer.train()
    with torch.no_grad():
        avg = torch.stack([layer(x) for _ in range(3000)]).mean(0)
    err_mm = (y - avg).abs().mean()
    err_mean = (torch.relu(mean) - avg).abs().mean()
    assert err_mm < 0.25 * err_mean


def test_dropconnect_conv2d_expectation_and_mask():
    torch.manual_seed(18)
    layer = DropConnectConv2d(3, 4, 3, padding=1, p=0.3).double()
    x = torch.randn(1, 3, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        draws = torch.cat([layer(x) for _ in range(1000)])
        ev = layer.eval()(x)[0]
    torch.testing.assert_close(ev, F.conv2d(x, layer.weight, layer.bias, padding=1)[0])
    assert _max_z(draws, ev) < Z_MAX


# --------------------------------------------------------------------------------------------------
# gradcheck (float64, fixed masks)
# --------------------------------------------------------------------------------------------------
def _gradcheck_module(layer, *inputs):
    layer = layer.double()
    assert gradcheck(_seeded(layer), inputs, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "layer",
    [
        ClassicDropout(0.3),
        ClassicDropout(0.3, channelwise=True),
        GaussianDropout(0.3),
        GaussianDropout(0.3, convention="seed000", channelwise=True),
        AdditiveGaussianNoise(0.2),
        MaxPoolDropout(0.3, 2),
        AvgPoolDropout(0.3, 2),
        AvgPoolDropout(0.3, 2, scale="classic"),
        MaxDrop(2, mu=0.8, sigma=0.3),
    ],
    ids=lambda m: repr(m),
)
@pytest.mark.parametrize("training", [True, False])
def test_gradcheck_dropout_layers(layer, training):
    torch.manual_seed(19)
    # distinct positive values keep the max unique (max pooling is differentiable there)
    x = (torch.randperm(2 * 2 * 4 * 4).double().view(2, 2, 4, 4) / 10 + 0.1).requires_grad_()
    _gradcheck_module(layer.train(training), x)


def test_gradcheck_max_pool_dropout_probabilistic_eval():
    x = (torch.randperm(2 * 2 * 4 * 4).double().view(2, 2, 4, 4) / 10 + 0.1).requires_grad_()
    _gradcheck_module(MaxPoolDropout(0.3, 2, eval_rule="probabilistic").eval(), x)


@pytest.mark.parametrize("inference", ["mean", "moment_matching"])
@pytest.mark.parametrize("training", [True, False])
def test_gradcheck_dropconnect(inference, training):
    torch.manual_seed(20)
    lin = DropConnectLinear(5, 3, p=0.3, inference=inference, activation=torch.tanh, num_samples=8)
    lin = lin.double().train(training)
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    w, b = lin.weight, lin.bias

    def f(x, w, b):
        return functional.dropconnect_linear(
            x, w, b, 0.3, training, inference=inference, activation=torch.tanh, num_samples=8
        )

    assert gradcheck(_seeded(f), (x, w, b))
    conv = DropConnectConv2d(2, 3, 3, p=0.3, inference=inference).double().train(training)
    xc = torch.randn(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    _gradcheck_module(conv, xc)


# --------------------------------------------------------------------------------------------------
# equality with torch for the re-exports
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "dims", "ref"),
    [
        ("standard", 0, lambda x: F.dropout(x, 0.3, True)),
        ("spatial", 1, lambda x: F.dropout1d(x, 0.3, True)),
        ("spatial", 2, lambda x: F.dropout2d(x, 0.3, True)),
        ("spatial", 3, lambda x: F.dropout3d(x, 0.3, True)),
        ("alpha", 0, lambda x: F.alpha_dropout(x, 0.3, True)),
    ],
)
def test_reexports_equal_torch_outputs_and_gradients(kind, dims, ref):
    layer = make_dropout(kind, 0.3, dims=dims)
    shape = (4, 6) + (5,) * dims
    x1 = torch.randn(shape, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    g = torch.randn(shape)
    torch.manual_seed(21)
    y1 = layer(x1)
    torch.manual_seed(21)
    y2 = ref(x2)
    assert torch.equal(y1, y2)
    y1.backward(g)
    y2.backward(g)
    assert torch.equal(x1.grad, x2.grad)


# --------------------------------------------------------------------------------------------------
# factories, repr, errors
# --------------------------------------------------------------------------------------------------
def test_every_registered_kind_builds_and_respects_eval():
    x0 = torch.randn(3, 8)
    x2 = torch.randn(3, 8, 4, 4)
    for kind in DROPOUTS:
        for dims, x in ((0, x0), (2, x2)):
            if kind == "spatial" and dims == 0:
                continue
            layer = make_dropout(kind, 0.25, dims=dims).eval()
            y = layer(x)
            expected = 0.75 * x if kind == "classic" else x
            torch.testing.assert_close(y, expected)
            assert "0.25" in repr(layer)
    for kind in POOL_DROPOUTS:
        assert make_pool_dropout(kind, 0.25, 2, dims=2)(x2).shape == (3, 8, 2, 2)


@pytest.mark.parametrize("bad_p", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_p_raises_naming_p(bad_p):
    for kind in ("standard", "classic", "gaussian", "gaussian_seed000", "alpha"):
        with pytest.raises(ValueError, match="p must be"):
            make_dropout(kind, bad_p, dims=0)
    with pytest.raises(ValueError, match="p must be"):
        ClassicDropout(bad_p)
    with pytest.raises(ValueError, match="p must be"):
        MaxPoolDropout(bad_p)
    with pytest.raises(ValueError, match="p must be"):
        DropConnectLinear(3, 3, p=bad_p)
    with pytest.raises(ValueError, match="p must be"):
        make_pool_dropout("max_drop", bad_p, 2, dims=2)


def test_other_bad_inputs():
    with pytest.raises(ValueError, match="sigma must be"):
        AdditiveGaussianNoise(-0.1)
    with pytest.raises(ValueError, match="sigma must be"):
        make_dropout("additive_gaussian", dims=0, sigma=-1.0)
    with pytest.raises(ValueError, match="sigma must be"):
        GaussianDropout(sigma=-0.5)
    with pytest.raises(ValueError, match="sigma must be"):
        MaxDrop(2, sigma=-0.5)
    with pytest.raises(ValueError, match="exactly one of p or sigma"):
        GaussianDropout(0.3, sigma=0.3)
    with pytest.raises(ValueError, match=r"allowed: \['additive_gaussian', 'alpha'"):
        make_dropout("bogus", 0.3, dims=0)
    with pytest.raises(ValueError, match="allowed"):
        make_pool_dropout("bogus", 0.3, 2, dims=2)
    with pytest.raises(ValueError, match="dims must be"):
        make_dropout("spatial", 0.3, dims=0)
    with pytest.raises(ValueError, match="dims must be"):
        make_dropout("standard", 0.3, dims=4)
    with pytest.raises(ValueError, match="convention must be"):
        GaussianDropout(0.3, convention="x")
    with pytest.raises(ValueError, match="eval_rule must be"):
        MaxPoolDropout(0.3, eval_rule="x")
    with pytest.raises(ValueError, match="kernel_size must be"):
        MaxPoolDropout(0.3, 0)
    with pytest.raises(ValueError, match="inference must be"):
        DropConnectLinear(3, 3, inference="x")
    with pytest.raises(ValueError, match="expects a 4-D input"):
        MaxPoolDropout(0.3)(torch.randn(2, 3, 4))
    with pytest.raises(TypeError):
        make_dropout("gaussian", 0.3, dims=0, bogus=1)
    with pytest.raises(TypeError):
        make_pool_dropout("max_pool_dropout", 0.3, 2, dims=2, bogus=1)
