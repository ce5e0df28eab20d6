"""The outcome every second-order solver returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

__all__ = ["SecondOrderResult"]


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
