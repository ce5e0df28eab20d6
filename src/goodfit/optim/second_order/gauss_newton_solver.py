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
    _start_least_squares,
)
from goodfit.optim.second_order.result import SecondOrderResult

__all__ = ["gauss_newton"]

#: Gauss-Newton stops (converged) when a step fails to reduce the cost at a point whose
#: gradient cosine is below this: the cost is at round-off level (zero-residual problems).
_STALL_COSINE = 1e-8


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
    ftol = check_real("ftol", ftol, low=0.0)
    xtol = check_real("xtol", xtol, low=0.0)
    gtol = check_real("gtol", gtol, low=0.0)
    max_iter = check_int("max_iter", max_iter, low=1)
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
