"""Second-order solvers: Newton, Gauss-Newton, Levenberg-Marquardt and Hessian-free Newton.

Full-batch solvers on a 1-D parameter vector ``x``; every derivative comes from ``torch.func``
(``jacfwd``/``jacrev`` for Jacobians, ``grad``/``hessian`` for Newton, forward-over-reverse
``jvp`` of ``grad`` for Hessian-vector products). A model is given either as a function of a flat
parameter vector or as an ``nn.Module`` (see :func:`module_residuals`, :func:`module_loss` and
:func:`fit_least_squares`, which use ``torch.func.functional_call``).

* :func:`newton` — GBC Algorithm 8.8 with the damping of GBC eq. 8.28,
  ``theta <- theta - (H + alpha I)^{-1} g``, safeguarded by a backtracking line search.
* :func:`gauss_newton` — seed 000 §1.2.3.2, ``W <- W - (J^T J)^{-1} J^T f``, solved as a linear
  least-squares problem (QR) or by Cholesky, never by an explicit inverse.
* :func:`levenberg_marquardt` — seed 000 §1.2.3.2, ``W <- W - (J^T J + mu D)^{-1} J^T f`` with
  Marquardt's scaling ``D = diag(J^T J)`` and adaptive ``mu``.
* :func:`hessian_free` — truncated Newton: conjugate gradient on ``(H + alpha I) p = -g`` with
  Hessian-vector products (GBC §8.6 "conjugate gradients"; GBC eq. 8.28 damping).

L-BFGS is not re-implemented: use ``torch.optim.LBFGS`` (the training loop passes it a closure,
``optimizer.step(closure)``), e.g. ``[optimizer] name = "lbfgs"`` in a config.

``SECOND_ORDER`` maps config names to these functions; all options are keyword-only, so an
unknown option raises ``TypeError`` and a bad value ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, hessian, jacfwd, jacrev, jvp

__all__ = [
    "SECOND_ORDER",
    "SecondOrderResult",
    "fit_least_squares",
    "gauss_newton",
    "hessian_free",
    "levenberg_marquardt",
    "module_loss",
    "module_residuals",
    "newton",
]

#: Default largest parameter count for the dense methods (J is m x n, the Hessian n x n).
DENSE_MAX_PARAMS = 5000
#: Default largest Jacobian (m * n entries) for the dense least-squares methods.
DENSE_MAX_JACOBIAN = 50_000_000
#: Smallest factor by which LM's mu shrinks on one accepted step (Nielsen uses 1/3).
_MU_MIN_FACTOR = 1.0 / 30.0
#: Gauss-Newton stops (converged) when a step fails to reduce the cost at a point whose
#: gradient cosine is below this: the cost is at round-off level (zero-residual problems).
_STALL_COSINE = 1e-8


@dataclass
class SecondOrderResult:
    """Outcome of a second-order solve.

    Attributes
    ----------
    x : Tensor
        Final parameter vector.
    fun : float
        Final objective: ``0.5 * ||r||^2`` for least squares, the loss for Newton/Hessian-free.
    converged : bool
        True when a convergence test (gradient, step or relative reduction) was met.
    n_iter : int
        Iterations (step computations, accepted or not).
    n_fev : int
        Objective/residual evaluations.
    n_jev : int
        Jacobian evaluations (least squares) or gradient evaluations (Newton, Hessian-free).
    n_hev : int
        Hessian evaluations (Newton) or Hessian-vector products (Hessian-free); 0 otherwise.
    message : str
        Why the solver stopped.
    history : list of float
        Objective after each iteration (index 0: at ``x0``).
    records : list of dict
        Per-iteration details (``iter``, ``loss``, ``step_norm``, damping, ``accepted``, ...).
    """

    x: Tensor
    fun: float
    converged: bool
    n_iter: int
    n_fev: int
    n_jev: int
    n_hev: int = 0
    message: str = ""
    history: list[float] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------- validation


def _check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if not (isinstance(value, (int, float)) and ok and math.isfinite(value)):
        allowed = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {allowed}, got {value!r}")


def _check_int(name: str, value: int, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _as_x0(x0: Tensor | Sequence[float]) -> Tensor:
    x = torch.as_tensor(x0)
    if not x.is_floating_point():
        x = x.to(torch.float64)
    if x.ndim != 1 or x.numel() == 0:
        raise ValueError(
            f"x0 must be a non-empty 1-D parameter vector, got shape {tuple(x.shape)}; "
            "flatten the parameters (module_residuals/module_loss do this for an nn.Module)"
        )
    return x.detach().clone()


def _check_dense(n: int, max_params: int, method: str, m: int | None = None) -> None:
    _check_int("max_params", max_params)
    if n > max_params:
        raise ValueError(
            f"{method}: the model has {n} parameters, more than max_params={max_params} for a "
            f"dense second-order method (it builds an {'m x ' if m else ''}{n} x {n} matrix); "
            "use hessian_free (Hessian-vector products, no dense matrix) or a first-order "
            "optimizer such as adam, or raise max_params"
        )
    if m is not None and m * n > DENSE_MAX_JACOBIAN:
        raise ValueError(
            f"{method}: the Jacobian would be {m} x {n} = {m * n} entries, more than "
            f"{DENSE_MAX_JACOBIAN}; use hessian_free or a first-order optimizer such as adam"
        )


def _check_residual(r: Tensor, m: int | None, method: str) -> Tensor:
    if not isinstance(r, Tensor):
        raise ValueError(f"{method}: residuals(x) must return a Tensor, got {type(r).__name__}")
    if r.ndim != 1:
        raise ValueError(
            f"{method}: residuals(x) must return a 1-D tensor of shape (m,), got shape "
            f"{tuple(r.shape)}; flatten it (e.g. (pred - y).reshape(-1)) after checking that "
            "pred and y have the same shape"
        )
    if m is not None and r.shape[0] != m:
        raise ValueError(
            f"{method}: residual shape mismatch: residuals(x) returned {r.shape[0]} values, "
            f"but {m} at x0; the residual vector must have a fixed length"
        )
    return r


def _check_jacobian(J: Tensor, method: str) -> None:
    if not bool(torch.isfinite(J).all()):
        bad = (~torch.isfinite(J)).any(dim=0).nonzero().flatten().tolist()
        raise ValueError(
            f"{method}: non-finite Jacobian (NaN/inf in the columns of parameters {bad[:10]}) "
            "at a point where the residuals are finite; check the model for 0/0, log(0) or "
            "overflow there, or use hessian_free or a first-order optimizer"
        )


# --------------------------------------------------------------------------- least squares


class _LeastSquares:
    """Residual/Jacobian evaluation with counting (shared by Gauss-Newton and LM)."""

    def __init__(self, residuals: Callable[[Tensor], Tensor], x0: Tensor, jac: str, method: str):
        if jac not in ("auto", "fwd", "rev"):
            raise ValueError(f"jac must be 'auto', 'fwd' or 'rev', got {jac!r}")
        self.fn = residuals
        self.method = method
        self.n_fev = 0
        self.n_jev = 0
        self.m: int | None = None
        r0 = self.residuals(x0)
        self.m = r0.shape[0]
        self.r0 = r0
        self.jac = "rev" if jac == "auto" else jac

    def residuals(self, x: Tensor) -> Tensor:
        self.n_fev += 1
        with torch.no_grad():
            r = self.fn(x)
        return _check_residual(r, self.m, self.method).detach()

    def jacobian(self, x: Tensor) -> Tensor:
        self.n_jev += 1
        if self.jac == "fwd":
            try:
                J = jacfwd(self.fn)(x)
            except NotImplementedError:  # an op without forward-mode AD: use reverse mode
                self.jac = "rev"
                J = jacrev(self.fn)(x)
        else:
            J = jacrev(self.fn)(x)
        if J.ndim != 2 or J.shape[0] != self.m:
            raise ValueError(
                f"{self.method}: residual shape mismatch: the Jacobian has shape "
                f"{tuple(J.shape)}, expected ({self.m}, {x.numel()}); the residual vector "
                "must have a fixed length"
            )
        J = J.detach()
        _check_jacobian(J, self.method)
        return J


def _gradient_cosine(J: Tensor, r: Tensor) -> float:
    """MINPACK's gtol test value: max_j |J_j^T r| / (||J_j|| ||r||)."""
    rn = torch.linalg.vector_norm(r)
    cn = torch.linalg.vector_norm(J, dim=0)
    if rn == 0:
        return 0.0
    g = (J.T @ r).abs()
    mask = cn > 0
    if not bool(mask.any()):
        return 0.0
    return float((g[mask] / (cn[mask] * rn)).max())


def _cost(r: Tensor) -> float:
    return 0.5 * float(torch.dot(r, r))


def _start_least_squares(
    residuals: Callable[[Tensor], Tensor], x0: Any, jac: str, method: str, max_params: int
) -> tuple[Any, Tensor, Tensor, float]:
    """Shared start of Gauss-Newton and Levenberg-Marquardt: the checked start point, the
    problem (size guard before and after the first residual), ``r(x0)`` and its cost."""
    x = _as_x0(x0)
    _check_dense(x.numel(), max_params, method)
    prob = _LeastSquares(residuals, x, jac, method)
    _check_dense(x.numel(), max_params, method, prob.m)
    r = prob.r0
    if not bool(torch.isfinite(r).all()):
        raise ValueError(f"{method}: residuals are non-finite at x0; choose another start")
    return prob, x, r, _cost(r)


def levenberg_marquardt(
    residuals: Callable[[Tensor], Tensor],
    x0: Tensor | Sequence[float],
    *,
    ftol: float = 1e-15,
    xtol: float = 1e-15,
    gtol: float = 1e-15,
    max_iter: int = 1000,
    mu0: float = 1e-6,
    scaling: str = "marquardt",
    jac: str = "auto",
    max_params: int = DENSE_MAX_PARAMS,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> SecondOrderResult:
    """Levenberg-Marquardt least squares, ``min 0.5 ||r(x)||^2``.

    Seed 000 §1.2.3.2: ``W <- W - (J^T J + mu I)^{-1} J^T f``, with ``mu I`` replaced by
    Marquardt's scaling ``mu diag(J^T J)`` (the note's "mu = diag(J^T J)"); ``diag(J^T J)``
    is kept as its running maximum over iterations (Moré 1978), which makes the method invariant
    to the scale of each parameter. The step solves the damped problem
    ``min ||J p + r||^2 + mu ||D^{1/2} p||^2`` as a least-squares problem on the stacked matrix
    ``[J; sqrt(mu) D^{1/2}]`` (QR), so ``J^T J`` is never formed and never inverted (its
    condition number is the square of J's, seed 000).

    ``mu`` adapts with the gain ratio ``rho = actual / predicted reduction`` (Nielsen 1999):
    a step with ``rho > 0`` is accepted and ``mu *= max(1/3, 1 - (2 rho - 1)^3)``; a rejected
    step multiplies ``mu`` by ``nu`` (2, 4, 8, ...). Only accepted steps need a new Jacobian.
    (Nielsen bounds the decrease at 1/3; we allow 1/30, which lets ``mu`` fall fast once the
    model is good, as MINPACK's trust region does. On the 38 NIST StRD problem/start pairs,
    1/3 with ``mu0=1e-3`` took 1.2x MINPACK's Jacobian evaluations at the median; 1/30 with
    ``mu0=1e-6`` takes 1.0x — see benchmarks/nist_lm.py.)

    Convergence (as MINPACK's lmder): ``gtol`` — the largest cosine between ``r`` and a
    Jacobian column; ``xtol`` — scaled step ``||D^{1/2} p|| <= xtol ||D^{1/2} x||``;
    ``ftol`` — both the actual and the predicted relative reduction of the cost are below
    ``ftol``; or an exactly zero residual.

    Parameters
    ----------
    residuals : callable
        ``residuals(x) -> r``, a 1-D tensor of fixed length ``m`` (float64 recommended).
    x0 : Tensor
        Starting point, 1-D.
    ftol, xtol, gtol : float
        Tolerances of the three convergence tests (>= 0). The defaults (1e-15) solve for
        all the digits float64 allows (ENSO needs < 1e-13 for 6 certified digits);
        loosen them (e.g. 1e-8, MINPACK's) for a cheaper, rougher fit.
    max_iter : int
        Most step computations (accepted or rejected).
    mu0 : float
        Initial damping ``mu`` (relative to ``diag(J^T J)`` with Marquardt scaling).
    scaling : {"marquardt", "identity"}
        ``D = diag(J^T J)`` (Marquardt) or ``D = I`` (Levenberg, the note's ``mu I``).
    jac : {"auto", "fwd", "rev"}
        ``torch.func.jacrev`` (auto: measured faster than ``jacfwd`` even on the tall NIST
        Jacobians, torch 2.13 CPU) or ``torch.func.jacfwd``.
    max_params : int
        Refuse more parameters than this (dense Jacobian); use :func:`hessian_free` instead.
    callback : callable, optional
        Called with each iteration's record dict.

    Returns
    -------
    SecondOrderResult
    """
    for name, v in (("ftol", ftol), ("xtol", xtol), ("gtol", gtol)):
        _check_positive(name, v, allow_zero=True)
    _check_positive("mu0", mu0)
    _check_int("max_iter", max_iter)
    if scaling not in ("marquardt", "identity"):
        raise ValueError(f"scaling must be 'marquardt' or 'identity', got {scaling!r}")
    method = "levenberg_marquardt"
    prob, x, r, cost = _start_least_squares(residuals, x0, jac, method, max_params)
    history = [cost]
    records: list[dict[str, Any]] = []
    mu, nu = float(mu0), 2.0
    J = prob.jacobian(x)
    d = (J * J).sum(0) if scaling == "marquardt" else torch.ones_like(x)
    converged, message, it = False, "max_iter reached", 0
    need_jac_tests = True
    while it < max_iter:
        if cost == 0.0:
            converged, message = True, "zero residual"
            break
        if need_jac_tests and _gradient_cosine(J, r) <= gtol:
            converged, message = True, "gtol: gradient orthogonal to the Jacobian columns"
            break
        need_jac_tests = False
        it += 1
        dsafe = torch.where(d > 0, d, torch.ones_like(d))
        A = torch.cat([J, torch.diag(torch.sqrt(mu * dsafe))], dim=0)
        b = torch.cat([-r, torch.zeros_like(x)])
        p = torch.linalg.lstsq(A, b.unsqueeze(1)).solution.squeeze(1)
        Jp = J @ p
        pred = -(float(torch.dot(r, Jp)) + 0.5 * float(torch.dot(Jp, Jp)))
        x_new = x + p
        r_new = prob.residuals(x_new)
        finite = bool(torch.isfinite(r_new).all())
        cost_new = _cost(r_new) if finite else math.inf
        actual = cost - cost_new
        rho = actual / pred if pred > 0 else -math.inf
        dx = float(torch.linalg.vector_norm(torch.sqrt(dsafe) * p))
        xn = float(torch.linalg.vector_norm(torch.sqrt(dsafe) * x))
        accepted = finite and rho > 0
        if accepted:
            x, r, cost_old, cost = x_new, r_new, cost, cost_new
            mu *= max(_MU_MIN_FACTOR, 1.0 - (2.0 * rho - 1.0) ** 3)
            nu = 2.0
        else:
            mu *= nu
            nu *= 2.0
        rec = {"iter": it, "loss": cost, "mu": mu, "rho": rho, "step_norm": dx,
               "accepted": accepted}  # fmt: skip
        records.append(rec)
        history.append(cost)
        if callback is not None:
            callback(rec)
        # MINPACK tests ftol after every trial step, accepted or not
        c_ref = cost_old if accepted else cost
        if finite and abs(actual) <= ftol * c_ref and 0 <= pred <= ftol * c_ref and rho <= 2.0:
            converged, message = True, "ftol: relative reduction of the cost below ftol"
            break
        if accepted:
            if dx <= xtol * (xn + xtol):
                converged, message = True, "xtol: relative step below xtol"
                break
            J = prob.jacobian(x)
            if scaling == "marquardt":
                d = torch.maximum(d, (J * J).sum(0))
            need_jac_tests = True
        else:
            if dx <= xtol * (xn + xtol):
                converged, message = True, "xtol: relative step below xtol"
                break
            if not math.isfinite(mu) or mu > 1e300:
                message = "damping mu overflowed: no further reduction possible"
                break
    return SecondOrderResult(
        x=x, fun=cost, converged=converged, n_iter=it, n_fev=prob.n_fev, n_jev=prob.n_jev,
        message=message, history=history, records=records,
    )  # fmt: skip


def gauss_newton(
    residuals: Callable[[Tensor], Tensor],
    x0: Tensor | Sequence[float],
    *,
    ftol: float = 1e-15,
    xtol: float = 1e-15,
    gtol: float = 1e-15,
    max_iter: int = 100,
    solver: str = "lstsq",
    line_search: bool = False,
    jac: str = "auto",
    max_params: int = DENSE_MAX_PARAMS,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> SecondOrderResult:
    """Gauss-Newton least squares, seed 000 §1.2.3.2: ``W <- W - (J^T J)^{-1} J^T f``.

    The step ``p`` solves ``min ||J p + r||`` by QR least squares (``solver="lstsq"``, works
    with ``cond(J)`` rather than ``cond(J)^2``) or the normal equations ``J^T J p = -J^T r`` by
    Cholesky (``solver="cholesky"``); no inverse is formed. The plain method takes the full
    step; ``line_search=True`` halves it until the cost decreases (damped Gauss-Newton).
    Convergence tests are those of :func:`levenberg_marquardt`, plus one for round-off: a
    step that does not reduce the cost from a point whose gradient cosine is below 1e-8
    stops there (converged). A step to non-finite
    residuals, or a singular ``J^T J`` under Cholesky, stops with ``converged=False`` and a
    message suggesting :func:`levenberg_marquardt`.
    """
    for name, v in (("ftol", ftol), ("xtol", xtol), ("gtol", gtol)):
        _check_positive(name, v, allow_zero=True)
    _check_int("max_iter", max_iter)
    if solver not in ("lstsq", "cholesky"):
        raise ValueError(f"solver must be 'lstsq' or 'cholesky', got {solver!r}")
    method = "gauss_newton"
    prob, x, r, cost = _start_least_squares(residuals, x0, jac, method, max_params)
    history, records = [cost], []
    converged, message, it = False, "max_iter reached", 0
    while it < max_iter:
        if cost == 0.0:
            converged, message = True, "zero residual"
            break
        J = prob.jacobian(x)
        if _gradient_cosine(J, r) <= gtol:
            converged, message = True, "gtol: gradient orthogonal to the Jacobian columns"
            break
        it += 1
        if solver == "lstsq":
            p = torch.linalg.lstsq(J, -r.unsqueeze(1)).solution.squeeze(1)
        else:
            L, info = torch.linalg.cholesky_ex(J.T @ J)
            if int(info) != 0:
                message = "J^T J is not positive definite (singular); use levenberg_marquardt"
                break
            p = torch.cholesky_solve(-(J.T @ r).unsqueeze(1), L).squeeze(1)
        Jp = J @ p
        pred = -(float(torch.dot(r, Jp)) + 0.5 * float(torch.dot(Jp, Jp)))
        t = 1.0
        r_new = prob.residuals(x + p)
        cost_new = _cost(r_new) if bool(torch.isfinite(r_new).all()) else math.inf
        if line_search:
            while not cost_new < cost and t > 1e-10:
                t *= 0.5
                r_new = prob.residuals(x + t * p)
                cost_new = _cost(r_new) if bool(torch.isfinite(r_new).all()) else math.inf
        dscale = torch.sqrt((J * J).sum(0))
        dx = float(torch.linalg.vector_norm(dscale * t * p))
        xn = float(torch.linalg.vector_norm(dscale * x))
        if not math.isfinite(cost_new):
            message = "residuals became non-finite: Gauss-Newton diverged; use levenberg_marquardt"
            break
        if cost_new >= cost and _gradient_cosine(J, r) <= _STALL_COSINE:
            converged, message = True, "no further reduction: stationary to round-off"
            break
        cost_old = cost
        x, r, cost = x + t * p, r_new, cost_new
        rec = {"iter": it, "loss": cost, "step_norm": dx, "t": t, "accepted": True}
        records.append(rec)
        history.append(cost)
        if callback is not None:
            callback(rec)
        actual = cost_old - cost
        if abs(actual) <= ftol * cost_old and pred <= ftol * cost_old:
            converged, message = True, "ftol: relative reduction of the cost below ftol"
            break
        if dx <= xtol * (xn + xtol):
            converged, message = True, "xtol: relative step below xtol"
            break
    return SecondOrderResult(
        x=x, fun=cost, converged=converged, n_iter=it, n_fev=prob.n_fev, n_jev=prob.n_jev,
        message=message, history=history, records=records,
    )  # fmt: skip


# --------------------------------------------------------------------------- Newton family


class _Objective:
    """Scalar objective with counting: value, gradient, Hessian, Hessian-vector products."""

    def __init__(self, loss: Callable[[Tensor], Tensor], method: str):
        self.fn = loss
        self.method = method
        self.n_fev = self.n_jev = self.n_hev = 0
        self._vg = torch.func.grad_and_value(self._scalar)

    def _scalar(self, x: Tensor) -> Tensor:
        v = self.fn(x)
        if not isinstance(v, Tensor) or v.numel() != 1:
            shape = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
            raise ValueError(f"{self.method}: loss(x) must return a scalar tensor, got {shape}")
        return v.reshape(())

    def value(self, x: Tensor) -> float:
        self.n_fev += 1
        with torch.no_grad():
            return float(self._scalar(x))

    def value_and_grad(self, x: Tensor) -> tuple[float, Tensor]:
        self.n_fev += 1
        self.n_jev += 1
        g, v = self._vg(x)
        g = g.detach()
        if not bool(torch.isfinite(g).all()):
            raise ValueError(
                f"{self.method}: non-finite gradient at a point with loss {float(v)}; "
                "check the model for 0/0, log(0) or overflow, or use a first-order optimizer"
            )
        return float(v), g

    def hessian(self, x: Tensor) -> Tensor:
        self.n_hev += 1
        H = hessian(self._scalar)(x).detach()
        if not bool(torch.isfinite(H).all()):
            raise ValueError(
                f"{self.method}: non-finite Hessian; use hessian_free or a first-order optimizer"
            )
        return 0.5 * (H + H.T)

    def hvp(self, x: Tensor, v: Tensor) -> Tensor:
        self.n_hev += 1
        return jvp(grad(self._scalar), (x,), (v,))[1].detach()


def _armijo(
    obj: _Objective, x: Tensor, f: float, g: Tensor, p: Tensor, c1: float = 1e-4
) -> tuple[float, float]:
    """Backtracking line search (halving) until the Armijo condition holds; returns (t, f_new)."""
    slope = float(torch.dot(g, p))
    t = 1.0
    for _ in range(60):
        f_new = obj.value(x + t * p)
        if math.isfinite(f_new) and f_new <= f + c1 * t * slope:
            return t, f_new
        t *= 0.5
    return 0.0, f


def newton(
    loss: Callable[[Tensor], Tensor],
    x0: Tensor | Sequence[float],
    *,
    alpha: float = 0.0,
    max_iter: int = 100,
    gtol: float = 1e-8,
    ftol: float = 1e-15,
    line_search: bool = True,
    max_params: int = DENSE_MAX_PARAMS,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> SecondOrderResult:
    """Damped Newton's method: GBC Algorithm 8.8 with the regularization of GBC eq. 8.28.

    Each iteration computes ``g = grad J(theta)`` and ``H = hessian J(theta)`` with
    ``torch.func`` and applies ``theta <- theta - t (H + alpha_k I)^{-1} g`` (eq. 8.28).
    ``alpha_k = alpha`` when ``H + alpha I`` is positive definite; otherwise (non-convex,
    GBC "Newton methods for non pdm H") ``alpha_k`` is increased — starting from
    ``1e-3 * max|H_ii|`` and doubling — until the Cholesky factorization succeeds, so the step
    is a descent direction. The system is solved by Cholesky, no inverse is formed. ``t`` comes
    from a backtracking Armijo line search (``line_search=True``, the safeguard) or is 1.

    Stops when ``||g||_inf <= gtol`` (converged), or the relative decrease of the loss is
    below ``ftol`` (converged), or no decrease is possible.
    """
    _check_positive("alpha", alpha, allow_zero=True)
    _check_positive("gtol", gtol, allow_zero=True)
    _check_positive("ftol", ftol, allow_zero=True)
    _check_int("max_iter", max_iter)
    method = "newton"
    x = _as_x0(x0)
    n = x.numel()
    _check_dense(n, max_params, method)
    obj = _Objective(loss, method)
    f, g = obj.value_and_grad(x)
    history, records = [f], []
    eye = torch.eye(n, dtype=x.dtype, device=x.device)
    converged, message, it = False, "max_iter reached", 0
    while it < max_iter:
        if float(g.abs().max()) <= gtol:
            converged, message = True, "gtol: gradient norm below gtol"
            break
        it += 1
        H = obj.hessian(x)
        a = float(alpha)
        while True:
            L, info = torch.linalg.cholesky_ex(H + a * eye)
            if int(info) == 0:
                break
            a = max(2.0 * a, 1e-3 * float(H.diagonal().abs().max()), 1e-12)
            if a > 1e300:
                raise ValueError(f"{method}: cannot make H + alpha I positive definite")
        p = -torch.cholesky_solve(g.unsqueeze(1), L).squeeze(1)
        if line_search:
            t, f_new = _armijo(obj, x, f, g, p)
            if t == 0.0:
                message = "line search failed: no decrease along the Newton direction"
                break
        else:
            t, f_new = 1.0, obj.value(x + p)
        x = x + t * p
        f_old, f = f, f_new
        f, g = obj.value_and_grad(x)
        rec = {"iter": it, "loss": f, "alpha": a, "t": t,
               "step_norm": float(torch.linalg.vector_norm(t * p)), "accepted": True}  # fmt: skip
        records.append(rec)
        history.append(f)
        if callback is not None:
            callback(rec)
        if not math.isfinite(f):
            message = "loss became non-finite (no line search); use line_search=True"
            break
        if abs(f_old - f) <= ftol * max(abs(f_old), abs(f), 1e-300) and t == 1.0:
            converged, message = True, "ftol: relative decrease of the loss below ftol"
            break
    return SecondOrderResult(
        x=x, fun=f, converged=converged, n_iter=it, n_fev=obj.n_fev, n_jev=obj.n_jev,
        n_hev=obj.n_hev, message=message, history=history, records=records,
    )  # fmt: skip


def hessian_free(
    loss: Callable[[Tensor], Tensor],
    x0: Tensor | Sequence[float],
    *,
    alpha: float = 1e-3,
    adapt_alpha: bool = True,
    max_iter: int = 100,
    cg_max_iter: int = 100,
    gtol: float = 1e-8,
    ftol: float = 1e-15,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> SecondOrderResult:
    """Hessian-free (truncated) Newton: conjugate gradient on ``(H + alpha I) p = -g``.

    The damped Newton system of GBC eq. 8.28 is solved approximately by conjugate gradients
    (GBC §8.6) using only Hessian-vector products ``Hv = d/de grad J(theta + e v)``
    (``torch.func.jvp`` over ``torch.func.grad``), so no ``n x n`` matrix is ever built.
    CG stops at relative residual ``min(0.5, sqrt(||g||)) ||g||`` (Nocedal & Wright's
    forcing sequence), after ``cg_max_iter`` products, or on negative curvature
    ``p^T (H + alpha I) p <= 0`` (then the last iterate, or ``-g`` at the start, is used).
    A backtracking Armijo line search safeguards the step; with ``adapt_alpha`` the damping
    follows the Levenberg-Marquardt rule of Martens (2010): ``alpha *= 3/2`` when the
    reduction ratio ``rho < 1/4``, ``alpha *= 2/3`` when ``rho > 3/4``.
    """
    _check_positive("alpha", alpha, allow_zero=True)
    _check_positive("gtol", gtol, allow_zero=True)
    _check_positive("ftol", ftol, allow_zero=True)
    _check_int("max_iter", max_iter)
    _check_int("cg_max_iter", cg_max_iter)
    method = "hessian_free"
    x = _as_x0(x0)
    obj = _Objective(loss, method)
    f, g = obj.value_and_grad(x)
    history, records = [f], []
    lam = float(alpha)
    converged, message, it = False, "max_iter reached", 0
    while it < max_iter:
        gnorm = float(torch.linalg.vector_norm(g))
        if float(g.abs().max()) <= gtol:
            converged, message = True, "gtol: gradient norm below gtol"
            break
        it += 1
        # conjugate gradient on (H + lam I) p = -g, from p = 0
        p = torch.zeros_like(x)
        res = -g.clone()
        dvec = res.clone()
        rr = float(torch.dot(res, res))
        tol = min(0.5, math.sqrt(gnorm)) * gnorm
        n_cg = 0
        for _ in range(cg_max_iter):
            Ad = obj.hvp(x, dvec) + lam * dvec
            n_cg += 1
            dAd = float(torch.dot(dvec, Ad))
            if dAd <= 0:  # negative curvature: stop (use -g if nothing yet)
                if n_cg == 1:
                    p = -g.clone()
                break
            a_cg = rr / dAd
            p = p + a_cg * dvec
            res = res - a_cg * Ad
            rr_new = float(torch.dot(res, res))
            if math.sqrt(rr_new) <= tol:
                break
            dvec = res + (rr_new / rr) * dvec
            rr = rr_new
        # predicted reduction of the quadratic model (with the damped Hessian)
        Hp = obj.hvp(x, p)
        pred = -(float(torch.dot(g, p)) + 0.5 * float(torch.dot(p, Hp)))
        t, f_new = _armijo(obj, x, f, g, p)
        if t == 0.0:
            message = "line search failed: no decrease along the truncated-Newton direction"
            break
        if adapt_alpha and pred > 0:
            rho = (f - obj.value(x + p)) / pred if t != 1.0 else (f - f_new) / pred
            if rho < 0.25:
                lam *= 1.5
            elif rho > 0.75:
                lam *= 2.0 / 3.0
        x = x + t * p
        f_old = f
        f, g = obj.value_and_grad(x)
        rec = {"iter": it, "loss": f, "alpha": lam, "t": t, "cg_iters": n_cg,
               "step_norm": float(torch.linalg.vector_norm(t * p)), "accepted": True}  # fmt: skip
        records.append(rec)
        history.append(f)
        if callback is not None:
            callback(rec)
        if abs(f_old - f) <= ftol * max(abs(f_old), abs(f), 1e-300):
            converged, message = True, "ftol: relative decrease of the loss below ftol"
            break
    return SecondOrderResult(
        x=x, fun=f, converged=converged, n_iter=it, n_fev=obj.n_fev, n_jev=obj.n_jev,
        n_hev=obj.n_hev, message=message, history=history, records=records,
    )  # fmt: skip


# --------------------------------------------------------------------------- nn.Module bridge


def _trainable(model: nn.Module) -> tuple[list[str], list[Tensor]]:
    names, params = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            names.append(name)
            params.append(p)
    if not params:
        raise ValueError("the model has no trainable parameters (requires_grad=True)")
    return names, params


def _module_caller(
    model: nn.Module, dtype: torch.dtype | None
) -> tuple[Tensor, Callable[[Tensor, Tensor], Tensor]]:
    names, params = _trainable(model)
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]
    x0 = torch.cat([p.detach().reshape(-1) for p in params])
    if dtype is not None:
        x0 = x0.to(dtype)
    frozen = {k: v.detach() for k, v in model.named_parameters() if k not in set(names)}
    frozen.update({k: v for k, v in model.named_buffers()})
    if dtype is not None:
        frozen = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in frozen.items()}

    def call(x: Tensor, inputs: Tensor) -> Tensor:
        chunks = torch.split(x, sizes)
        state = {n: c.view(s) for n, c, s in zip(names, chunks, shapes, strict=True)}
        state.update(frozen)
        return functional_call(model, state, (inputs,))

    return x0, call


def module_residuals(
    model: nn.Module, X: Tensor, y: Tensor, *, dtype: torch.dtype | None = torch.float64
) -> tuple[Callable[[Tensor], Tensor], Tensor]:
    """Residual function ``r(x) = (model_x(X) - y).reshape(-1)`` of a flat parameter vector.

    Uses ``torch.func.functional_call``; returns ``(residuals, x0)`` with ``x0`` the model's
    current trainable parameters flattened (cast to ``dtype``; data too). Raises ValueError
    when the prediction and ``y`` shapes differ (broadcasting would silently build an
    ``N x N`` residual).
    """
    x0, call = _module_caller(model, dtype)
    X, y = X.to(x0.device), y.to(x0.device)  # data may sit on the CPU beside a CUDA model
    if dtype is not None:
        X = X.to(dtype) if X.is_floating_point() else X
        y = y.to(dtype)
    with torch.no_grad():
        pred = call(x0, X)
    if pred.shape != y.shape:
        raise ValueError(
            f"residual shape mismatch: model output has shape {tuple(pred.shape)} but y has "
            f"shape {tuple(y.shape)}; reshape y (e.g. y.reshape{tuple(pred.shape)}) so they match"
        )

    def residuals(x: Tensor) -> Tensor:
        return (call(x, X) - y).reshape(-1)

    return residuals, x0


def module_loss(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    X: Tensor,
    y: Tensor,
    *,
    dtype: torch.dtype | None = None,
) -> tuple[Callable[[Tensor], Tensor], Tensor]:
    """Scalar training loss ``L(x) = loss_fn(model_x(X), y)`` of a flat parameter vector.

    Returns ``(loss, x0)``; see :func:`module_residuals` for ``dtype``.
    """
    x0, call = _module_caller(model, dtype)
    X, y = X.to(x0.device), y.to(x0.device)
    if dtype is not None:
        X = X.to(dtype) if X.is_floating_point() else X
        y = y.to(dtype) if y.is_floating_point() else y

    def loss(x: Tensor) -> Tensor:
        return loss_fn(call(x, X), y)

    return loss, x0


def _write_back(model: nn.Module, x: Tensor) -> None:
    _, params = _trainable(model)
    with torch.no_grad():
        offset = 0
        for p in params:
            k = p.numel()
            p.copy_(x[offset : offset + k].view_as(p).to(p.dtype))
            offset += k


SECOND_ORDER: dict[str, Callable[..., SecondOrderResult]] = {
    "newton": newton,
    "gauss_newton": gauss_newton,
    "levenberg_marquardt": levenberg_marquardt,
    "hessian_free": hessian_free,
}


def fit_least_squares(
    model: nn.Module,
    X: Tensor,
    y: Tensor,
    method: str = "levenberg_marquardt",
    *,
    dtype: torch.dtype | None = torch.float64,
    **opts: Any,
) -> SecondOrderResult:
    """Train a regression model full-batch by a second-order method, in place.

    Minimizes ``0.5 ||model(X) - y||^2`` over the trainable parameters with ``method`` from
    :data:`SECOND_ORDER` (``"levenberg_marquardt"``, ``"gauss_newton"``, ``"newton"``,
    ``"hessian_free"``), computing in ``dtype`` (float64 by default; ``None`` keeps the
    model's), then writes the solution back into the model. The model is evaluated in eval
    mode (no dropout randomness, no batch-norm statistics updates) and its mode restored.
    Each entry of ``result.records`` gains ``train_loss``, the mean squared error.

    Example
    -------
    >>> net = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1))   # doctest: +SKIP
    >>> res = fit_least_squares(net, X, y, "levenberg_marquardt", max_iter=200)  # doctest: +SKIP
    """
    if method not in SECOND_ORDER:
        raise ValueError(f"method must be one of {sorted(SECOND_ORDER)}, got {method!r}")
    was_training = model.training
    model.eval()
    try:
        residuals, x0 = module_residuals(model, X, y, dtype=dtype)
        if method in ("newton", "hessian_free"):

            def objective(x: Tensor) -> Tensor:
                r = residuals(x)
                return 0.5 * torch.dot(r, r)

            res = SECOND_ORDER[method](objective, x0, **opts)
        else:
            res = SECOND_ORDER[method](residuals, x0, **opts)
        _write_back(model, res.x)
    finally:
        model.train(was_training)
    m = y.numel()
    for rec in res.records:
        rec["train_loss"] = 2.0 * rec["loss"] / m
    return res
