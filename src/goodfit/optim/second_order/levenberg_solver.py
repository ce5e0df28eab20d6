"""Levenberg's damped Gauss-Newton as seed 000 §1.2.3.2 writes it, ``(J^T J + mu I)^{-1} J^T f``
(``scaling="identity"``) or with Marquardt's ``mu diag(J^T J)`` (the default), and Nielsen's
multiplicative adaptation of ``mu`` (``method = "levenberg"``). The default
``levenberg_marquardt`` is Moré's trust-region algorithm (MINPACK), in
``levenberg_marquardt_solver``."""

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

__all__ = ["levenberg"]

#: Smallest factor by which LM's mu shrinks on one accepted step (Nielsen uses 1/3).
_MU_MIN_FACTOR = 1.0 / 30.0


def levenberg(
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
    """Levenberg(-Marquardt) least squares with multiplicative damping, ``min 0.5 ||r(x)||^2``.

    The notes' form, kept beside the default :func:`levenberg_marquardt` (Moré's trust region,
    which is what MINPACK and scipy's ``method="lm"`` run). ``scaling="identity"`` is the
    literal seed 000 update ``W <- W - (J^T J + mu I)^{-1} J^T f``.

    Seed 000 §1.2.3.2: ``W <- W - (J^T J + mu I)^{-1} J^T f``, with ``mu I`` replaced by
    Marquardt's scaling ``mu diag(J^T J)`` (the note's "mu = diag(J^T J)"); ``diag(J^T J)``
    is kept as its running maximum over iterations (Moré 1978), which makes the method invariant
    to the scale of each parameter. The step solves the damped problem
    ``min ||J p + r||^2 + mu ||D^{1/2} p||^2`` as a least-squares problem on the stacked matrix
    ``[J; sqrt(mu) D^{1/2}]`` (SVD, LAPACK ``gelsd``), so ``J^T J`` is never formed and never
    inverted (its condition number is the square of J's, seed 000).

    ``mu`` adapts with the gain ratio ``rho = actual / predicted reduction`` (Nielsen 1999):
    a step with ``rho > 0`` is accepted and ``mu *= max(1/3, 1 - (2 rho - 1)^3)``; a rejected
    step multiplies ``mu`` by ``nu`` (2, 4, 8, ...). Only accepted steps need a new Jacobian.
    (Nielsen bounds the decrease at 1/3; we allow 1/30, which lets ``mu`` fall fast once the
    model is good, as MINPACK's trust region does. On the 38 NIST StRD problem/start pairs,
    1/3 with ``mu0=1e-3`` took 1.2x MINPACK's Jacobian evaluations at the median; 1/30 with
    ``mu0=1e-6`` takes 1.0x — see benchmarks/nist_lm.py. Both were chosen on those same
    problems, which is why the default is now Moré's algorithm with its published constants.)

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
    jac : {"auto", "fwd", "rev", "fd"}
        ``torch.func.jacrev``, ``torch.func.jacfwd``, the one of the two chosen by the shape
        (auto: ``problem.auto_jacobian_mode``, forward mode only for ``m >= 2 n`` and ``m n >=
        4096``), or forward differences (MINPACK ``fdjac2``) for a model torch cannot
        differentiate.
    max_params : int
        Refuse more parameters than this (dense Jacobian); use :func:`hessian_free` instead.
    callback : callable, optional
        Called with each iteration's record dict.

    Returns
    -------
    SecondOrderResult
    """
    ftol = check_real("ftol", ftol, low=0.0)
    xtol = check_real("xtol", xtol, low=0.0)
    gtol = check_real("gtol", gtol, low=0.0)
    mu0 = check_real("mu0", mu0, low=0.0, low_open=True)
    max_iter = check_int("max_iter", max_iter, low=1)
    if scaling not in ("marquardt", "identity"):
        raise ValueError(f"scaling must be 'marquardt' or 'identity', got {scaling!r}")
    method = "levenberg"
    prob, x, r, cost = _start_least_squares(residuals, x0, jac, method, max_params)
    history = [cost]
    records: list[dict[str, Any]] = []
    mu, nu = float(mu0), 2.0
    J = prob.jacobian(x, r)
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
        p = _lstsq(A, b)
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
            J = prob.jacobian(x, r)
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
