"""Curvature diagnostics against exact Hessians of small models (autograd + eigvalsh)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from goodfit.diagnose.curvature import (
    analyze_curvature,
    curvature_report,
    eigenvalues,
    hutchinson_trace,
    hvp_function,
    max_stable_lr,
    plot_spectrum,
    power_iteration,
)
from goodfit.optim.second_order import module_loss

F64 = torch.float64


def _mlp_case(kind: str):
    torch.manual_seed(0)
    X = torch.randn(64, 6)
    if kind == "regression":
        net = nn.Sequential(
            nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1)
        )
        y = torch.sin(X[:, :1]) + X[:, 1:2] ** 2
        loss_fn = nn.functional.mse_loss
    else:
        net = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 3))
        y = torch.randint(0, 3, (64,))
        loss_fn = nn.functional.cross_entropy
    return net, loss_fn, X, y


def _exact_hessian(net, loss_fn, X, y):
    loss, x0 = module_loss(net, loss_fn, X, y, dtype=F64)
    H = torch.autograd.functional.hessian(loss, x0, vectorize=True)
    return 0.5 * (H + H.T), x0


@pytest.mark.parametrize("kind", ["regression", "classification"])
def test_mlp_top_eigenvalue_and_trace_match_exact_hessian(kind):
    net, loss_fn, X, y = _mlp_case(kind)
    assert sum(p.numel() for p in net.parameters()) <= 2000
    H, _ = _exact_hessian(net, loss_fn, X, y)
    w = torch.linalg.eigvalsh(H)
    S = 600
    rep = curvature_report(net, loss_fn, X, y, k=3, n_trace_samples=S)
    assert rep.n_params == H.shape[0]
    assert rep.lambda_max == pytest.approx(float(w[-1]), rel=1e-2)
    np.testing.assert_allclose(rep.top_eigenvalues, w[-3:].flip(0).numpy(), rtol=1e-2)
    assert rep.lambda_min == pytest.approx(float(w[0]), rel=1e-2, abs=1e-8 * float(w[-1]))
    # Hutch++ (S products, fixed seed): its reported standard error (empirical, of the
    # deflated Hutchinson part) must be <= 1/4 of the 5% tolerance for the check to mean
    # something; plain Hutchinson would need ~1e4+ samples here (big off-diagonal mass).
    tr = float(H.trace())
    assert 4 * rep.trace_stderr <= 0.05 * abs(tr)
    assert rep.trace == pytest.approx(tr, rel=0.05)
    assert rep.max_stable_lr == pytest.approx(2 / float(w[-1]), rel=1e-2)


def test_power_iteration_and_lanczos_agree():
    net, loss_fn, X, y = _mlp_case("regression")
    H, x0 = _exact_hessian(net, loss_fn, X, y)
    loss, _ = module_loss(net, loss_fn, X, y, dtype=F64)
    hvp = hvp_function(loss, x0)
    v = torch.randn(x0.numel(), dtype=F64)
    torch.testing.assert_close(hvp(v), H @ v, rtol=1e-8, atol=1e-10)
    w = torch.linalg.eigvalsh(H)
    top_abs = float(w[torch.argmax(w.abs())])
    assert power_iteration(hvp, x0.numel(), tol=1e-10) == pytest.approx(top_abs, rel=1e-3)
    lan = eigenvalues(hvp, x0.numel(), k=2, which="SA")
    np.testing.assert_allclose(lan, w[:2].numpy(), rtol=1e-6, atol=1e-9 * float(w.abs().max()))


class _Toy(nn.Module):
    def __init__(self, start):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(start, dtype=F64))

    def forward(self, x):
        return self.p


def test_toy_saddle_and_minimum_verdicts():
    def saddle_loss(p, _y):
        return p[0] ** 2 - p[1] ** 2

    def bowl_loss(p, _y):
        return p[0] ** 2 + 3 * p[1] ** 2

    z = torch.zeros(1, dtype=F64)
    rep = curvature_report(_Toy([0.0, 0.0]), saddle_loss, z, z)
    assert rep.verdict == "saddle" and rep.grad_norm == 0.0
    assert rep.lambda_min == pytest.approx(-2.0) and rep.lambda_max == pytest.approx(2.0)
    assert math.isinf(rep.condition_number)
    rep = curvature_report(_Toy([0.0, 0.0]), bowl_loss, z, z)
    assert rep.verdict == "minimum"
    assert rep.condition_number == pytest.approx(3.0)
    rep = analyze_curvature(lambda p: -(p**2).sum(), torch.ones(3, dtype=F64))
    assert rep.verdict == "maximum"


def test_gd_at_0_9_of_2_over_lambda_max_converges_1_1_diverges():
    g = torch.Generator().manual_seed(0)
    n = 120  # above the dense limit: Lanczos path
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))
    evals = torch.linspace(0.1, 10.0, n, dtype=F64)
    A = Q @ torch.diag(evals) @ Q.T

    def f(x):
        return 0.5 * x @ A @ x

    rep = analyze_curvature(f, torch.ones(n, dtype=F64), k=2, n_trace_samples=10)
    assert rep.lambda_max == pytest.approx(10.0, rel=1e-6)
    assert rep.trace == pytest.approx(float(evals.sum()), rel=0.2)  # 10 samples: loose
    lr_max = max_stable_lr(rep.lambda_max)
    x0 = torch.randn(n, generator=g, dtype=F64)
    for factor, converges in ((0.9, True), (1.1, False)):
        x = x0.clone()
        for _ in range(1000 if converges else 200):  # 200: 1.2^200 grows, no overflow
            x = x - factor * lr_max * (A @ x)
        if converges:
            assert float(f(x)) < 1e-6 * float(f(x0))
        else:
            assert float(f(x)) > 1e6 * float(f(x0))


def test_report_dict_and_plot(tmp_path):
    net, loss_fn, X, y = _mlp_case("classification")
    rep = curvature_report(net, loss_fn, X, y, k=2, n_trace_samples=10)
    d = rep.to_dict()
    json.dumps(d)
    assert set(d) >= {"lambda_max", "lambda_min", "trace", "condition_number", "max_stable_lr",
                      "verdict", "top_eigenvalues"}  # fmt: skip
    assert net.training  # mode restored
    fig = plot_spectrum(rep, tmp_path / "spectrum.png")
    assert (tmp_path / "spectrum.png").stat().st_size > 0
    assert fig.axes


def test_bad_arguments():
    hvp = hvp_function(lambda x: (x**2).sum(), torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match="which must be"):
        eigenvalues(hvp, 3, which="LM")
    with pytest.raises(ValueError, match="k must be"):
        eigenvalues(hvp, 3, k=0)
    with pytest.raises(ValueError, match="n_samples must be"):
        hutchinson_trace(hvp, 3, n_samples=1)
    with pytest.raises(ValueError, match="method must be"):
        hutchinson_trace(hvp, 3, method="exact")


def test_hutchinson_plain_and_hutchpp_unbiased_on_diagonal_dominant_matrix():
    g = torch.Generator().manual_seed(1)
    n = 200
    B = torch.randn(n, n, generator=g, dtype=F64) * 0.05
    A = torch.diag(torch.linspace(1, 3, n, dtype=F64)) + B @ B.T
    tr = float(A.trace())
    for method in ("hutchinson", "hutch++"):
        est, se = hutchinson_trace(lambda V: V @ A, n, n_samples=300, method=method)
        assert abs(est - tr) <= 4 * se + 1e-9 * tr  # within 4 standard errors (fixed seed)
        assert se < 0.01 * tr
    assert math.isinf(max_stable_lr(-1.0))
