"""The outcome every second-order solver returns, and the one rule that makes it honest: a solve
whose objective ends non-finite or above where it started has diverged, and has not converged."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

__all__ = ["SecondOrderResult"]


@dataclass
class SecondOrderResult:
    """Outcome of a second-order solve.

    ``diverged`` is True when the final objective is non-finite or larger than the initial one
    (``history[0]``), when the parameters are non-finite, or when the solver stopped because its
    next iterate would have been non-finite (``diverged=True`` passed by the solver). A diverged
    result is never ``converged``: whatever test stopped the solver, the reason is appended to
    ``message``. This is enforced here, for every solver, when the result is built.

    Attributes
    ----------
    x : Tensor
        Final parameter vector.
    fun : float
        Final objective: ``0.5 * ||r||^2`` for least squares, the loss for Newton/Hessian-free.
    converged : bool
        True when a convergence test (gradient, step or relative reduction) was met at a point
        the solver reached without raising the objective on its last step, and the solve did
        not diverge.
    n_iter : int
        Iterations (step computations, accepted or not).
    n_fev : int
        Objective/residual evaluations.
    n_jev : int
        Jacobian evaluations (least squares) or gradient evaluations (Newton, Hessian-free).
    n_hev : int
        Hessian evaluations (Newton) or Hessian-vector products (Hessian-free); 0 otherwise.
    message : str
        Why the solver stopped (and, if it diverged, how).
    history : list of float
        Objective after each iteration (index 0: at ``x0``).
    records : list of dict
        Per-iteration details (``iter``, ``loss``, ``step_norm``, damping, ``accepted``, ...).
    diverged : bool
        See above.
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
    diverged: bool = False

    def __post_init__(self) -> None:
        reason = _divergence(self.x, self.fun, self.history[0] if self.history else None)
        if reason is not None:
            self.diverged = True
            self.message = f"{self.message}; diverged: {reason}" if self.message else reason
        if self.diverged:
            self.converged = False


def _divergence(x: Tensor, fun: float, start: float | None) -> str | None:
    """Why a result has diverged (non-finite objective or parameters, objective above its
    start), or None."""
    if not math.isfinite(fun):
        return f"the final objective is {fun}"
    if not bool(torch.isfinite(x).all()):
        return "the parameters are non-finite"
    if start is not None and fun > start:
        return f"the objective rose from {start:.6g} to {fun:.6g}"
    return None
