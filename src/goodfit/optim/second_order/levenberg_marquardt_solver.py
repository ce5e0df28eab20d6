"""Levenberg-Marquardt least squares by Moré's trust-region algorithm (J. J. Moré 1978, the
algorithm of MINPACK's ``lmder``/``lmdif``), the default ``levenberg_marquardt``."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from goodfit.checks import check_int, check_real
from goodfit.optim.second_order import compiled_trust_region as compiled
from goodfit.optim.second_order.bounds import BoxTransform
from goodfit.optim.second_order.problem import (
    DENSE_MAX_PARAMS,
    _check_jacobian,
    _cost,
    _LeastSquares,
    _start_least_squares,
)
from goodfit.optim.second_order.result import SecondOrderResult
from goodfit.optim.second_order.trust_region import (
    FACTOR,
    P0001,
    P1,
    P5,
    Subproblem,
    _norm,
    factor_jacobian,
    host_blas_threads,
    scaled_gradient_norm,
    update_trust_region,
)

__all__ = ["levenberg_marquardt"]


def _host(t: Tensor) -> np.ndarray:
    """``t`` as a float64 NumPy array on the host (no copy for a CPU float64 tensor)."""
    if t.dtype == torch.float64 and t.is_cpu:
        return (t.detach() if t.requires_grad else t).numpy()
    return t.detach().to("cpu", torch.float64).numpy()


def _scaled_norm(d: np.ndarray, x: np.ndarray) -> float:
    return _norm(d * x)


class _More:
    """The state of ``lmder``'s iteration: the iterate, ``D``, ``delta``, ``par``."""

    def __init__(self, prob: _LeastSquares, x: Tensor, r: Tensor, cost0: float,
                 tols: tuple[float, ...], factor: float,
                 callback: Callable[[dict[str, Any]], None] | None):  # fmt: skip
        self.prob, self.x, self.r = prob, x, r
        # a CPU float64 iterate is shared with its host copy; otherwise converted per step
        self.shared = x.dtype == torch.float64 and x.is_cpu
        self.x_host = _host(x)
        self.f = _host(r)
        # the host work in a few compiled calls for small problems, else NumPy/LAPACK
        self.compiled = compiled.use_compiled(self.f.shape[0], x.numel())
        self.norm = compiled.enorm if self.compiled else _norm
        self.scaled_norm = compiled.scaled_norm if self.compiled else _scaled_norm
        self.fnorm = self.norm(self.f)
        self.cost = 0.5 * self.fnorm * self.fnorm  # inf, not OverflowError
        self.ftol, self.xtol, self.gtol = tols
        self.factor, self.callback = factor, callback
        self.diag: np.ndarray | None = None
        self.delta = self.par = self.xnorm = self.gnorm = 0.0
        # MINPACK's epsmch, for the "tolerance too small" tests: the residuals' precision
        self.eps = float(torch.finfo(r.dtype).eps)
        self.n_iter, self.first = 0, True  # ``first``: lmder's iter == 1 (nothing accepted)
        # the autograd record of the accepted iterate's residuals (reverse mode), for its J
        self.record: tuple[Tensor, Tensor] | None = None
        self.history, self.records = [cost0], []  # type: list[float], list[dict[str, Any]]

    def _factor(self) -> tuple[Any, float]:
        """The Jacobian at the iterate, factored (``J P = Q R``, ``Q^T f``, column norms),
        ``gnorm``, and ``D`` updated (MINPACK ``mode = 1``: the column norms at the start,
        zeros replaced by 1, then their running maximum); non-finite entries of ``J`` are
        reported with the columns they are in. Returns the trial steps' subproblem and
        ``gnorm``."""
        if self.record is None:  # the start (or a model autograd cannot record): as jacrev
            self.record = self.prob.record(self.x)
        J_dev = self.prob.jacobian(self.x, self.r, check=False, record=self.record)
        self.record = None  # the recorded graph is no longer needed
        J = _host(J_dev)
        first = self.diag is None
        if self.compiled:
            if first:
                self.diag = np.empty(J.shape[1])
            sub, acnorm, gnorm, xnorm = compiled.factor(
                J, self.f, self.fnorm, self.diag, first, self.x_host
            )
        else:
            R, ipvt, qtf, acnorm = factor_jacobian(J, self.f)
            if first:
                self.diag = np.where(acnorm == 0.0, 1.0, acnorm)
                xnorm = _norm(self.diag * self.x_host)
            rtq = R.T @ qtf  # (J P)^T f: for gnorm and for lmpar's upper bound
            gnorm = scaled_gradient_norm(R, ipvt, qtf, acnorm, self.fnorm, rtq)
            self.diag = np.maximum(self.diag, acnorm)
            sub = Subproblem(R, ipvt, self.diag, qtf, rtq)
        if not math.isfinite(acnorm.sum()):  # NaN/inf in J (or, harmlessly, a sum beyond 1e308)
            _check_jacobian(J_dev, self.prob.method)
        if first:
            self.xnorm = xnorm
            self.delta = self.factor * xnorm if xnorm != 0.0 else self.factor
        return sub, gnorm

    def run(self, max_iter: int) -> tuple[bool, str]:
        """``lmder``'s outer loop: a Jacobian per accepted step, then trial steps until one is
        accepted or a test stops the iteration."""
        while True:
            sub, self.gnorm = self._factor()
            if self.gnorm <= self.gtol:
                if self.fnorm == 0.0:
                    return True, "zero residual"
                return True, "gtol: the residual is orthogonal to the Jacobian's columns"
            while True:
                accepted, stop = self._trial(sub)
                if stop is not None:
                    return stop
                if self.n_iter >= max_iter:
                    return False, "max_iter reached"
                if accepted:
                    break

    def _evaluate(
        self, step: np.ndarray, x_host: np.ndarray
    ) -> tuple[Tensor, np.ndarray, Tensor, np.ndarray, Any]:
        """The trial point ``x - step`` (``x_host`` on the host, computed by the subproblem;
        where ``x`` lives), the residuals there and their autograd record (reverse mode, else
        ``None``: ``_LeastSquares.residuals_recorded``)."""
        if self.shared:
            x_new = torch.from_numpy(x_host)
        else:
            x_new = self.x - torch.as_tensor(step, dtype=self.x.dtype, device=self.x.device)
            x_host = _host(x_new)
        r_new, record = self.prob.residuals_recorded(x_new)
        return x_new, x_host, r_new, _host(r_new), record

    def _trial(self, sub: Any) -> tuple[bool, tuple[bool, str] | None]:
        """One trial step of ``lmder``: ``lmpar``, the ratio, the radius update, the tests."""
        assert self.diag is not None
        self.n_iter += 1
        self.par, step, x_host, pnorm, prered, dirder = sub.step(
            self.delta, self.par, self.fnorm, self.x_host
        )  # the step is p = -step; pnorm = ||D p||
        if self.first:
            self.delta = min(self.delta, pnorm)
        x_new, x_host, r_new, f_new, record = self._evaluate(step, x_host)
        fnorm1 = self.norm(f_new)
        if not math.isfinite(fnorm1):
            # residuals not all finite (overflow, 0/0) at the trial point: nothing is known of
            # how much they grew, so the norm is NaN, as MINPACK's enorm returns for them: the
            # step is rejected (actred = -1) and the radius shrinks by the interpolation
            # factor (at least 0.1), not by the "residual grew tenfold" 0.1
            fnorm1 = math.nan
        actred = 1.0 - (fnorm1 / self.fnorm) ** 2 if P1 * fnorm1 < self.fnorm else -1.0
        ratio = actred / prered if prered != 0.0 else 0.0
        self.delta, self.par = update_trust_region(
            ratio, actred, dirder, self.fnorm, fnorm1, pnorm, self.delta, self.par
        )
        accepted = bool(ratio >= P0001)
        if accepted:
            self.x, self.x_host, self.r, self.f, self.fnorm = x_new, x_host, r_new, f_new, fnorm1
            self.record = record
            self.cost = 0.5 * fnorm1 * fnorm1
            self.xnorm = self.scaled_norm(self.diag, x_host)
            self.first = False
        self._record(accepted, ratio, pnorm)
        return accepted, self._tests(actred, prered, ratio)

    def _tests(self, actred: float, prered: float, ratio: float) -> tuple[bool, str] | None:
        """``lmder``'s convergence tests (info 1-3) and its tests at machine precision (info
        6-8: the tolerance asked for more than float64 can give, nothing further to gain)."""
        f_ok = abs(actred) <= self.ftol and prered <= self.ftol and P5 * ratio <= 1.0
        x_ok = self.delta <= self.xtol * self.xnorm
        if f_ok and x_ok:
            return True, "ftol and xtol: relative reduction and relative step below tolerance"
        if f_ok:
            return True, "ftol: actual and predicted relative reductions below ftol"
        if x_ok:
            return True, "xtol: relative error between two iterates below xtol"
        if abs(actred) <= self.eps and prered <= self.eps and P5 * ratio <= 1.0:
            return True, "ftol at machine precision: no further reduction possible"
        if self.delta <= self.eps * self.xnorm:
            return True, "xtol at machine precision: no further improvement of x possible"
        if self.gnorm <= self.eps:
            return True, "gtol at machine precision: the residual is orthogonal to J's columns"
        return None

    def _record(self, accepted: bool, ratio: float, pnorm: float) -> None:
        cost = self.history[0] if self.first else self.cost
        rec = {"iter": self.n_iter, "loss": cost, "par": float(self.par),
               "delta": float(self.delta), "rho": float(ratio), "step_norm": pnorm,
               "accepted": bool(accepted)}  # fmt: skip
        self.records.append(rec)
        self.history.append(cost)
        if self.callback is not None:
            self.callback(rec)


def levenberg_marquardt(
    residuals: Callable[[Tensor], Tensor],
    x0: Tensor | Sequence[float],
    *,
    ftol: float = 1e-15,
    xtol: float = 1e-15,
    gtol: float = 1e-15,
    max_iter: int = 1000,
    factor: float = FACTOR,
    jac: str = "auto",
    bounds: tuple[Any, Any] | None = None,
    max_params: int = DENSE_MAX_PARAMS,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> SecondOrderResult:
    """Levenberg-Marquardt least squares, ``min 0.5 ||r(x)||^2``, by Moré's trust region.

    J. J. Moré, *The Levenberg-Marquardt algorithm: implementation and theory* (1978), as
    MINPACK's ``lmder`` implements it (scipy's ``least_squares(method="lm")``). Each step
    solves ``min ||J p + r||`` subject to ``||D p|| <= delta``, i.e. ``(J^T J + par D^2) p =
    -J^T r`` with the Levenberg-Marquardt parameter ``par`` found for ``delta`` by Moré's
    safeguarded Newton iteration on the secular equation (``trust_region.lmpar``), from a QR
    factorization of ``J`` with column pivoting and then of ``[R; sqrt(par) D]``; ``J^T J``
    is never formed. ``D`` holds the column norms of ``J``, kept as their running maximum
    (MINPACK ``mode = 1``), so the method is invariant to each parameter's scale. ``delta``
    starts at ``factor * ||D x0||`` and follows the ratio ``rho`` of actual to predicted
    reduction with MINPACK's constants (``trust_region.update_trust_region``: shrink below
    ``rho = 0.25``, expand to ``2 ||D p||`` above 0.75); a step is accepted when
    ``rho >= 1e-4``, and only an accepted step costs a new Jacobian. In reverse mode each
    trial's residuals are evaluated under autograd and an accepted step's Jacobian comes
    from that record (``vmap`` of the vector-Jacobian products over ``I_m``, which is how
    ``jacrev`` computes it: the same Jacobian bit for bit, without a second forward pass;
    ``problem._LeastSquares.residuals_recorded``). The residuals and the Jacobian are
    computed where ``x0`` lives (any device); the ``n x n`` factorizations and the one
    ``m x n`` pivoted QR per Jacobian run on the host in float64: for small problems (``n <=
    48``, ``m n^2 <= 10^6``: ``compiled_trust_region.use_compiled``) in numba-compiled
    transcriptions of MINPACK's ``qrfac``/``lmpar``/``qrsolv``, MINPACK's arithmetic (on the
    38 NIST StRD starts, the same trial steps and counts as scipy's ``lmder``), else in LAPACK
    (``geqp3``, ``tpqrt``: the same algorithm, rounded differently).

    Convergence, as ``lmder`` (its tests, unchanged): ``ftol`` — the actual and predicted
    relative reductions of ``||r||^2`` are both at most ``ftol``; ``xtol`` — ``delta <= xtol
    ||D x||``; ``gtol`` — the largest cosine between ``r`` and a column of ``J`` is at most
    ``gtol``; the same tests at machine precision (``lmder``'s info 6-8) stop the solve too,
    so no tolerance makes it loop on rounding noise.

    Why the defaults are 1e-15, not ``lmder1``'s ``ftol = xtol = sqrt(eps) ~ 1.49e-8``
    (``gtol = 0``): ``ftol`` and ``xtol`` measure the last step (relative reduction, trust
    radius relative to ``||D x||``), not the error in ``x``; where the cost is flat along
    some direction (an ill-conditioned ``J``) a small last step still leaves a large error
    along it, so at ``sqrt(eps)`` MINPACK itself stops short of 6 certified digits on 11 of
    the 38 NIST StRD starts, and so does this solver (27/38 each; ``benchmarks/nist_lm.py
    --tol 1.49012e-8``). At 1e-15 both reach the certified values on all 38 starts, the
    machine-precision tests ending the solve, for a median of 9.5 Jacobians instead of 6.5;
    pass ``ftol = xtol = 1.49012e-8, gtol = 0`` for ``lmder1``'s behaviour.

    Parameters
    ----------
    residuals : callable
        ``residuals(x) -> r``, a 1-D tensor of fixed length ``m`` (float64 recommended).
    x0 : Tensor
        Starting point, 1-D.
    ftol, xtol, gtol : float
        Tolerances of the three convergence tests (>= 0).
    max_iter : int
        Most trial steps (accepted or rejected); each costs one residual evaluation.
    factor : float
        Initial step bound ``delta0 = factor ||D x0||`` (``factor`` if ``x0 = 0``); MINPACK
        recommends 100.
    jac : {"auto", "fwd", "rev", "fd"}
        Reverse mode ("rev": ``torch.func.jacrev``'s Jacobian, from the trial's autograd
        record as above), ``torch.func.jacfwd`` ("fwd"), the one of the two that
        ``problem.auto_jacobian_mode`` picks by the shape ``m x n`` ("auto": forward mode
        only for ``m >= 2 n`` and ``m n >= 4096``, as measured there; reverse mode on every
        NIST problem), or forward differences (MINPACK ``fdjac2``, as ``lmdif``: step
        ``sqrt(eps) |x_j|``, ``n`` extra residual evaluations per Jacobian) for a model torch
        cannot differentiate.
    bounds : (lower, upper), optional
        Box constraints, each a scalar or a length-``n`` sequence (``None``/``inf`` for none),
        by transformation (``bounds.BoxTransform``: every iterate is feasible; the
        tolerances apply to the internal parameters). ``x0`` must lie inside.
    max_params : int
        Refuse more parameters than this (dense Jacobian); use :func:`hessian_free` instead.
    callback : callable, optional
        Called with each trial step's record (``iter``, ``loss``, ``par``, ``delta``,
        ``rho``, ``step_norm`` = ``||D p||``, ``accepted``).

    Returns
    -------
    SecondOrderResult
        ``n_iter`` trial steps, ``n_fev`` residual evaluations (the start and one per trial
        step, plus ``n`` per forward-difference Jacobian), ``n_jev`` Jacobians (the start
        and one per accepted step, however computed: the model runs once more than
        ``n_fev`` in reverse mode, once per Jacobian more in forward mode).

    Example
    -------
    >>> t = torch.linspace(0, 3, 30, dtype=torch.float64)
    >>> res = levenberg_marquardt(lambda b: b[0] * torch.exp(-b[1] * t) - 2 * torch.exp(-t),
    ...                           torch.tensor([1.0, 0.5], dtype=torch.float64))
    >>> [round(v, 6) for v in res.x.tolist()], res.converged
    ([2.0, 1.0], True)
    """
    tols = (
        check_real("ftol", ftol, low=0.0),
        check_real("xtol", xtol, low=0.0),
        check_real("gtol", gtol, low=0.0),
    )
    factor = check_real("factor", factor, low=0.0, low_open=True)
    max_iter = check_int("max_iter", max_iter, low=1)
    method = "levenberg_marquardt"
    box = None
    if bounds is not None:
        x_start = torch.as_tensor(x0)
        x_start = x_start if x_start.is_floating_point() else x_start.to(torch.float64)
        box = BoxTransform.from_bounds(bounds, x_start)
        residuals, x0 = box.wrap(residuals), box.to_internal(x_start)
    prob, x, r, cost0 = _start_least_squares(residuals, x0, jac, method, max_params)
    state = _More(prob, x, r, cost0, tols, factor, callback)
    # overflowing sums of squares are rescaled (_norm); see host_blas_threads; the residuals
    # are evaluated without autograd (torch.func's Jacobians are unaffected by no_grad)
    with np.errstate(over="ignore"), host_blas_threads(x.numel()), torch.no_grad():
        converged, message = state.run(max_iter)
    x_out = state.x if box is None else box.to_external(state.x)
    return SecondOrderResult(
        x=x_out, fun=_cost(state.r), converged=converged, n_iter=state.n_iter,
        n_fev=prob.n_fev, n_jev=prob.n_jev, message=message, history=state.history,
        records=state.records,
    )  # fmt: skip
