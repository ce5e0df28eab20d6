"""Damped Newton's method: GBC Algorithm 8.8 with the regularization of GBC eq. 8.28, safeguarded
by a backtracking line search."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from goodfit.checks import check_int, check_real
from goodfit.optim.second_order.problem import (
    DENSE_MAX_PARAMS,
    _armijo,
    _as_x0,
    _check_dense,
    _Objective,
)
from goodfit.optim.second_order.result import SecondOrderResult

__all__ = ["newton"]

_AFTER_RISE = (
    ", but at a point reached by a full step that raised the loss (not a minimum reached by "
    "descent); use line_search=True"
)


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
    below ``ftol`` (converged), or no decrease is possible. Without the line search a full
    step may raise the loss; such a step meets no convergence test (nor does the gradient test
    at the point it reached: far out, where the model saturates, the gradient vanishes without
    a minimum), and a loss that ends above its start is reported as ``diverged``.
    """
    alpha = check_real("alpha", alpha, low=0.0)
    gtol = check_real("gtol", gtol, low=0.0)
    ftol = check_real("ftol", ftol, low=0.0)
    max_iter = check_int("max_iter", max_iter, low=1)
    method = "newton"
    x = _as_x0(x0)
    n = x.numel()
    _check_dense(n, max_params, method)
    obj = _Objective(loss, method)
    f, g = obj.value_and_grad(x)
    history, records = [f], []
    eye = torch.eye(n, dtype=x.dtype, device=x.device)
    converged, message, it = False, "max_iter reached", 0
    rose = False  # did the last step raise the loss? (only without the line search)
    while it < max_iter:
        if float(g.abs().max()) <= gtol:
            converged, message = not rose, "gtol: gradient norm below gtol"
            if rose:
                message += _AFTER_RISE
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
        rose = f_new > f_old
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
        if not rose and abs(f_old - f) <= ftol * max(abs(f_old), abs(f), 1e-300) and t == 1.0:
            converged, message = True, "ftol: relative decrease of the loss below ftol"
            break
    return SecondOrderResult(
        x=x, fun=f, converged=converged, n_iter=it, n_fev=obj.n_fev, n_jev=obj.n_jev,
        n_hev=obj.n_hev, message=message, history=history, records=records,
    )  # fmt: skip
