"""The :class:`Schedule` base class, the Robbins-Monro check and the boundaries check.

A schedule is a callable ``schedule(step) -> float`` holding only its hyperparameters; the
position (the step) lives in the caller, so checkpoints store a single integer. Subclasses
implement ``_at(t)`` for an integer ``t >= 0`` and, when their form decides it,
``_robbins_monro()``. Hyperparameters are checked with :mod:`goodfit.checks` (messages name the
parameter, the value and what is allowed).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from goodfit.checks import check_int

__all__ = ["Schedule", "check_boundaries", "robbins_monro"]


def check_boundaries(name: str, values: Any) -> tuple[int, ...]:
    """``values`` as a tuple of strictly increasing integers >= 1, else ``ValueError``."""
    out = tuple(check_int(f"{name}[{i}]", v, low=1) for i, v in enumerate(values))
    for i in range(1, len(out)):
        if out[i] <= out[i - 1]:
            raise ValueError(
                f"{name} must be strictly increasing, got {list(out)} "
                f"({name}[{i}]={out[i]} <= {name}[{i - 1}]={out[i - 1]})"
            )
    return out


class Schedule:
    """Base class: a callable ``schedule(step) -> float`` holding only its hyperparameters.

    Subclasses implement ``_at(t)`` for an integer ``t >= 0`` and ``_robbins_monro()``.
    """

    def __call__(self, step: int) -> float:
        t = operator.index(step)
        if t < 0:
            raise ValueError(f"step must be >= 0, got {t}")
        return self._at(t)

    def _at(self, t: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def _robbins_monro(self) -> bool | None:
        return None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{self._name}({args})"

    _name = "schedule"


def robbins_monro(schedule: Callable[[int], float]) -> bool | None:
    """Whether the rates meet the Robbins-Monro conditions (seed 003).

    ``sum_t a_t = inf`` and ``sum_t a_t^2 < inf``, decided from the schedule's form: only
    ``inverse_time`` in closed form with ``1/2 < power <= 1`` (e.g. ``a_t = a_0/(1 + k t)``)
    qualifies among the built-ins; schedules with a constant, periodic, geometric or
    ``t^-1/2`` tail do not. ``None`` for a callable whose form is unknown.
    """
    if isinstance(schedule, Schedule):
        return schedule._robbins_monro()
    return None
