r"""Weight constraints, applied in place after each optimizer step by :class:`ConstraintCallback`.

Seed 000 §1.1.3 writes regularization as the constrained problem
:math:`\min L(y, f(WX))` subject to :math:`\|W\| \le c` (the norm ball, :class:`NormBall`);
projected (stochastic) gradient descent solves it by projecting the weights back onto the feasible
set after every step. The other constraints here are the usual per-unit forms: max-norm
(Srebro & Shraibman 2005; Srivastava et al. 2014, used with dropout), unit-norm and
non-negativity.

Each constraint selects parameters like the penalties do (``pattern``/``type``/``exclude``,
biases and normalization parameters excluded unless ``include_bias_and_norm=True``; see
:func:`goodfit.regularize.selection.select_parameters`), binds to a model once, and runs under
:func:`torch.no_grad`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from goodfit.checks import check_bool, check_real
from goodfit.hooks import Callback
from goodfit.regularize.selection import select_parameters

__all__ = [
    "Constraint",
    "ConstraintCallback",
    "MaxNorm",
    "NonNeg",
    "NormBall",
    "UnitNorm",
    "project_l1_ball",
]


class Constraint:
    """Base class: ``constraint(model)`` projects the selected parameters in place."""

    def __init__(
        self,
        *,
        pattern: str | Sequence[str] | None = None,
        type: str | type | Sequence[str | type] | None = None,
        exclude: str | Sequence[str] = (),
        include_bias_and_norm: bool = False,
        model: nn.Module | None = None,
    ) -> None:
        check_bool("include_bias_and_norm", include_bias_and_norm)
        self._sel = {
            "pattern": pattern,
            "type": type,
            "exclude": exclude,
            "include_bias_and_norm": include_bias_and_norm,
        }
        self._model_id: int | None = None
        self.names: list[str] = []
        self._tensors: list[Tensor] = []
        if model is not None:
            self.bind(model)

    def bind(self, model: nn.Module) -> Constraint:
        """Select the parameters of ``model`` this constraint acts on (once)."""
        sel = select_parameters(model, **self._sel)
        self.names = [n for n, _ in sel]
        self._tensors = [p for _, p in sel]
        self._model_id = id(model)
        self._model_ref = model
        return self

    def __call__(self, model: nn.Module) -> None:
        if id(model) != self._model_id:
            self.bind(model)
        with torch.no_grad():
            self._project(self._tensors)

    def _project(self, tensors: list[Tensor]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def _unit_norms(t: Tensor, axis: int) -> Tensor:
    """Euclidean norm of each unit (slice along ``axis``), broadcastable against ``t``."""
    if t.ndim <= 1:
        return t.abs()
    dims = tuple(d for d in range(t.ndim) if d != axis % t.ndim)
    return torch.linalg.vector_norm(t, dim=dims, keepdim=True)


class MaxNorm(Constraint):
    r"""Max-norm per unit: each unit's incoming weight vector is rescaled to norm
    :math:`\le c`: :math:`w_u \leftarrow w_u \min(1, c/\|w_u\|_2)`.

    A unit is a slice along ``axis`` (default 0 = output unit of Linear ``(out, in)`` and
    Conv ``(out, in, *k)`` weights, norm over all other dims), as in Srivastava et al. 2014 §5.1.
    """

    def __init__(self, max_value: float, *, axis: int = 0, **selection: Any) -> None:
        self.max_value = check_real("max_value", max_value, low=0.0, low_open=True)
        self.axis = int(axis)
        super().__init__(**selection)

    def _project(self, tensors: list[Tensor]) -> None:
        c = self.max_value
        for t in tensors:
            n = _unit_norms(t, self.axis)
            t.mul_(torch.where(n > c, c / n.clamp_min(torch.finfo(t.dtype).tiny), 1.0))


class UnitNorm(Constraint):
    r"""Unit norm per unit: :math:`w_u \leftarrow w_u / \|w_u\|_2` (units as in :class:`MaxNorm`;
    an all-zero unit is left at zero)."""

    def __init__(self, *, axis: int = 0, **selection: Any) -> None:
        self.axis = int(axis)
        super().__init__(**selection)

    def _project(self, tensors: list[Tensor]) -> None:
        for t in tensors:
            n = _unit_norms(t, self.axis)
            t.div_(torch.where(n > 0, n, 1.0))


class NonNeg(Constraint):
    r"""Non-negativity: :math:`w \leftarrow \max(w, 0)` (one multi-tensor clamp)."""

    def _project(self, tensors: list[Tensor]) -> None:
        torch._foreach_clamp_min_(tensors, 0.0)


def project_l1_ball(v: Tensor, radius: float) -> Tensor:
    r"""Euclidean projection of ``v`` onto :math:`\{x: \|x\|_1 \le r\}` (Duchi et al. 2008):
    :math:`x = \mathrm{sign}(v)\max(|v| - \theta, 0)` with :math:`\theta` such that
    :math:`\|x\|_1 = r` (sort-based, no Python loop over elements)."""
    a = v.abs().flatten()
    if a.sum() <= radius:
        return v.clone()
    u, _ = torch.sort(a, descending=True)
    css = torch.cumsum(u, 0)
    k = torch.arange(1, u.numel() + 1, device=v.device, dtype=v.dtype)
    cond = u - (css - radius) / k > 0
    rho = int(torch.nonzero(cond).max())
    theta = (css[rho] - radius) / (rho + 1)
    return torch.sign(v) * (v.abs() - theta).clamp_min(0)


class NormBall(Constraint):
    r"""Seed 000's norm-ball constraint :math:`\|W\|_p \le c` for each selected tensor ``W``,
    enforced by Euclidean projection onto the ball after each step (projected gradient descent):

    * ``p=2`` (Frobenius): :math:`W \leftarrow W \min(1, c/\|W\|_2)` (one multi-tensor norm);
    * ``p="inf"``: clamp to :math:`[-c, c]`;
    * ``p=1``: soft-threshold to the L1 ball (:func:`project_l1_ball`).
    """

    def __init__(self, radius: float, *, p: float | str = 2, **selection: Any) -> None:
        self.radius = check_real("radius", radius, low=0.0, low_open=True)
        if p in ("inf", math.inf):
            p = math.inf
        elif p not in (1, 2):
            raise ValueError(f"p must be 1, 2 or 'inf', got {p!r}")
        self.p = float(p)
        super().__init__(**selection)

    def _project(self, tensors: list[Tensor]) -> None:
        r = self.radius
        if self.p == 2.0:
            norms = torch.stack(torch._foreach_norm(tensors, 2))
            scale = torch.where(norms > r, r / norms.clamp_min(1e-30), 1.0)
            torch._foreach_mul_(tensors, list(scale.unbind()))
        elif self.p == math.inf:
            torch._foreach_clamp_min_(tensors, -r)
            torch._foreach_clamp_max_(tensors, r)
        else:
            for t in tensors:
                t.copy_(project_l1_ball(t, r))


class ConstraintCallback(Callback):
    """Applies constraints to ``trainer.model`` after every optimizer step (``on_after_step``,
    under :func:`torch.no_grad`), i.e. projected gradient descent onto the constraint set."""

    def __init__(self, constraints: Constraint | Sequence[Constraint]) -> None:
        cs = [constraints] if isinstance(constraints, Constraint) else list(constraints)
        for c in cs:
            if not callable(c):
                raise ValueError(f"constraints must be Constraint objects, got {c!r}")
        self.constraints = cs

    def on_after_step(self, trainer: Any) -> None:
        with torch.no_grad():
            for c in self.constraints:
                c(trainer.model)
