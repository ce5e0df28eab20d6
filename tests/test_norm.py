"""Tests for goodfit.nn.norm (seed 000 §1.1.5, seed 001 Batch Normalization)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import gradcheck

from goodfit.nn import functional
from goodfit.nn.norm import (
    NORMS,
    BiasedVarBatchNorm,
    SwitchableNorm,
    WSConv1d,
    WSConv2d,
    WSLinear,
    make_norm,
    spectral_norm,
    weight_standardized,
)

TIGHT = {"rtol": 1e-10, "atol": 1e-10}  # float64, same formula up to summation order


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --------------------------------------------------------------------------------------------------
# BatchNorm conventions
# --------------------------------------------------------------------------------------------------
def test_torch_batchnorm_running_var_is_seed001_unbiased():
    # seed 001: Var[x] <- m/(m-1) E_B[sigma_B^2]; seed 000 / torch momentum w = 0.1
    torch.manual_seed(0)
    bn = make_norm("batch", 3, dims=2)
    assert type(bn) is nn.BatchNorm2d
    bn.double()
    rm, rv, w = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64), 0.1
    for _ in range(4):
        x = torch.randn(5, 3, 2, 2, dtype=torch.float64) * 2 + 1
        bn(x)
        m = 5 * 2 * 2
        mu = x.mean((0, 2, 3))
        s2 = ((x - mu.view(1, 3, 1, 1)) ** 2).mean((0, 2, 3))
        rm = (1 - w) * rm + w * mu
        rv = (1 - w) * rv + w * (m / (m - 1)) * s2
    torch.testing.assert_close(bn.running_mean, rm, **TIGHT)
    torch.testing.assert_close(bn.running_var, rv, **TIGHT)


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("dims", [0, 2])
def test_biased_var_batchnorm_is_seed000_update(momentum, dims):
    torch.manual_seed(1)
    bn = make_norm("batch", 3, dims=dims, running_var="biased", momentum=momentum).double()
    ref = (nn.BatchNorm1d if dims == 0 else nn.BatchNorm2d)(3, momentum=momentum).double()
    assert isinstance(bn, BiasedVarBatchNorm)
    rv = torch.ones(3, dtype=torch.float64)
    shape = (6, 3) if dims == 0 else (6, 3, 2, 2)
    red = (0,) if dims == 0 else (0, 2, 3)
    for t in range(1, 5):
        x = torch.randn(shape, dtype=torch.float64) * 3
        torch.testing.assert_close(bn(x), ref(x), **TIGHT)  # same normalization in training
        w = momentum if momentum is not None else 1.0 / t
        s2 = x.var(red, correction=0)
        rv = (1 - w) * rv + w * s2  # seed 000 §1.1.5: biased batch variance
    torch.testing.assert_close(bn.running_var, rv, **TIGHT)
    torch.testing.assert_close(bn.running_mean, ref.running_mean, **TIGHT)
    bn.eval()
    x = torch.randn(shape, dtype=torch.float64)
    view = (1, 3) if dims == 0 else (1, 3, 1, 1)
    expected = (x - bn.running_mean.view(view)) / (rv.view(view) + bn.eps).sqrt()
    torch.testing.assert_close(bn(x), expected, **TIGHT)


def test_torch_norm_layers_are_torchs():
    assert type(make_norm("layer", 8, dims=0)) is nn.LayerNorm
    assert type(make_norm("instance", 8, dims=2)) is nn.InstanceNorm2d
    assert type(make_norm("instance", 8, dims=1)) is nn.InstanceNorm1d
    assert type(make_norm("group", 8, dims=2, groups=4)) is nn.GroupNorm
    assert make_norm("group", 64, dims=2).num_groups == 32
    assert make_norm("group", 8, dims=0).num_groups == 4
    # layer norm on (N, C, H, W) = statistics over (C, H, W) per sample
    torch.manual_seed(2)
    x = torch.randn(4, 6, 3, 3, dtype=torch.float64, requires_grad=True)
    ln = make_norm("layer", 6, dims=2).double()
    y1 = ln(x)
    y2 = F.layer_norm(x, (6, 3, 3), eps=1e-5)
    torch.testing.assert_close(y1, y2, **TIGHT)
    g = torch.randn_like(y1)
    (g1,) = torch.autograd.grad(y1, x, g)
    (g2,) = torch.autograd.grad(y2, x, g)
    torch.testing.assert_close(g1, g2, **TIGHT)


# --------------------------------------------------------------------------------------------------
# Switchable Normalization
# --------------------------------------------------------------------------------------------------
def _one_hot(sn: SwitchableNorm, comp: str) -> None:
    with torch.no_grad():
        for logits in (sn.mean_weight, sn.var_weight):
            logits.fill_(-float("inf"))
            logits[sn.components.index(comp)] = 0.0


def _affine(sn, c):
    with torch.no_grad():
        sn.weight.copy_(torch.linspace(0.5, 2.0, c, dtype=torch.float64))
        sn.bias.copy_(torch.linspace(-1.0, 1.0, c, dtype=torch.float64))


@pytest.mark.parametrize("comp", ["in", "ln", "bn"])
def test_switchable_norm_one_hot_equals_torch(comp):
    torch.manual_seed(3)
    c = 5
    sn = SwitchableNorm(c, dims=2).double()
    _one_hot(sn, comp)
    _affine(sn, c)
    w, b = sn.weight.detach(), sn.bias.detach()
    bn = nn.BatchNorm2d(c).double()
    with torch.no_grad():
        bn.weight.copy_(w)
        bn.bias.copy_(b)
    refs = {
        "in": lambda x: F.instance_norm(x, weight=w, bias=b, eps=1e-5),
        "ln": lambda x: F.group_norm(x, 1, w, b, eps=1e-5),
        "bn": bn,
    }
    for _ in range(3):  # training steps: outputs and (for bn) running statistics
        x = torch.randn(4, c, 3, 3, dtype=torch.float64) * 2 + 0.5
        torch.testing.assert_close(sn(x), refs[comp](x), **TIGHT)
    if comp == "bn":
        torch.testing.assert_close(sn.running_mean, bn.running_mean, **TIGHT)
        torch.testing.assert_close(sn.running_var, bn.running_var, **TIGHT)
    sn.eval()
    bn.eval()
    x = torch.randn(2, c, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(sn(x), refs[comp](x), **TIGHT)


def test_switchable_norm_dims0_one_hot_ln_and_bn():
    torch.manual_seed(4)
    sn = SwitchableNorm(6, dims=0).double()
    assert sn.components == ("ln", "bn")
    x = torch.randn(8, 6, dtype=torch.float64)
    _one_hot(sn, "ln")
    torch.testing.assert_close(sn(x), F.layer_norm(x, (6,), eps=1e-5), **TIGHT)
    _one_hot(sn, "bn")
    torch.testing.assert_close(sn(x), F.batch_norm(x, None, None, training=True), **TIGHT)


def test_switchable_norm_mixture_transcription():
    # y = gamma (x - sum w_k mu_k) / sqrt(sum w'_k var_k + eps) + beta, plain transcription
    torch.manual_seed(5)
    sn = SwitchableNorm(3, dims=2).double()
    with torch.no_grad():
        sn.mean_weight.copy_(torch.tensor([0.3, -0.2, 0.5]))
        sn.var_weight.copy_(torch.tensor([-0.4, 0.1, 0.7]))
    _affine(sn, 3)
    x = torch.randn(4, 3, 2, 5, dtype=torch.float64)
    wm = torch.softmax(sn.mean_weight.detach(), 0)
    wv = torch.softmax(sn.var_weight.detach(), 0)
    mu = [x.mean((2, 3), keepdim=True), x.mean((1, 2, 3), keepdim=True)]
    mu.append(x.mean((0, 2, 3), keepdim=True))
    var = [x.var((2, 3), keepdim=True, correction=0), x.var((1, 2, 3), keepdim=True, correction=0)]
    var.append(x.var((0, 2, 3), keepdim=True, correction=0))
    mean = sum(wm[k] * mu[k] for k in range(3))
    v = sum(wv[k] * var[k] for k in range(3))
    ref = sn.weight.view(1, 3, 1, 1) * (x - mean) / (v + 1e-5).sqrt() + sn.bias.view(1, 3, 1, 1)
    torch.testing.assert_close(sn(x), ref, **TIGHT)


@pytest.mark.parametrize("training", [True, False])
def test_gradcheck_switchable_norm(training):
    torch.manual_seed(6)
    sn = SwitchableNorm(3, dims=2).double().train(training)
    with torch.no_grad():
        sn.mean_weight.copy_(torch.tensor([0.3, -0.2, 0.5]))
        sn.var_weight.copy_(torch.tensor([-0.4, 0.1, 0.7]))
        sn.running_mean.copy_(torch.tensor([0.1, -0.2, 0.3]))
        sn.running_var.copy_(torch.tensor([1.5, 0.7, 1.1]))
    x = torch.randn(3, 3, 2, 2, dtype=torch.float64, requires_grad=True)

    def f(x, mw, vw, w, b):
        # fresh copies of the buffers: the training update must not change them between calls
        return functional.switchable_norm(
            x, mw, vw, w, b, sn.running_mean.clone(), sn.running_var.clone(), training
        )

    assert gradcheck(f, (x, sn.mean_weight, sn.var_weight, sn.weight, sn.bias))


def _sn_reference(x, mw, vw, w, b, rm, rv, training, components, eps=1e-5):
    # plain autograd transcription: y = gamma (x - sum w_k mu_k) / sqrt(sum w'_k var_k + eps) + beta
    sp = tuple(range(2, x.dim()))
    stats = {
        "in": (sp, None),
        "ln": ((1, *sp), None),
        "bn": ((0, *sp), None if training else (rm, rv)),
    }
    view = (1, -1) + (1,) * len(sp)
    wm, wv = torch.softmax(mw, 0), torch.softmax(vw, 0)
    mean = var = 0.0
    for k, comp in enumerate(components):
        dims, running = stats[comp]
        if running is None:
            mu = x.mean(dims, keepdim=True)
            v = ((x - mu) ** 2).mean(dims, keepdim=True)
        else:
            mu, v = running[0].view(view), running[1].view(view)
        mean = mean + wm[k] * mu
        var = var + wv[k] * v
    y = (x - mean) / (var + eps).sqrt()
    return y if w is None else y * w.view(view) + b.view(view)


@pytest.mark.parametrize(
    ("dims", "components", "affine"),
    [(1, ("in", "ln", "bn"), True), (2, ("in", "ln", "bn"), True), (3, ("in", "ln", "bn"), True),
     (2, ("in", "bn"), False), (2, ("ln",), True)],
)  # fmt: skip
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("fused", [True, False], ids=["cpu_kernels", "generic"])
def test_switchable_norm_backward_equals_autograd_of_formula(
    dims, components, affine, training, fused, monkeypatch
):
    # the hand-written backward (fused per-(n, c) sums of g and g x) against autograd through the
    # formula, float64; non-contiguous x and g (channels-last / transposed) included. Both ways
    # of taking the per-(n, c) sums: torch's CPU batch-norm kernels, and the generic
    # var_mean/sum/bmm that other devices use.
    monkeypatch.setattr(functional, "_fused_row_kernels", lambda x: fused)
    torch.manual_seed(11)
    c = 4
    sn = SwitchableNorm(c, dims=dims, components=components, affine=affine).double()
    sn.train(training)
    k = len(components)
    with torch.no_grad():
        sn.mean_weight.copy_(torch.linspace(-0.5, 0.4, k))
        sn.var_weight.copy_(torch.linspace(0.3, -0.6, k))
        if affine:
            _affine(sn, c)
        if sn.running_mean is not None:
            sn.running_mean.copy_(torch.linspace(-0.3, 0.2, c))
            sn.running_var.copy_(torch.linspace(0.6, 1.4, c))
    rm, rv = (
        (None, None)
        if sn.running_mean is None
        else (sn.running_mean.clone(), sn.running_var.clone())
    )
    shape = (3, c, *(5, 4, 3)[:dims])
    x = (torch.randn(*reversed(shape), dtype=torch.float64) * 2 + 0.7).permute(
        *reversed(range(len(shape)))
    )  # non-contiguous
    assert not x.is_contiguous()
    x1 = x.detach().clone().requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    params = [sn.mean_weight, sn.var_weight] + ([sn.weight, sn.bias] if affine else [])
    refs = [t.detach().clone().requires_grad_() for t in params]
    y1 = sn(x1)
    w_ref, b_ref = (refs[2], refs[3]) if affine else (None, None)
    y2 = _sn_reference(x2, refs[0], refs[1], w_ref, b_ref, rm, rv, training, components)
    torch.testing.assert_close(y1, y2, **TIGHT)
    g = torch.randn(*reversed(shape), dtype=torch.float64).permute(*reversed(range(len(shape))))
    grads1 = torch.autograd.grad(y1, [x1, *params], g)
    grads2 = torch.autograd.grad(y2, [x2, *refs], g)
    for g1, g2 in zip(grads1, grads2, strict=True):
        torch.testing.assert_close(g1, g2, **TIGHT)


def test_gradcheck_biased_var_batchnorm():
    bn = BiasedVarBatchNorm(3, dims=2).double()
    x = torch.randn(3, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    assert gradcheck(bn, (x,))


# --------------------------------------------------------------------------------------------------
# weight standardization and spectral norm
# --------------------------------------------------------------------------------------------------
def test_standardized_weight_has_zero_mean_unit_variance_per_output_channel():
    torch.manual_seed(7)
    for layer in (WSConv2d(3, 8, 3, eps=0.0), WSConv1d(4, 5, 3, eps=0.0), WSLinear(7, 4, eps=0.0)):
        with torch.no_grad():
            layer.weight.mul_(3).add_(0.7)
        w = layer.standardized_weight().reshape(layer.weight.shape[0], -1).double()
        zeros, ones = torch.zeros(w.shape[0]).double(), torch.ones(w.shape[0]).double()
        # float32 weights: agreement to float32 rounding of the (few dozen) summed entries
        torch.testing.assert_close(w.mean(1), zeros, rtol=0, atol=1e-6)
        torch.testing.assert_close(w.var(1, correction=0), ones, rtol=0, atol=1e-5)


def test_weight_standardization_transcription_and_forward():
    # W_hat = (W_ij - mu_i) / (sigma_i + eps), sigma biased, per output channel (seed 000)
    torch.manual_seed(8)
    conv = WSConv2d(2, 3, 3, padding=1, eps=1e-5).double()
    w = conv.weight.detach()
    ref = torch.empty_like(w)
    for i in range(w.shape[0]):
        wi = w[i].flatten()
        mu = sum(wi.tolist()) / wi.numel()
        sigma = (sum((v - mu) ** 2 for v in wi.tolist()) / wi.numel()) ** 0.5
        ref[i] = (w[i] - mu) / (sigma + 1e-5)
    torch.testing.assert_close(conv.standardized_weight(), ref, **TIGHT)
    x = torch.randn(2, 2, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(conv(x), F.conv2d(x, ref, conv.bias, padding=1), **TIGHT)


def test_gradcheck_weight_standardized_layers():
    torch.manual_seed(9)
    conv = WSConv2d(2, 3, 3).double()
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert gradcheck(
        lambda x, w: F.conv2d(x, functional.standardize_weight(w), conv.bias), (x, conv.weight)
    )
    lin = WSLinear(4, 3).double()
    xl = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    assert gradcheck(
        lambda x, w: F.linear(x, functional.standardize_weight(w), lin.bias), (xl, lin.weight)
    )
    assert gradcheck(lin, (xl,))


def test_weight_standardized_shares_parameters():
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)
    ws = weight_standardized(conv)
    assert type(ws) is WSConv2d
    assert ws.weight is conv.weight and ws.bias is None
    assert (ws.stride, ws.padding) == ((2, 2), (1, 1))
    lin = weight_standardized(nn.Linear(3, 4))
    assert type(lin) is WSLinear
    with pytest.raises(ValueError, match=r"expects nn\.Linear"):
        weight_standardized(nn.ReLU())


def test_spectral_norm_is_torch_parametrization():
    torch.manual_seed(10)
    lin = spectral_norm(nn.Linear(6, 4).double(), n_power_iterations=50)
    lin(torch.randn(1, 6, dtype=torch.float64))
    # torch divides by the largest singular value = sqrt(largest eigenvalue of W^T W)
    sv = torch.linalg.matrix_norm(lin.weight.detach(), ord=2)
    torch.testing.assert_close(sv, torch.tensor(1.0, dtype=torch.float64), rtol=1e-6, atol=0)


# --------------------------------------------------------------------------------------------------
# factory errors
# --------------------------------------------------------------------------------------------------
def test_every_kind_builds():
    x0, x2 = torch.randn(4, 8), torch.randn(4, 8, 3, 3)
    for kind in NORMS:
        for dims, x in ((0, x0), (2, x2)):
            if kind == "instance" and dims == 0:
                continue
            assert make_norm(kind, 8, dims=dims)(x).shape == x.shape
    assert "components" in repr(make_norm("switchable", 8, dims=2))


def test_bad_inputs():
    with pytest.raises(ValueError, match="groups must be a positive divisor"):
        make_norm("group", 64, dims=2, groups=3)
    with pytest.raises(ValueError, match="groups must be a positive divisor"):
        make_norm("group", 64, dims=2, groups=0)
    with pytest.raises(ValueError, match=r"allowed: \['batch', 'group'"):
        make_norm("bogus", 8, dims=2)
    with pytest.raises(ValueError, match="dims must be"):
        make_norm("batch", 8, dims=5)
    with pytest.raises(ValueError, match="instance norm needs spatial dims"):
        make_norm("instance", 8, dims=0)
    with pytest.raises(ValueError, match="momentum must be"):
        make_norm("batch", 8, dims=2, momentum=1.5)
    with pytest.raises(ValueError, match="running_var must be"):
        make_norm("batch", 8, dims=2, running_var="x")
    with pytest.raises(ValueError, match="num_features must be"):
        make_norm("switchable", 0, dims=2)
    with pytest.raises(ValueError, match="components"):
        SwitchableNorm(8, dims=0, components=("in", "bn"))
    with pytest.raises(ValueError, match="eps must be"):
        WSConv2d(3, 3, 3, eps=-1.0)
    with pytest.raises(ValueError, match="expects"):
        SwitchableNorm(8, dims=2)(torch.randn(2, 7, 3, 3))
    with pytest.raises(TypeError):
        make_norm("group", 8, dims=2, bogus=1)
    with pytest.raises(TypeError):
        make_norm("switchable", 8, dims=2, bogus=1)
