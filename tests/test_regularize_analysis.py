"""The notes' closed-form analysis of parameter penalties (seed 001 = GBC §7.1, §7.8), checked by
training with goodfit's penalties and optimizers (float64, full batch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import goodfit.optim as O
import goodfit.regularize as R
from goodfit.train.loop import fit


def _newton_minimize(param: nn.Parameter, objective, steps: int = 2) -> None:
    """Newton's method with the exact Hessian of ``objective`` (data term + goodfit penalty) by
    double backward: one step is exact on a quadratic, the second checks it stays there."""
    for _ in range(steps):
        (g,) = torch.autograd.grad(objective(), param, create_graph=True)
        g = g.flatten()
        hess = torch.stack(
            [torch.autograd.grad(gi, param, retain_graph=True)[0].flatten() for gi in g]
        )
        with torch.no_grad():
            param.sub_(torch.linalg.solve(hess, g.detach()).view_as(param))


def _data(n=60, d=5, seed=0):
    g = np.random.default_rng(seed)
    X = g.normal(size=(n, d))
    y = X @ g.normal(size=d) + 0.3 * g.normal(size=n)
    return X, y


def _linear(d):
    lin = nn.Linear(d, 1, bias=False).double()
    nn.init.zeros_(lin.weight)
    return lin


def test_ridge_normal_equations_gbc_7_17():
    # GBC 7.17: w = (X^T X + alpha I)^{-1} X^T y for 1/2 ||Xw - y||^2 + alpha/2 w^T w
    X, y = _data()
    alpha = 3.0
    w_ref = np.linalg.solve(X.T @ X + alpha * np.eye(5), X.T @ y)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    lin, pen = _linear(5), R.l2(alpha)
    _newton_minimize(lin.weight, lambda: 0.5 * ((lin(Xt).squeeze(1) - yt) ** 2).sum() + pen(lin))
    np.testing.assert_allclose(lin.weight.detach().numpy()[0], w_ref, rtol=0, atol=1e-6)


def test_ridge_through_fit_with_seed000_batch_scaling():
    # seed 000: lambda/(2m)||W||^2 with a batch-mean loss 1/(2m)||Xw - y||^2 is the ridge solution
    # with alpha = lambda, independent of m (full batch m = N here), trained by goodfit.fit.
    X, y = _data(n=40, seed=1)
    lam = 2.5
    w_ref = np.linalg.solve(X.T @ X + lam * np.eye(5), X.T @ y)
    lin = _linear(5)
    opt = torch.optim.LBFGS(
        lin.parameters(),
        max_iter=200,
        tolerance_grad=1e-14,
        tolerance_change=1e-16,
        line_search_fn="strong_wolfe",
    )
    hist = fit(
        lin,
        (torch.from_numpy(X), torch.from_numpy(y)[:, None]),
        optimizer=opt,
        epochs=4,
        batch_size=40,
        loss=lambda out, t: 0.5 * F.mse_loss(out, t),
        penalty=R.l2(lam, batch_size=40),
        progress=False,
    )
    np.testing.assert_allclose(lin.weight.detach().numpy()[0], w_ref, rtol=0, atol=1e-6)
    last = hist[-1] if not hasattr(hist, "records") else hist.records[-1]
    assert last["penalty"] == pytest.approx(lam / 80 * float((w_ref**2).sum()), rel=1e-5)


H3 = np.array([[2.0, -1.0, 0.0], [-1.0, 2.0, -1.0], [0.0, -1.0, 2.0]])
SEED_3x3 = np.array([[0.46, -0.14, -0.04], [-0.14, 0.43, -0.14], [-0.04, -0.14, 0.46]])


def test_gbc_3x3_numerical_example():
    # seed 001: H = Q Lambda Q^T; L2 minimizer w~ = Q (Lambda + alpha I)^{-1} Lambda Q^T w*,
    # and for the slide's H with alpha = 2 that matrix is the printed one (2 decimals)
    lam, Q = np.linalg.eigh(H3)
    M = Q @ np.diag(lam / (lam + 2.0)) @ Q.T
    np.testing.assert_array_equal(np.round(M, 2), SEED_3x3)
    np.testing.assert_allclose(Q @ np.diag(lam / lam) @ Q.T, np.eye(3), atol=1e-14)
    # train: J(w) = 1/2 (w - w*)^T H (w - w*) + l2(alpha = 2), for w* = each basis vector
    Ht = torch.from_numpy(H3)
    for i in range(3):
        w_star = torch.eye(3, dtype=torch.float64)[i]
        lin, pen = _linear(3), R.l2(2.0)

        def objective(lin=lin, pen=pen, w_star=w_star):
            d = lin.weight[0] - w_star
            return 0.5 * d @ Ht @ d + pen(lin)

        _newton_minimize(lin.weight, objective)
        np.testing.assert_allclose(lin.weight.detach().numpy()[0], M[:, i], atol=1e-10)


def _soft_threshold(w_star, h, alpha):
    # seed 001: w_i = sign(w*_i) max(|w*_i| - alpha / H_ii, 0)
    return np.sign(w_star) * np.maximum(np.abs(w_star) - alpha / h, 0.0)


H_DIAG = np.array([1.0, 2.0, 4.0, 0.5, 3.0])
W_STAR = np.array([0.3, -1.5, 0.1, 2.0, -0.2])
ALPHA = 0.5


def _diag_quadratic(lin):
    h, ws = torch.from_numpy(H_DIAG), torch.from_numpy(W_STAR)
    return 0.5 * (h * (lin.weight[0] - ws) ** 2).sum()


def test_l1_diagonal_hessian_optimality_with_penalty():
    w_ref = _soft_threshold(W_STAR, H_DIAG, ALPHA)
    assert (w_ref == 0).sum() == 2  # the example has zeros, and nonzeros
    lin = _linear(5)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w_ref)[None])
    (_diag_quadratic(lin) + R.l1(ALPHA)(lin)).backward()
    g = lin.weight.grad[0].numpy()
    nz = w_ref != 0
    # stationary along nonzero coordinates (H_ii (w_i - w*_i) + alpha sign(w_i) = 0) ...
    np.testing.assert_allclose(g[nz], 0.0, atol=1e-14)
    # ... and 0 is in the subdifferential at the zeros: |H_ii (0 - w*_i)| <= alpha
    assert np.all(np.abs(H_DIAG[~nz] * W_STAR[~nz]) <= ALPHA)


def test_proximal_optimizer_reaches_exact_zeros():
    # ISTA: gradient step on the quadratic, then soft-threshold with eta * alpha
    # (goodfit.optim.add_proximal_l1); eta = 0.2 < 1 / max H_ii so it contracts by 0.8 at worst.
    w_ref = _soft_threshold(W_STAR, H_DIAG, ALPHA)
    lin = _linear(5)
    opt = O.Optimizer(lin.parameters(), O.chain(O.scale_by_lr(0.2), O.add_proximal_l1(ALPHA)))
    for _ in range(300):
        opt.zero_grad()
        _diag_quadratic(lin).backward()
        opt.step()
    w = lin.weight.detach().numpy()[0]
    np.testing.assert_array_equal(w == 0, w_ref == 0)  # exact zeros, exactly where predicted
    np.testing.assert_allclose(w, w_ref, rtol=0, atol=1e-12)
    assert R.sparsity_report(lin) == {"<root>": 2 / 5}


def _rotation(d, seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


def test_gradient_descent_trajectory_gbc_7_40():
    # seed 001: from w(0) = 0, Q^T w(tau) = [I - (I - eps Lambda)^tau] Q^T w*  (exact)
    lam = np.array([0.01, 0.1, 0.5, 1.0])
    Q = _rotation(4)
    H = Q @ np.diag(lam) @ Q.T
    w_star = np.array([1.0, -2.0, 0.5, 3.0])
    eps, tau = 0.01, 50
    lin = _linear(4)
    opt = torch.optim.SGD(lin.parameters(), lr=eps)
    Ht, ws = torch.from_numpy(H), torch.from_numpy(w_star)
    for _ in range(tau):
        opt.zero_grad()
        d = lin.weight[0] - ws
        (0.5 * d @ Ht @ d).backward()
        opt.step()
    expect = Q @ ((1 - (1 - eps * lam) ** tau) * (Q.T @ w_star))
    np.testing.assert_allclose(lin.weight.detach().numpy()[0], expect, atol=1e-12)


def test_early_stopping_matches_l2_with_alpha_one_over_eps_tau():
    # GBC eq. 7.44: early stopping after tau steps of rate eps ~ L2 with alpha = 1 / (eps tau).
    # (The slide's last line prints "alpha ~ eps tau"; its own derivation, I - eps tau Lambda ~
    # I - alpha^{-1} Lambda, gives alpha^{-1} = eps tau.) Per eigen-direction, with
    # x_i = eps tau lambda_i, the shrink factors are f_i = 1 - (1 - eps lambda_i)^tau (early
    # stopping) and g_i = lambda_i / (lambda_i + alpha) = x_i / (1 + x_i) (L2); expanding,
    # f_i / g_i - 1 = x_i / 2 + O(x_i^2) + O(eps lambda_i): we check that expansion.
    lam = np.array([0.01, 0.1, 0.5, 1.0])
    eps, tau = 0.01, 50
    alpha = 1.0 / (eps * tau)
    Q = _rotation(4, seed=1)
    H = Q @ np.diag(lam) @ Q.T
    w_star = np.array([1.0, -2.0, 0.5, 3.0])
    Ht, ws = torch.from_numpy(H), torch.from_numpy(w_star)
    # L2 solution via goodfit's penalty
    lin, pen = _linear(4), R.l2(alpha)

    def objective():
        d = lin.weight[0] - ws
        return 0.5 * d @ Ht @ d + pen(lin)

    _newton_minimize(lin.weight, objective)
    w_l2 = lin.weight.detach().numpy()[0]
    # early-stopped gradient descent (closed form checked in the test above)
    w_es = Q @ ((1 - (1 - eps * lam) ** tau) * (Q.T @ w_star))
    ratio = (Q.T @ w_es) / (Q.T @ w_l2)  # = f_i / g_i, per eigen-direction
    x = eps * tau * lam
    assert np.all(np.abs(ratio - 1 - x / 2) <= x**2 + eps * lam)
    # and the L2 solution found by training is the closed form Q (Lambda + alpha I)^-1 Lambda Q^T w*
    np.testing.assert_allclose(w_l2, Q @ (lam / (lam + alpha) * (Q.T @ w_star)), atol=1e-10)
