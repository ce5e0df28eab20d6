"""Gauss-Newton least squares (seed 000 §1.2.3.2): the full step
``W <- W - (J^T J)^{-1} J^T f``, optionally halved until the cost decreases."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from goodfit.checks import check_int, check_real
from goodfit.optim.second_order.problem import (
    DENSE_MAX_PARAMS,
    _cost,
    _gradient_cosine,
    _lstsq,
    _start_least_squares,
)
from goodfit.optim.second_order.result import SecondOrderResult

__all__ = ["gauss_newton"]

#: Gauss-Newton stops (converged) when a step fails to reduce the cost at a point whose
#: gradient cosine is below this: the cost is at round-off level (zero-residual problems).
_STALL_COSINE = 1e-8
_AFTER_RISE = (
    ", but at a point reached by a step that raised the cost (where the model saturates or "
    "overflows the derivatives vanish: not a minimum); use levenberg_marquardt"
)


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

    The step ``p`` solves ``min ||J p + r||`` by SVD least squares (``solver="lstsq"``, works
    with ``cond(J)`` rather than ``cond(J)^2``) or the normal equations ``J^T J p = -J^T r`` by
    Cholesky (``solver="cholesky"``); no inverse is formed. The plain method takes the full
    step; ``line_search=True`` halves it until the cost decreases (damped Gauss-Newton).
    Convergence tests are those of :func:`levenberg_marquardt`, plus one for round-off: a
    step that does not reduce the cost from a point whose gradient cosine is below 1e-8
    stops there (converged).

    The plain method is not a descent method: a full step may raise the cost, and from a bad
    start the iterates run off until the model saturates or overflows, where the Jacobian
    vanishes and the gradient and step tests are met trivially. So a step that raised the cost
    meets no convergence test (nor does the gradient test at the point it reached), and a step
    that predicts no decrease (``pred <= 0``) from a point whose gradient cosine exceeds 1e-8
    (the gradient lies where ``J`` is numerically rank-deficient, so the step cannot follow it)
    stops with ``converged=False``, where ftol and xtol would otherwise read the null step as
    convergence. The step is the minimum-norm least-squares solution by the SVD
    (:func:`~goodfit.optim.second_order.problem._lstsq`), exact on rank-deficient ``J`` (an MLP
    with dead or saturated units has zero columns). A cost that ends above its start is
    reported as ``diverged`` (see :class:`SecondOrderResult`), as is a step to non-finite
    residuals; those, and a singular ``J^T J`` under Cholesky, stop with ``converged=False``
    and a message suggesting :func:`levenberg_marquardt`.
    """
    ftol = check_real("ftol", ftol, low=0.0)
    xtol = check_real("xtol", xtol, low=0.0)
    gtol = check_real("gtol", gtol, low=0.0)
    max_iter = check_int("max_iter", max_iter, low=1)
    if solver not in ("lstsq", "cholesky"):
        raise ValueError(f"solver must be 'lstsq' or 'cholesky', got {solver!r}")
    method = "gauss_newton"
    prob, x, r, cost = _start_least_squares(residuals, x0, jac, method, max_params)
    history, records = [cost], []
    converged, diverged, message, it = False, False, "max_iter reached", 0
    rose = False  # did the last accepted step raise the cost?
    while it < max_iter:
        if cost == 0.0:
            converged, message = True, "zero residual"
            break
        J = prob.jacobian(x, r)
        cosine = _gradient_cosine(J, r)
        if cosine <= gtol:
            converged, message = not rose, "gtol: gradient orthogonal to the Jacobian columns"
            if rose:
                message += _AFTER_RISE
            break
        it += 1
        p = _step(J, r, solver)
        if p is None:
            message = "J^T J is not positive definite (singular); use levenberg_marquardt"
            break
        Jp = J @ p
        pred = -(float(torch.dot(r, Jp)) + 0.5 * float(torch.dot(Jp, Jp)))
        if pred <= 0.0 and cosine > _STALL_COSINE:
            message = (
                f"the step predicts no decrease at a non-stationary point (gradient cosine "
                f"{cosine:.3g}): the gradient lies where J is numerically rank-deficient; use "
                "levenberg_marquardt"
            )
            break
        t, r_new, cost_new = _trial(prob, x, p, cost, line_search)
        dscale = torch.sqrt((J * J).sum(0))
        dx = float(torch.linalg.vector_norm(dscale * t * p))
        xn = float(torch.linalg.vector_norm(dscale * x))
        if not math.isfinite(cost_new):
            diverged = True
            message = "residuals became non-finite: Gauss-Newton diverged; use levenberg_marquardt"
            break
        if cost_new >= cost and cosine <= _STALL_COSINE:
            converged, message = not rose, "no further reduction: stationary to round-off"
            if rose:  # as for gtol: a point an uphill step reached is not called a minimum
                message += _AFTER_RISE
            break
        cost_old = cost
        x, r, cost = x + t * p, r_new, cost_new
        rose = cost > cost_old
        rec = {"iter": it, "loss": cost, "step_norm": dx, "t": t, "accepted": True}
        records.append(rec)
        history.append(cost)
        if callback is not None:
            callback(rec)
        if rose:  # tests of a small change mean nothing on a step that went uphill
            continue
        actual = cost_old - cost
        if abs(actual) <= ftol * cost_old and pred <= ftol * cost_old:
            converged, message = True, "ftol: relative reduction of the cost below ftol"
            break
        if dx <= xtol * (xn + xtol):
            converged, message = True, "xtol: relative step below xtol"
            break
    return SecondOrderResult(
        x=x, fun=cost, converged=converged, n_iter=it, n_fev=prob.n_fev, n_jev=prob.n_jev,
        message=message, history=history, records=records, diverged=diverged,
    )  # fmt: skip


def _step(J: Tensor, r: Tensor, solver: str) -> Tensor | None:
    """The Gauss-Newton step ``p = argmin ||J p + r||``: minimum-norm SVD least squares
    (``"lstsq"``) or Cholesky on the normal equations ``J^T J p = -J^T r``; None when ``J^T J``
    is singular (Cholesky)."""
    if solver == "lstsq":
        return _lstsq(J, -r)
    L, info = torch.linalg.cholesky_ex(J.T @ J)
    if int(info) != 0:
        return None
    return torch.cholesky_solve(-(J.T @ r).unsqueeze(1), L).squeeze(1)


def _trial(
    prob: Any, x: Tensor, p: Tensor, cost: float, line_search: bool
) -> tuple[float, Tensor, float]:
    """The trial point ``x + t p``: ``(t, r, cost)`` with ``t = 1`` (the plain method) or, with
    ``line_search``, ``t`` halved until the cost decreases (down to 1e-10)."""
    t = 1.0
    r_new = prob.residuals(x + p)
    cost_new = _cost(r_new) if bool(torch.isfinite(r_new).all()) else math.inf
    if line_search:
        while not cost_new < cost and t > 1e-10:
            t *= 0.5
            r_new = prob.residuals(x + t * p)
            cost_new = _cost(r_new) if bool(torch.isfinite(r_new).all()) else math.inf
    return t, r_new, cost_new
