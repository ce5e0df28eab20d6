"""Hessian-free (truncated) Newton: conjugate gradients (GBC §8.6) on the damped Newton system
of GBC eq. 8.28, with Hessian-vector products only."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from goodfit.checks import check_int, check_real
from goodfit.optim.second_order.problem import _armijo, _as_x0, _Objective
from goodfit.optim.second_order.result import SecondOrderResult

__all__ = ["hessian_free"]


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
    alpha = check_real("alpha", alpha, low=0.0)
    gtol = check_real("gtol", gtol, low=0.0)
    ftol = check_real("ftol", ftol, low=0.0)
    max_iter = check_int("max_iter", max_iter, low=1)
    cg_max_iter = check_int("cg_max_iter", cg_max_iter, low=1)
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
