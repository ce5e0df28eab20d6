"""The :class:`Schedule` base class and the hyperparameter checks every schedule uses.

A schedule is a callable ``schedule(step) -> float`` holding only its hyperparameters; the
position (the step) lives in the caller, so checkpoints store a single integer. Subclasses
implement ``_at(t)`` for an integer ``t >= 0`` and, when their form decides it,
``_robbins_monro()``. The private checks (``_real``, ``_rate``, ``_int``, ``_choice``,
``_boundaries``) raise ``ValueError`` naming the parameter, the value and what is allowed.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

__all__ = ["Schedule"]


# --------------------------------------------------------------------------------------------
# validation helpers


def _real(name: str, value: Any, *, min_value: float | None = None, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if min_value is not None and (value <= min_value if strict else value < min_value):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {min_value}, got {value!r}")
    return float(value)


def _rate(name: str, value: Any) -> float:
    return _real(name, value, min_value=0.0)


def _int(name: str, value: Any, *, min_value: int = 1) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer >= {min_value}, got {value!r}")
    try:
        ivalue = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {min_value}, got {value!r}") from None
    if ivalue < min_value:
        raise ValueError(f"{name} must be an integer >= {min_value}, got {value!r}")
    return ivalue


def _choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def _boundaries(name: str, values: Any) -> tuple[int, ...]:
    out = tuple(_int(f"{name}[{i}]", v) for i, v in enumerate(values))
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
