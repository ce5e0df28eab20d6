"""Moré's trust-region Levenberg-Marquardt (MINPACK lmder): lmpar and qrsolv against plain
transcriptions on normal equations, the radius update against its published constants, the
whole solve against scipy's MINPACK, forward-difference Jacobians, box bounds."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.optimize import least_squares
from torch.func import jacrev

from goodfit.optim.second_order import (
    SECOND_ORDER,
    levenberg,
    levenberg_marquardt,
    module_residuals,
)
from goodfit.optim.second_order import compiled_trust_region as ctr
from goodfit.optim.second_order import levenberg_marquardt_solver as lm_module
from goodfit.optim.second_order import trust_region as tr
from goodfit.optim.second_order.problem import _LeastSquares, auto_jacobian_mode

F64 = torch.float64
T = torch.linspace(0, 3, 30, dtype=F64)
NOISE = torch.randn(30, generator=torch.Generator().manual_seed(0), dtype=F64)
Y = 2.5 * torch.exp(-1.3 * T) + 0.5 + 0.01 * NOISE


def _residuals(b):
    return b[0] * torch.exp(-b[1] * T) + b[2] - Y


X0 = torch.tensor([1.0, 0.5, 0.0], dtype=F64)

# a small fixed problem for lmpar: J (5 x 3), f, D, delta
J_FIXED = np.array(
    [[1.0, 2.0, 0.5], [0.3, -1.0, 2.0], [2.0, 0.1, -0.7], [-0.4, 0.9, 1.1], [1.5, -0.2, 0.3]]
)
F_FIXED = np.array([0.7, -1.2, 2.1, 0.4, -0.9])
D_FIXED = np.array([2.5, 1.5, 0.8])


def _plain_lmpar(J, f, D, delta, par):
    """Moré 1978 §5.2 on the normal equations: x(a) solves (J^T J + a D^2) x = J^T f,
    phi(a) = ||D x(a)|| - delta, Newton steps a <- a - (phi + delta) / delta * phi / phi',
    safeguarded by parl <= a <= paru, at most 10; par = 0 if phi(0) <= 0.1 delta."""

    def solve(a):
        return np.linalg.lstsq(J.T @ J + a * np.diag(D**2), J.T @ f, rcond=None)[0]

    def newton_correction(a, x):
        q = D * x
        qn = np.linalg.norm(q)
        dphi = -(D * q) @ np.linalg.solve(J.T @ J + a * np.diag(D**2), D * q) / qn
        phi = qn - delta
        return -(phi + delta) / delta * phi / dphi

    x = solve(0.0)
    fp = np.linalg.norm(D * x) - delta
    if fp <= 0.1 * delta:
        return 0.0, x
    parl = newton_correction(0.0, x)  # J has full rank here
    gnorm = np.linalg.norm((J.T @ f) / D)
    paru = gnorm / delta
    par = min(max(par, parl), paru)
    if par == 0:
        par = gnorm / np.linalg.norm(D * x)
    for it in range(1, 11):
        if par == 0:
            par = max(np.finfo(float).tiny, 1e-3 * paru)
        x = solve(par)
        fp_old, fp = fp, np.linalg.norm(D * x) - delta
        if abs(fp) <= 0.1 * delta or (parl == 0 and fp <= fp_old < 0) or it == 10:
            break
        parc = newton_correction(par, x)
        if fp > 0:
            parl = max(parl, par)
        if fp < 0:
            paru = min(paru, par)
        par = max(parl, par + parc)
    return par, x


requires_numba = pytest.mark.skipif(not ctr.AVAILABLE, reason="numba is not installed")
HOSTS = ["lapack", pytest.param("compiled", marks=requires_numba)]


@pytest.fixture(params=HOSTS)
def host(request, monkeypatch):
    """Both implementations of the host work: NumPy/LAPACK, and the compiled MINPACK
    transcription that small problems use (``compiled_trust_region``)."""
    if request.param == "lapack":
        monkeypatch.setattr(ctr, "COMPILED_MAX_PARAMS", 0)
    return request.param


def _compiled_lmpar(J, f, D, delta, par):
    """``lmpar`` through the compiled factorization and trial step (x = 0, so the trial
    point is ``-x(par)``)."""
    n = J.shape[1]
    diag = np.empty(n)
    sub, _, _, _ = ctr.factor(J, f, np.linalg.norm(f), diag, True, np.zeros(n))
    diag[:] = D
    par, step, x_new, pnorm, _, _ = sub.step(delta, par, np.linalg.norm(f), np.zeros(n))
    np.testing.assert_array_equal(x_new, -step)
    assert pnorm == pytest.approx(np.linalg.norm(D * step), rel=1e-14)
    return par, step


LMPARS = [tr.lmpar, pytest.param(_compiled_lmpar, marks=requires_numba)]


@pytest.mark.parametrize("lmpar", LMPARS, ids=["lapack", "compiled"])
@pytest.mark.parametrize(("delta", "par0"), [(0.3, 0.0), (0.05, 0.0), (0.3, 10.0), (100.0, 0.0)])
def test_lmpar_matches_a_plain_transcription(delta, par0, lmpar):
    if lmpar is tr.lmpar:
        R, ipvt, qtf, _ = tr.factor_jacobian(J_FIXED, F_FIXED)
        par, x = tr.lmpar(R, ipvt, D_FIXED, qtf, delta, par0)
    else:
        par, x = lmpar(J_FIXED, F_FIXED, D_FIXED, delta, par0)
    ref_par, ref_x = _plain_lmpar(J_FIXED, F_FIXED, D_FIXED, delta, par0)
    assert par == pytest.approx(ref_par, rel=1e-10, abs=1e-300)
    np.testing.assert_allclose(x, ref_x, rtol=1e-10)
    dxnorm = np.linalg.norm(D_FIXED * x)
    if par > 0:  # the secular equation met to 10%
        assert abs(dxnorm - delta) <= 0.1 * delta
    else:  # the Gauss-Newton step fits in 1.1 delta
        assert dxnorm <= 1.1 * delta
        np.testing.assert_allclose(x, np.linalg.lstsq(J_FIXED, F_FIXED, rcond=None)[0])


def test_qrsolv_is_the_damped_least_squares_solution():
    R, ipvt, qtf, acnorm = tr.factor_jacobian(J_FIXED, F_FIXED)
    np.testing.assert_allclose(acnorm, np.linalg.norm(J_FIXED, axis=0))
    par = 0.37
    x, _ = tr.qrsolv(R, ipvt, math.sqrt(par) * D_FIXED, qtf)
    ref = np.linalg.solve(J_FIXED.T @ J_FIXED + par * np.diag(D_FIXED**2), J_FIXED.T @ F_FIXED)
    np.testing.assert_allclose(x, ref, rtol=1e-12)
    # MINPACK's gtol measure: max_j |J_j^T f| / (||J_j|| ||f||)
    fn = np.linalg.norm(F_FIXED)
    cos = np.abs(J_FIXED.T @ F_FIXED) / (np.linalg.norm(J_FIXED, axis=0) * fn)
    assert tr.scaled_gradient_norm(R, ipvt, qtf, acnorm, fn) == pytest.approx(cos.max())


@requires_numba
@pytest.mark.parametrize(("m", "n", "rank"), [(5, 3, 3), (40, 7, 7), (30, 6, 4), (3, 5, 3)])
def test_compiled_factorization_is_lapacks(m, n, rank):
    """MINPACK's qrfac (compiled) against LAPACK geqp3: the same pivots (largest remaining
    column norm first), the same R and Q^T f (both Householder, same sign convention), the
    column norms, gnorm; and D set and updated as mode = 1 asks. Rank-deficient and wide
    J too (zero columns and rows padded)."""
    g = np.random.default_rng(m * n)
    J = g.standard_normal((m, rank)) @ g.standard_normal((rank, n)) * g.uniform(0.1, 10, n)
    J[:, n - 1] = 0.0 if rank < n else J[:, n - 1]  # a column autograd would leave at zero
    f = g.standard_normal(m)
    R, ipvt, qtf, acnorm = tr.factor_jacobian(J, f)
    fn = float(np.linalg.norm(f))
    diag = np.empty(n)
    x = g.standard_normal(n)
    sub, acn, gnorm, xnorm = ctr.factor(J, f, fn, diag, True, x)
    np.testing.assert_allclose(acn, np.linalg.norm(J, axis=0), rtol=1e-14)
    np.testing.assert_array_equal(sub.ipvt[:rank], ipvt[:rank])
    k = min(rank, m)  # beyond the rank, R is rounding noise in either factorization
    # rows agree up to sign: where a column has nothing below the diagonal, LAPACK leaves it
    # (no reflection), MINPACK reflects it (R_jj = -|a_jj| sign(a_jj) either way otherwise)
    sign = (np.sign(np.diag(sub.r)) * np.sign(np.diag(R)))[:k, None]
    np.testing.assert_allclose(
        sign * np.triu(sub.r)[:k], R[:k], rtol=1e-10, atol=1e-12 * np.abs(R).max()
    )
    np.testing.assert_allclose(sign[:, 0] * sub.qtf[:k], qtf[:k], rtol=1e-10, atol=1e-12 * fn)
    assert gnorm == pytest.approx(tr.scaled_gradient_norm(R, ipvt, qtf, acnorm, fn), rel=1e-10)
    d0 = np.where(acnorm == 0.0, 1.0, acnorm)
    np.testing.assert_allclose(diag, d0, rtol=1e-14)
    assert xnorm == pytest.approx(np.linalg.norm(d0 * x), rel=1e-14)
    # later Jacobians: D is the running maximum of the column norms; xnorm is not computed
    _, _, _, xnorm = ctr.factor(0.5 * J, f, fn, diag, False, x)
    np.testing.assert_allclose(diag, d0, rtol=1e-14) and xnorm == 0.0
    ctr.factor(3.0 * J, f, fn, diag, False, x)
    np.testing.assert_allclose(diag, np.maximum(d0, 3.0 * acnorm), rtol=1e-14)


@requires_numba
def test_compiled_qrsolv_is_the_damped_least_squares_solution():
    n = J_FIXED.shape[1]
    sub, _, _, _ = ctr.factor(J_FIXED, F_FIXED, 1.0, np.empty(n), True, np.zeros(n))
    par, x, sdiag = 0.37, np.empty(n), np.empty(n)
    r = sub.r.copy()
    ctr._kernels()._qrsolv(r, sub.ipvt, math.sqrt(par) * D_FIXED, sub.qtf, x, sdiag)
    ref = np.linalg.solve(J_FIXED.T @ J_FIXED + par * np.diag(D_FIXED**2), J_FIXED.T @ F_FIXED)
    np.testing.assert_allclose(x, ref, rtol=1e-12)
    np.testing.assert_array_equal(np.triu(r), np.triu(sub.r))  # R's upper triangle kept


@requires_numba
def test_compiled_norms_neither_overflow_nor_underflow():
    for scale in (1e-200, 1.0, 1e200):
        v = scale * np.array([3.0, 4.0])
        assert ctr.enorm(v) == pytest.approx(5.0 * scale, rel=1e-15)
        assert ctr.scaled_norm(np.array([2.0, 0.5]), v) == pytest.approx(
            scale * math.hypot(6.0, 2.0), rel=1e-15
        )
    assert ctr.enorm(np.zeros(3)) == 0.0 and math.isnan(ctr.enorm(np.array([1.0, np.nan])))
    assert ctr.enorm(np.array([1.0, np.inf])) == np.inf


def test_published_constants():
    # MINPACK lmder/lmpar: p1, p5, p25, p75, p0001, p001; factor 100 (lmder1); 10 lmpar steps
    assert (tr.P1, tr.P5, tr.P25, tr.P75, tr.P0001, tr.P001) == (0.1, 0.5, 0.25, 0.75, 1e-4, 1e-3)
    assert tr.FACTOR == 100.0 and tr.LMPAR_MAX_ITER == 10
    assert np.finfo(np.float64).tiny == tr.DWARF


def test_trust_region_update_rules():
    up = tr.update_trust_region
    # ratio <= 0.25 with actred >= 0: temp = 1/2; delta = temp min(delta, 10 pnorm), par / temp
    assert up(0.2, 0.1, -1.0, 1.0, 0.9, 0.3, 1.0, 2.0) == pytest.approx((0.5, 4.0))
    assert up(0.2, 0.1, -1.0, 1.0, 0.9, 0.05, 1.0, 2.0) == pytest.approx((0.25, 4.0))
    # actred < 0: temp = 0.5 dirder / (dirder + 0.5 actred)
    temp = 0.5 * -1.0 / (-1.0 + 0.5 * -0.2)
    assert up(-0.5, -0.2, -1.0, 1.0, 1.1, 0.3, 1.0, 2.0) == pytest.approx((temp, 2.0 / temp))
    # ... but never below 0.1
    assert up(-5.0, -50.0, -1.0, 1.0, 7.0, 0.3, 1.0, 2.0) == pytest.approx((0.1, 20.0))
    # the residual grew tenfold (0.1 fnorm1 >= fnorm): temp = 0.1
    assert up(-0.5, -1.0, -100.0, 1.0, 10.0, 0.3, 1.0, 2.0) == pytest.approx((0.1, 20.0))
    # ratio >= 0.75: delta = pnorm / 0.5, par * 0.5
    assert up(0.8, 0.5, -1.0, 1.0, 0.5, 0.3, 1.0, 2.0) == pytest.approx((0.6, 1.0))
    # 0.25 < ratio < 0.75: unchanged, unless par = 0 (then delta = pnorm / 0.5)
    assert up(0.5, 0.5, -1.0, 1.0, 0.5, 0.3, 1.0, 2.0) == (1.0, 2.0)
    assert up(0.5, 0.5, -1.0, 1.0, 0.5, 0.3, 1.0, 0.0) == pytest.approx((0.6, 0.0))


def test_initial_radius_scaling_and_acceptance(monkeypatch, host):
    calls = []
    cls = ctr.CompiledSubproblem if host == "compiled" else lm_module.Subproblem
    real = cls.step

    def spy(sub, delta, par, fnorm, x):
        calls.append((sub.diag.copy(), delta))
        return real(sub, delta, par, fnorm, x)

    monkeypatch.setattr(cls, "step", spy)
    res = levenberg_marquardt(_residuals, X0)
    J0 = jacrev(_residuals)(X0).numpy()
    d0 = np.linalg.norm(J0, axis=0)
    np.testing.assert_allclose(calls[0][0], d0)
    assert calls[0][1] == pytest.approx(100.0 * np.linalg.norm(d0 * X0.numpy()))
    for (da, _), (db, _) in itertools.pairwise(calls):
        assert np.all(db >= da)  # D: running maximum of the column norms
    for rec in res.records:  # accepted exactly when rho >= 1e-4; the cost never rises
        assert rec["accepted"] == (rec["rho"] >= 1e-4)
    assert all(b <= a for a, b in itertools.pairwise(res.history))


def _minpack(tol):
    return least_squares(lambda b: _residuals(torch.from_numpy(b)).numpy(), X0.numpy(),
                         jac=lambda b: jacrev(_residuals)(torch.from_numpy(b)).numpy(),
                         method="lm", xtol=tol, ftol=tol, gtol=tol)  # fmt: skip


def test_whole_solve_tracks_minpack(host):
    # the compiled path is MINPACK's arithmetic (qrfac, Givens qrsolv): the same iterates and
    # counts as lmder's while the tests are above rounding level; LAPACK's factorizations
    # (blocked geqp3, Householder tpqrt) round differently, and at ftol = 1e-12, a relative
    # reduction known to ~4 digits, the last step can differ (8e-10 apart in x, measured)
    ref = _minpack(1e-12)
    res = levenberg_marquardt(_residuals, X0, ftol=1e-12, xtol=1e-12, gtol=1e-12)
    assert res.converged and not res.diverged
    if host == "compiled":
        np.testing.assert_allclose(res.x.numpy(), ref.x, rtol=1e-13)
        assert (res.n_fev, res.n_jev) == (ref.nfev, ref.njev)
    else:
        np.testing.assert_allclose(res.x.numpy(), ref.x, rtol=1e-8)
        assert abs(res.n_jev - ref.njev) <= 2
    # ... at 1e-15 the last trial steps are decided by rounding (ratios of 1e-16 noise), and
    # the count of rejected last trials may differ; the solution does not
    ref = _minpack(1e-15)
    res = levenberg_marquardt(_residuals, X0)
    np.testing.assert_allclose(res.x.numpy(), ref.x, rtol=1e-9)
    assert abs(res.n_jev - ref.njev) <= (1 if host == "compiled" else 2)
    # MINPACK lmder1's tolerances stop earlier, with a looser fit
    loose = levenberg_marquardt(_residuals, X0, ftol=1.49012e-8, xtol=1.49012e-8, gtol=0.0)
    assert loose.converged and loose.n_jev <= res.n_jev
    np.testing.assert_allclose(loose.x.numpy(), ref.x, rtol=1e-4)


def test_non_finite_trial_residuals_are_handled_as_minpack_does(host):
    """Residuals that are NaN beyond x = 5: the first trial (the Gauss-Newton step to 10) is
    rejected and the radius shrinks by the interpolation factor 1/3 (MINPACK's enorm gives a
    NaN norm, so the "residual grew tenfold" factor 0.1 does not apply); the trial points
    are MINPACK's."""

    def res(x):
        return torch.where(x < 5, x - 10.0, torch.nan)

    seen_mp, seen = [], []

    def f_np(b):
        seen_mp.append(float(b[0]))
        return res(torch.from_numpy(b)).numpy()

    least_squares(f_np, np.array([1.0]), jac=lambda b: np.ones((1, 1)), method="lm", max_nfev=6)

    def f(b):
        seen.append(float(b.detach()[0]))
        return res(b)

    out = levenberg_marquardt(f, torch.tensor([1.0], dtype=F64), max_iter=5)
    first = out.records[0]
    assert not first["accepted"] and first["rho"] == -1.0
    assert first["delta"] == pytest.approx(9.0 / 3.0)  # min(100 ||D x0||, ||p||) / 3
    assert seen[0] == seen[1] == 1.0  # r(x0), then its autograd record for the first J
    assert seen[2:] == pytest.approx(seen_mp[1:], rel=1e-15)


def test_forward_difference_jacobian_matches_the_analytic_one():
    x = torch.tensor([2.0, 0.7, -0.3], dtype=F64)
    prob = _LeastSquares(_residuals, x, "fd", "test")
    J_fd = prob.jacobian(x)
    np.testing.assert_allclose(J_fd.numpy(), jacrev(_residuals)(x).numpy(), rtol=1e-6, atol=1e-7)
    assert prob.n_jev == 1 and prob.n_fev == 1 + 1 + 3  # r(x0), r(x) for fd, one per column
    # x_j = 0: the step is sqrt(eps), not 0
    z = torch.tensor([2.0, 0.7, 0.0], dtype=F64)
    np.testing.assert_allclose(prob.jacobian(z)[:, 2].numpy(), np.ones(30), rtol=1e-6)


def test_forward_differences_fit_a_model_torch_cannot_differentiate():
    t, y = T.numpy(), Y.numpy()

    def numpy_model(b):  # leaves torch: jacrev/jacfwd cannot see through it
        bb = b.numpy()
        return torch.from_numpy(bb[0] * np.exp(-bb[1] * t) + bb[2] - y)

    with pytest.raises(RuntimeError):
        levenberg_marquardt(numpy_model, X0)
    res = levenberg_marquardt(numpy_model, X0, jac="fd")
    exact = levenberg_marquardt(_residuals, X0)
    assert res.converged
    np.testing.assert_allclose(res.x.numpy(), exact.x.numpy(), rtol=1e-6)
    assert res.n_fev >= 3 * res.n_jev  # n residuals per forward-difference Jacobian


def test_box_bounds_by_transformation_are_respected(host):
    seen = []

    def recording(b):
        seen.append(b.detach().clone())
        return _residuals(b)

    lo, hi = [0.0, 0.0, -1.0], [10.0, 1.0, 1.0]  # the free optimum has b1 = 1.3 > 1
    res = levenberg_marquardt(recording, X0, bounds=(lo, hi))
    ref = least_squares(lambda b: _residuals(torch.from_numpy(b)).numpy(), X0.numpy(),
                        bounds=(lo, hi), method="trf", xtol=1e-15, ftol=1e-15,
                        gtol=1e-15)  # fmt: skip
    assert res.converged, res.message
    np.testing.assert_allclose(res.x.numpy(), ref.x, rtol=1e-5, atol=1e-6)
    pts = torch.stack(seen)
    assert bool((pts >= torch.tensor(lo, dtype=F64)).all())
    assert bool((pts <= torch.tensor(hi, dtype=F64)).all())
    # one-sided bounds; inactive bounds give the free solution
    free = levenberg_marquardt(_residuals, X0)
    for bounds in ((0.0, None), (None, [10.0, 5.0, 5.0]), ([-5.0, -5.0, -5.0], 10.0)):
        got = levenberg_marquardt(_residuals, X0, bounds=bounds)
        np.testing.assert_allclose(got.x.numpy(), free.x.numpy(), rtol=1e-7)
    upper_only = levenberg_marquardt(_residuals, X0, bounds=(None, [10.0, 1.0, 10.0]))
    np.testing.assert_allclose(upper_only.x.numpy(), ref.x, rtol=1e-5, atol=1e-6)


def test_bad_bounds():
    with pytest.raises(ValueError, match=r"outside the bounds.*\[1\]"):
        levenberg_marquardt(_residuals, X0, bounds=(0.0, [10.0, 0.4, 10.0]))
    with pytest.raises(ValueError, match="lower must be < upper"):
        levenberg_marquardt(_residuals, X0, bounds=(1.0, 1.0))
    with pytest.raises(ValueError, match="scalar or have the parameters' shape"):
        levenberg_marquardt(_residuals, X0, bounds=([0.0, 0.0], 10.0))
    with pytest.raises(ValueError, match="pair"):
        levenberg_marquardt(_residuals, X0, bounds=0.0)


def test_both_methods_registered_and_honest():
    assert SECOND_ORDER["levenberg_marquardt"] is levenberg_marquardt
    assert SECOND_ORDER["levenberg"] is levenberg
    for method in (levenberg_marquardt, levenberg):
        res = method(_residuals, X0)
        assert res.converged and not res.diverged
        capped = method(_residuals, torch.tensor([10.0, 5.0, -3.0], dtype=F64), max_iter=2)
        assert not capped.converged and capped.message == "max_iter reached"
        assert capped.fun <= capped.history[0]


def test_wide_jacobian_and_zero_residual(host):
    # m < n (an over-parameterized model): J is padded with zero rows, the fit is exact
    A = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]], dtype=F64)
    b = torch.tensor([1.0, 2.0], dtype=F64)
    res = levenberg_marquardt(lambda x: A @ x - b, torch.zeros(3, dtype=F64))
    assert res.converged and res.fun < 1e-25
    res = levenberg_marquardt(lambda x: x - 1.0, torch.ones(2, dtype=F64))
    assert res.converged and res.message == "zero residual" and res.n_iter == 0


def test_float32_residuals_stop_at_their_precision(host):
    # MINPACK's epsmch is the working precision: with float32 residuals the solve stops once
    # no float32-visible reduction is left, instead of shrinking the radius to 1e-15
    t32, y32 = T.float(), Y.float()
    res = levenberg_marquardt(lambda b: b[0] * torch.exp(-b[1] * t32) + b[2] - y32, X0.float())
    assert res.x.dtype == torch.float32 and res.converged and res.n_iter <= 10
    ref = levenberg_marquardt(lambda b: b[0] * torch.exp(-b[1] * t32.double()) + b[2]
                              - y32.double(), X0)  # fmt: skip
    np.testing.assert_allclose(res.x.numpy(), ref.x.numpy(), rtol=1e-4)


@pytest.mark.parametrize(
    ("m", "n", "mode"),
    [
        (250, 8, "rev"),  # NIST Gauss1: m n = 2000, overhead decides
        (14, 2, "rev"),  # NIST Misra1a
        (1000, 641, "rev"),  # m < 2 n
        (2000, 641, "fwd"),  # m >= 2 n, m n >= 4096
        (512, 8, "fwd"),  # m n = 4096 exactly
        (511, 8, "rev"),  # m n = 4088
        (128, 64, "fwd"),  # m = 2 n exactly, m n = 8192
        (127, 64, "rev"),  # m < 2 n
    ],
)
def test_auto_jacobian_mode_is_the_documented_shape_rule(m, n, mode):
    assert auto_jacobian_mode(m, n) == mode


@pytest.mark.parametrize(("m", "mode"), [(600, "rev"), (2000, "fwd")])
def test_jac_auto_uses_the_mode_of_the_shape_and_the_same_jacobian(m, mode):
    t = torch.linspace(0, 3, m, dtype=F64)

    def res(b):
        return b[0] * torch.exp(-b[1] * t) + b[2]

    prob = _LeastSquares(res, X0, "auto", "test")
    assert prob.jac == mode  # n = 3: m n = 1800 (rev) and 6000 (fwd)
    torch.testing.assert_close(prob.jacobian(X0), jacrev(res)(X0), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("jac", ["rev", "fwd", "fd"])
def test_reverse_mode_reuses_the_accepted_trials_evaluation(jac, monkeypatch):
    """In reverse mode the model runs once per trial step plus once for the first Jacobian
    (later Jacobians come from the accepted trial's recorded vjp), with the same iterates and
    counts as a solve that calls jacrev for every Jacobian; forward mode and forward
    differences run it for each Jacobian as before."""
    calls = []

    def res(b):
        calls.append(1)
        return _residuals(b)

    out = levenberg_marquardt(res, X0, jac=jac)
    n_calls = len(calls)
    assert out.converged and out.n_jev >= 3
    if jac == "rev":
        assert n_calls == out.n_fev + 1
    elif jac == "fwd":
        assert n_calls == out.n_fev + out.n_jev
    else:  # the n evaluations of each forward-difference Jacobian are counted in n_fev
        assert n_calls == out.n_fev
    # the solve as before: plain residuals at the trial points, jacrev for every Jacobian
    monkeypatch.setattr(_LeastSquares, "record", lambda self, x: None)
    calls.clear()
    plain = levenberg_marquardt(res, X0, jac=jac)
    assert torch.equal(plain.x, out.x) and plain.history == out.history
    assert (plain.n_fev, plain.n_jev, plain.n_iter) == (out.n_fev, out.n_jev, out.n_iter)
    assert len(calls) == plain.n_fev + (plain.n_jev if jac != "fd" else 0)


def test_recorded_jacobian_of_an_mlp_is_jacrevs_bit_for_bit():
    """The autograd record's Jacobian (vmap of vjps over I_m) on an nn.Module through
    module_residuals (functional_call, tanh, matmuls), as jacrev computes it."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    X = torch.rand(40, 2, dtype=F64)
    y = torch.sin(3 * X[:, :1])
    residuals, x0 = module_residuals(net.double(), X, y)
    prob = _LeastSquares(residuals, x0, "rev", "test")
    x = x0 + 0.01
    r, record = prob.residuals_recorded(x)
    assert record is not None and torch.equal(r, prob.residuals(x))
    J, J_ref = prob.jacobian(x, r, record=record), jacrev(residuals)(x)
    assert torch.equal(J, J_ref) and J.stride() == J_ref.stride()
