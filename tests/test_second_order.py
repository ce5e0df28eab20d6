"""Second-order solvers: one-step transcriptions of the notes' formulas, sklearn/closed-form
references, nn.Module wiring and bad-input errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from goodfit.optim import second_order as so
from goodfit.optim.second_order import (
    SECOND_ORDER,
    fit_least_squares,
    gauss_newton,
    hessian_free,
    levenberg,
    levenberg_marquardt,
    newton,
)

F64 = torch.float64


def _exp_problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 3, 30, dtype=F64)
    y = 2.5 * torch.exp(-1.3 * t) + 0.5 + 0.01 * torch.randn(30, generator=g, dtype=F64)

    def residuals(b):
        return b[0] * torch.exp(-b[1] * t) + b[2] - y

    def jac_np(b):  # hand-written Jacobian, for the reference transcriptions only
        b = b.numpy()
        tt = t.numpy()
        e = np.exp(-b[1] * tt)
        return np.stack([e, -b[0] * tt * e, np.ones_like(tt)], 1)

    return residuals, jac_np, torch.tensor([1.0, 0.5, 0.0], dtype=F64)


def test_gauss_newton_one_step_is_seed000_formula():
    residuals, jac_np, x0 = _exp_problem()
    J, r = jac_np(x0), residuals(x0).numpy()
    expected = x0.numpy() - np.linalg.inv(J.T @ J) @ J.T @ r  # W - (J^T J)^{-1} J^T f
    for solver in ("lstsq", "cholesky"):
        res = gauss_newton(residuals, x0, max_iter=1, solver=solver)
        np.testing.assert_allclose(res.x.numpy(), expected, rtol=1e-10)
        assert res.n_iter == 1 and res.n_jev == 1 and res.n_fev == 2


@pytest.mark.parametrize("scaling", ["marquardt", "identity"])
def test_levenberg_one_step_is_seed000_formula(scaling):
    # method = "levenberg": scaling="identity" is the note's literal (J^T J + mu I)^{-1} J^T f
    residuals, jac_np, x0 = _exp_problem()
    J, r = jac_np(x0), residuals(x0).numpy()
    mu = 0.1
    D = np.diag(np.diag(J.T @ J)) if scaling == "marquardt" else np.eye(3)
    expected = x0.numpy() - np.linalg.solve(J.T @ J + mu * D, J.T @ r)
    res = levenberg(residuals, x0, max_iter=1, mu0=mu, scaling=scaling)
    assert res.records[0]["accepted"]
    np.testing.assert_allclose(res.x.numpy(), expected, rtol=1e-10)


def test_levenberg_rejects_and_raises_mu():
    # From a far start a huge mu0 makes tiny accepted steps (mu decreases), a tiny mu0 from a
    # bad start gets rejections (mu increases): check the adaptive rule's direction.
    residuals, _, x0 = _exp_problem()
    res = levenberg(residuals, torch.tensor([10.0, 5.0, -3.0], dtype=F64), mu0=1e-8)
    recs = res.records
    for a, b in itertools.pairwise(recs):
        if b["accepted"]:
            assert b["mu"] <= a["mu"]
        else:
            assert b["mu"] > a["mu"]
    assert res.converged
    # matches scipy's MINPACK on the same problem
    from scipy.optimize import least_squares

    ref = least_squares(lambda b: residuals(torch.from_numpy(b)).numpy(), x0.numpy(),
                        method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15)  # fmt: skip
    np.testing.assert_allclose(res.x.numpy(), ref.x, rtol=1e-8)


def test_newton_one_step_is_eq_8_28():
    A = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=F64)
    b = torch.tensor([1.0, -1.0], dtype=F64)

    def loss(x):
        return 0.5 * x @ A @ x - b @ x + 0.25 * (x**4).sum()

    x0 = torch.tensor([1.0, 1.0], dtype=F64)
    g = (A @ x0 - b + x0**3).numpy()
    H = (A + torch.diag(3 * x0**2)).numpy()
    alpha = 0.7
    expected = x0.numpy() - np.linalg.solve(H + alpha * np.eye(2), g)  # eq. 8.28
    res = newton(loss, x0, alpha=alpha, max_iter=1, line_search=False)
    np.testing.assert_allclose(res.x.numpy(), expected, rtol=1e-12)
    # GBC Algorithm 8.8 (alpha = 0) on a quadratic: exact minimizer in one step
    res = newton(lambda x: 0.5 * x @ A @ x - b @ x, x0, max_iter=1)
    np.testing.assert_allclose(res.x.numpy(), np.linalg.solve(A.numpy(), b.numpy()), rtol=1e-12)


def _logistic_data():
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=300, n_features=6, n_informative=4, random_state=0)
    return torch.tensor(X, dtype=F64), torch.tensor(y, dtype=F64)


@pytest.mark.parametrize("method", ["newton", "hessian_free"])
def test_logistic_regression_matches_sklearn(method):
    from sklearn.linear_model import LogisticRegression

    X, y = _logistic_data()
    n, d = X.shape
    lam = 1e-2

    def loss(theta):  # mean log-loss + lam/2 ||w||^2, intercept unpenalized
        z = X @ theta[:d] + theta[d]
        return (
            nn.functional.binary_cross_entropy_with_logits(z, y) + 0.5 * lam * theta[:d] @ theta[:d]
        )

    # sklearn minimizes C * sum(log-loss) + ||w||^2 / 2; dividing by C n gives ours with
    # lam = 1 / (C n), i.e. C = 1 / (n lam).
    clf = LogisticRegression(C=1.0 / (n * lam), tol=1e-12, max_iter=10_000).fit(
        X.numpy(), y.numpy()
    )
    ref = np.concatenate([clf.coef_.ravel(), clf.intercept_])
    res = SECOND_ORDER[method](loss, torch.zeros(d + 1, dtype=F64), gtol=1e-10)
    assert res.converged, res.message
    np.testing.assert_allclose(res.x.numpy(), ref, rtol=1e-5, atol=1e-7)
    if method == "newton":
        assert res.n_iter <= 8  # a handful of iterations (quadratic convergence)


def test_newton_damping_handles_nonconvex_rosenbrock():
    def rosen(x):
        return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2

    res = newton(rosen, torch.tensor([-1.2, 1.0], dtype=F64), gtol=1e-10)
    assert res.converged
    np.testing.assert_allclose(res.x.numpy(), [1.0, 1.0], atol=1e-8)
    assert all(b <= a for a, b in itertools.pairwise(res.history))
    # started at a saddle's neighbourhood of f = x^2 - y^2 + y^4 / 4: damping escapes to a min
    res = newton(lambda z: z[0] ** 2 - z[1] ** 2 + z[1] ** 4 / 4,
                 torch.tensor([0.3, 1e-3], dtype=F64), gtol=1e-10)  # fmt: skip
    np.testing.assert_allclose(res.x.abs().numpy(), [0.0, np.sqrt(2.0)], atol=1e-7)


@pytest.mark.parametrize("method", sorted(SECOND_ORDER))
def test_fit_least_squares_linear_model_matches_lstsq(method):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(50, 4, generator=g)
    y = (
        X @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
        + 0.7
        + 0.1 * torch.randn(50, 1, generator=g)
    )
    model = nn.Linear(4, 1)
    Xa = torch.cat([X, torch.ones(50, 1)], 1).double()
    ref = torch.linalg.lstsq(Xa, y.double()).solution.squeeze(1)
    opts = {"gtol": 1e-10} if method in ("newton", "hessian_free") else {}
    res = fit_least_squares(model, X, y, method, **opts)
    got = torch.cat([model.weight.detach().ravel(), model.bias.detach()]).double()
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)  # float32 model
    assert res.converged
    assert model.weight.dtype == torch.float32  # written back in the model's dtype
    assert len(res.history) == len(res.records) + 1
    assert res.records[-1]["train_loss"] == pytest.approx(
        float(((Xa @ ref - y.double().squeeze(1)) ** 2).mean()), rel=1e-6
    )


def test_fit_least_squares_mlp():
    torch.manual_seed(0)
    X = torch.linspace(-2, 2, 64).unsqueeze(1)
    y = torch.sin(2 * X)
    net = nn.Sequential(nn.Linear(1, 10), nn.Tanh(), nn.Linear(10, 1))
    with torch.no_grad():
        before = float(((net(X) - y) ** 2).mean())
        res = fit_least_squares(net, X, y, "levenberg_marquardt", max_iter=40)
        after = float(((net(X) - y) ** 2).mean())
    assert after < 1e-2 * before
    # the solve runs in float64; the float32 write-back perturbs the small MSE (~1e-4 rel.)
    assert res.records[-1]["train_loss"] == pytest.approx(after, rel=1e-2)


# --------------------------------------------------------------------------- bad input


def test_residual_shape_mismatch():
    net = nn.Linear(3, 1)
    X, y = torch.randn(10, 3), torch.randn(10)
    with pytest.raises(ValueError, match=r"shape mismatch.*\(10, 1\).*\(10,\)"):
        fit_least_squares(net, X, y)
    with pytest.raises(ValueError, match="1-D tensor"):
        levenberg_marquardt(lambda b: torch.stack([b, b]), torch.ones(2, dtype=F64))
    calls = {"n": 0}

    def varying(b):
        calls["n"] += 1
        return torch.cat([b, b[:1]]) if calls["n"] > 1 else b - 1.0

    with pytest.raises(ValueError, match="residual shape mismatch"):
        gauss_newton(varying, torch.zeros(2, dtype=F64))


def test_non_finite_jacobian():
    # sqrt(x) at x = 0: finite residual, infinite derivative
    with pytest.raises(ValueError, match=r"non-finite Jacobian.*parameters \[0\]"):
        levenberg_marquardt(lambda b: torch.sqrt(b) - 1.0, torch.tensor([0.0, 1.0], dtype=F64))


def test_too_large_for_dense_methods():
    net = nn.Linear(100, 60)  # 6060 parameters > 5000
    X, y = torch.randn(8, 100), torch.randn(8, 60)
    for method in ("levenberg_marquardt", "gauss_newton", "newton"):
        with pytest.raises(ValueError, match=r"6060 parameters.*hessian_free.*first-order"):
            fit_least_squares(net, X, y, method)
    res = fit_least_squares(net, X, y, "hessian_free", max_iter=3)  # the suggested alternative
    assert res.n_iter == 3 and res.n_hev > 0


def test_hyperparameter_validation():
    residuals, _, x0 = _exp_problem()
    with pytest.raises(ValueError, match="mu0 must be"):
        levenberg(residuals, x0, mu0=-1.0)
    with pytest.raises(ValueError, match="scaling must be"):
        levenberg(residuals, x0, scaling="more")
    with pytest.raises(ValueError, match="factor must be"):
        levenberg_marquardt(residuals, x0, factor=0.0)
    with pytest.raises(ValueError, match="jac must be"):
        levenberg_marquardt(residuals, x0, jac="central")
    with pytest.raises(TypeError):
        levenberg_marquardt(residuals, x0, mu0=1e-3)  # Moré's algorithm has no mu0
    with pytest.raises(ValueError, match="max_iter must be"):
        gauss_newton(residuals, x0, max_iter=0)
    with pytest.raises(ValueError, match="alpha must be"):
        newton(lambda x: (x**2).sum(), x0, alpha=-0.1)
    with pytest.raises(ValueError, match="x0 must be"):
        newton(lambda x: (x**2).sum(), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="method must be one of"):
        fit_least_squares(nn.Linear(1, 1), torch.zeros(2, 1), torch.zeros(2, 1), "adam")
    with pytest.raises(TypeError):
        SECOND_ORDER["levenberg_marquardt"](residuals, x0, learning_rate=0.1)
    with pytest.raises(ValueError, match="scalar"):
        hessian_free(lambda x: x * 2, x0)
    assert so.__all__ and "SECOND_ORDER" in so.__all__


# --------------------------------------------------------------------------- honest results


def test_gauss_newton_divergence_on_atan_is_reported():
    # One residual r(x) = atan(x): Gauss-Newton is Newton's root-finding iteration
    # x <- x - (1 + x^2) atan(x), which diverges for |x0| > 1.3917 (|x| grows every step and
    # the cost 0.5 atan(x)^2 rises towards pi^2 / 8). Far out (1 + x^2) overflows, J = 0, and the
    # step and gradient tests are met trivially: that must not read as convergence.
    res = gauss_newton(torch.atan, torch.tensor([2.0], dtype=F64))
    assert res.diverged and not res.converged
    assert res.fun > res.history[0] and "diverged: the objective rose" in res.message
    assert abs(float(res.x)) > 1e100
    ok = gauss_newton(torch.atan, torch.tensor([1.0], dtype=F64))  # inside the basin
    assert ok.converged and not ok.diverged and abs(float(ok.x)) < 1e-12
    lm = levenberg_marquardt(torch.atan, torch.tensor([2.0], dtype=F64))  # LM is monotone
    assert lm.converged and not lm.diverged and abs(float(lm.x)) < 1e-12


def test_newton_without_line_search_divergence_is_reported():
    def loss(x):
        return 0.5 * torch.atan(x).pow(2).sum()

    res = newton(loss, torch.tensor([2.0], dtype=F64), line_search=False)
    assert res.diverged and not res.converged
    assert "raised the loss" in res.message  # gtol met only because the gradient vanished far out
    res = newton(loss, torch.tensor([2.0], dtype=F64))  # the Armijo safeguard
    assert res.converged and not res.diverged
    assert all(b <= a for a, b in itertools.pairwise(res.history))


def test_gauss_newton_on_a_saturating_neuron_diverges_through_fit_least_squares():
    # The shape (an MLP regression from a bad start) reduced to one tanh unit, where it
    # is provable: one sample x = 1, target 0, so Gauss-Newton is Newton's iteration on tanh(w),
    # divergent for |w0| > 1.0887; the cost rises from 0.5 tanh(1.5)^2 to 0.5.
    def neuron():
        net = nn.Sequential(nn.Linear(1, 1, bias=False), nn.Tanh())
        with torch.no_grad():
            net[0].weight.fill_(1.5)
        return net

    X, y = torch.ones(1, 1), torch.zeros(1, 1)
    res = fit_least_squares(neuron(), X, y, "gauss_newton")
    assert res.diverged and not res.converged  # before: converged=True ("gtol")
    assert res.history[-1] > res.history[0]
    for method in ("levenberg_marquardt", "newton", "hessian_free"):
        net = neuron()
        res = fit_least_squares(net, X, y, method)
        assert res.converged and not res.diverged, (method, res.message)
        assert abs(float(net[0].weight.detach())) < 1e-8


def test_gauss_newton_zero_step_at_a_non_stationary_point_is_not_convergence(monkeypatch):
    # The failure: a zero (or uphill) least-squares step far from a stationary point
    # met ftol (no actual and no predicted reduction) and xtol (no step) and read as converged.
    from goodfit.optim.second_order import gauss_newton_solver

    residuals, _, x0 = _exp_problem()
    monkeypatch.setattr(gauss_newton_solver, "_step", lambda J, r, solver: torch.zeros_like(x0))
    res = gauss_newton(residuals, x0)
    assert not res.converged and not res.diverged
    assert "predicts no decrease at a non-stationary point" in res.message


def test_least_squares_solve_is_rank_revealing_and_deterministic():
    # torch's CPU default driver (gelsy) is given an uninitialized pivot array: on a matrix with
    # a zero column it returns rank 0 and p = 0 on some calls (pytorch/pytorch#187411).
    from goodfit.optim.second_order.problem import _lstsq, _svd_lstsq

    A = torch.tensor([[0.0, 1.0], [0.0, 2.0], [0.0, 3.0]], dtype=F64)
    b = torch.tensor([2.0, 4.0, 6.0], dtype=F64)
    for _ in range(50):
        junk = torch.randint(-5, 5, (64,), dtype=torch.int32)  # dirty the allocator
        del junk
        np.testing.assert_allclose(_lstsq(A, b).numpy(), [0.0, 2.0], atol=1e-14)
    g = torch.Generator().manual_seed(0)
    J = torch.randn(40, 6, generator=g, dtype=F64)
    J[:, 2] = 0.0  # a dead unit
    J[:, 4] = J[:, 3]  # two identical units
    r = torch.randn(40, generator=g, dtype=F64)
    ref = np.linalg.lstsq(J.numpy(), r.numpy())[0]
    for solve in (_lstsq, _svd_lstsq):  # the CPU path and the one used on other devices
        np.testing.assert_allclose(solve(J, r).numpy(), ref, atol=1e-12)
        np.testing.assert_allclose(solve(A, b).numpy(), [0.0, 2.0], atol=1e-14)


def test_result_invariant_diverged_is_never_converged():
    from goodfit.optim.second_order import SecondOrderResult

    def result(x, fun, history, message=""):
        return SecondOrderResult(
            x=x, fun=fun, converged=True, n_iter=1, n_fev=1, n_jev=1, message=message,
            history=history,
        )  # fmt: skip

    up = result(torch.ones(2), 5.0, [1.0, 5.0], "xtol: relative step below xtol")
    assert up.diverged and not up.converged
    assert up.message == "xtol: relative step below xtol; diverged: the objective rose from 1 to 5"
    nan_x = result(torch.tensor([float("nan")]), 0.5, [1.0, 0.5])
    assert nan_x.diverged and not nan_x.converged
    assert result(torch.ones(1), float("inf"), [1.0]).diverged
    down = result(torch.ones(1), 0.5, [1.0, 0.5])
    assert down.converged and not down.diverged


def test_small_mlp_gauss_newton_is_honest():
    # A small MLP regression on 0/1 labels (classification turned regression, as in the issue):
    # from torch's default init the first full Gauss-Newton step raises the cost by orders of
    # magnitude; a run stopped there has diverged. Run on, it comes back down, and it may then
    # report convergence only at a point it reached downhill, below its start.
    g = torch.Generator().manual_seed(0)
    X = torch.randn(120, 2, generator=g)
    y = (X[:, :1] * X[:, 1:] > 0).float()
    for seed in range(3):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
        state = {k: v.clone() for k, v in net.state_dict().items()}
        res = fit_least_squares(net, X, y, "gauss_newton", max_iter=1)
        assert res.fun > 1e3 * res.history[0]
        assert res.diverged and not res.converged and "diverged" in res.message
        net.load_state_dict(state)
        res = fit_least_squares(net, X, y, "gauss_newton", max_iter=30)
        assert res.diverged == (res.fun > res.history[0])
        if res.converged:
            assert res.fun < res.history[0] and res.history[-1] <= res.history[-2]
