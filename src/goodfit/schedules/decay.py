"""Decay schedules of the notes: the rate falls (or stays) with the step.

``step`` counts from 0: ``schedule(0)`` is the rate of the first update. Sources: seed 000
§1.2.3.2 (constant, recursive inverse-time decay with constant or step-decayed tau, exponential,
square root, cosine to eta_T), GBC eq. 8.14 (seed 001; seed 004 eq. 6, linear decay), seed 003
(linear/polynomial, inverse square root, exponential ``c^t`` per minibatch/epoch, piecewise
constant, cosine to zero). Warm-up, restarts, cycles and :func:`join` are in
:mod:`goodfit.schedules.phases`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Any

from goodfit.checks import check_int, check_real
from goodfit.schedules.base import Schedule, check_boundaries

__all__ = [
    "constant",
    "cosine",
    "exponential",
    "inverse_sqrt",
    "inverse_time",
    "linear",
    "piecewise_constant",
    "polynomial",
    "sqrt_decay",
]


class _Constant(Schedule):
    _name = "constant"

    def __init__(self, value: float) -> None:
        self.value = check_real("value", value, low=0.0)

    def _at(self, t: int) -> float:
        return self.value

    def _robbins_monro(self) -> bool:
        return False  # sum a^2 = inf when a > 0, sum a = 0 when a = 0


def constant(value: float) -> Schedule:
    """Constant rate ``eta_t = value`` (seed 000 §1.2.3.2 "Constant rate", the baseline)."""
    return _Constant(value)


class _InverseTime(Schedule):
    _name = "inverse_time"

    def __init__(self, init_value, decay_rate, power, recursive, tau_decay_steps, tau_decay_factor):
        self.init_value = check_real("init_value", init_value, low=0.0)
        self.decay_rate = check_real("decay_rate", decay_rate, low=0.0)
        self.power = check_real("power", power, low=0.0, low_open=True)
        self.recursive = bool(recursive)
        self.tau_decay_steps = (
            None
            if tau_decay_steps is None
            else check_int("tau_decay_steps", tau_decay_steps, low=1)
        )
        self.tau_decay_factor = check_real("tau_decay_factor", tau_decay_factor, low=0.0)
        if not self.recursive and self.tau_decay_steps is not None:
            raise ValueError("tau_decay_steps needs recursive=True (seed 000's recursive form)")
        if self.recursive and self.power != 1.0:
            raise ValueError(f"power must be 1.0 with recursive=True, got {self.power!r}")
        self._cache = [self.init_value]  # eta_0, eta_1, ... of the recursion (a memo, no state)

    def tau(self, t: int) -> float:
        if self.tau_decay_steps is None:
            return self.decay_rate
        return self.decay_rate * self.tau_decay_factor ** (t // self.tau_decay_steps)

    def _at(self, t: int) -> float:
        if not self.recursive:
            return self.init_value * (1.0 + self.decay_rate * t) ** (-self.power)
        cache = self._cache
        for s in range(len(cache), t + 1):
            cache.append(cache[s - 1] / (1.0 + self.tau(s) * s))
        return cache[t]

    def _robbins_monro(self) -> bool:
        if self.recursive or self.init_value == 0.0 or self.decay_rate == 0.0:
            # recursive: constant tau -> eta_t ~ 1/(tau^t t!) (summable); step-decayed tau
            # (factor < 1) -> eta_t tends to a positive limit; either way not RM.
            return False
        return 0.5 < self.power <= 1.0  # sum (1+kt)^-p = inf iff p <= 1; squares iff 2p > 1

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = [self.init_value]
        return state


def inverse_time(
    init_value: float,
    decay_rate: float,
    *,
    power: float = 1.0,
    recursive: bool = False,
    tau_decay_steps: int | None = None,
    tau_decay_factor: float = 0.9,
) -> Schedule:
    """Inverse-time decay.

    Closed form (default): ``eta_t = eta_0 / (1 + k t)^power`` with ``k = decay_rate``
    (``power = 1`` is the classic ``eta_0/(1 + k t)``; ``1/2 < power <= 1`` meets Robbins-Monro,
    seed 003).

    ``recursive=True``: seed 000 §1.2.3.2 "Decay Rate", ``eta_t = eta_{t-1} / (1 + tau_t t)``,
    ``eta_0 = init_value``, with constant decay ``tau_t = decay_rate``, or step decay
    (``tau_decay_steps = T``): ``tau_t -> alpha tau_t`` every ``T`` steps,
    ``tau_t = decay_rate * alpha^floor(t/T)``, ``alpha = tau_decay_factor`` (0.9 in the note).
    """
    return _InverseTime(init_value, decay_rate, power, recursive, tau_decay_steps, tau_decay_factor)


class _Linear(Schedule):
    _name = "linear"

    def __init__(self, init_value, end_value, transition_steps):
        self.init_value = check_real("init_value", init_value, low=0.0)
        self.end_value = check_real("end_value", end_value, low=0.0)
        self.transition_steps = check_int("transition_steps", transition_steps, low=1)

    def _at(self, t: int) -> float:
        a = min(t, self.transition_steps) / self.transition_steps
        return (1.0 - a) * self.init_value + a * self.end_value

    def _robbins_monro(self) -> bool:
        return False  # constant after tau


def linear(init_value: float, end_value: float, transition_steps: int) -> Schedule:
    """Linear decay, GBC eq. 8.14 (seed 001; seed 004 eq. 6).

    ``eps_k = (1 - a) eps_0 + a eps_tau`` with ``a = k / tau`` for ``k <= tau`` and
    ``eps_k = eps_tau`` after (``tau = transition_steps``). With ``end_value = 0`` and
    ``tau`` = the run it is seed 003's linear decay ``alpha_0 (1 - t / max_steps)``; with
    ``end_value > init_value`` it is a linear warm-up.
    """
    return _Linear(init_value, end_value, transition_steps)


class _Exponential(Schedule):
    _name = "exponential"

    def __init__(self, init_value, decay_rate, alpha, transition_steps, staircase):
        self.init_value = check_real("init_value", init_value, low=0.0)
        if (decay_rate is None) == (alpha is None):
            raise ValueError("exponential needs exactly one of decay_rate (c) or alpha")
        self.decay_rate = (
            None
            if decay_rate is None
            else check_real("decay_rate", decay_rate, low=0.0, low_open=True)
        )
        self.alpha = None if alpha is None else check_real("alpha", alpha)
        self.transition_steps = check_int("transition_steps", transition_steps, low=1)
        self.staircase = bool(staircase)

    def _at(self, t: int) -> float:
        p = t // self.transition_steps if self.staircase else t / self.transition_steps
        if self.alpha is not None:
            return self.init_value * math.exp(-self.alpha * p)
        return self.init_value * self.decay_rate**p

    def _robbins_monro(self) -> bool:
        return False  # geometric: summable if decaying, a^2 not summable otherwise


def exponential(
    init_value: float,
    *,
    decay_rate: float | None = None,
    alpha: float | None = None,
    transition_steps: int = 1,
    staircase: bool = False,
) -> Schedule:
    """Exponential decay: ``eta_0 exp(-alpha p)`` (seed 000) or ``eta_0 c^p`` (seed 003).

    ``p = t / transition_steps`` (``floor`` of it with ``staircase=True``): per step
    (``transition_steps=1``), per epoch (``transition_steps`` = steps per epoch, staircase) or
    every few epochs. Give exactly one of ``alpha`` or ``decay_rate`` (``c``).
    """
    return _Exponential(init_value, decay_rate, alpha, transition_steps, staircase)


class _InvSqrt(Schedule):
    _name = "inverse_sqrt"

    def __init__(self, init_value, warmup_steps):
        self.init_value = check_real("init_value", init_value, low=0.0)
        self.warmup_steps = check_int("warmup_steps", warmup_steps, low=0)

    def _at(self, t: int) -> float:
        n = t + 1  # update number, counted from 1
        if self.warmup_steps == 0:
            return self.init_value / math.sqrt(n)
        w = self.warmup_steps
        return self.init_value * min(n / w, math.sqrt(w / n))

    def _robbins_monro(self) -> bool:
        return False  # sum 1/t diverges


class _SqrtDecay(Schedule):
    _name = "sqrt_decay"

    def __init__(self, init_value):
        self.init_value = check_real("init_value", init_value, low=0.0)

    def _at(self, t: int) -> float:
        return self.init_value * (t + 1) ** -0.5

    def _robbins_monro(self) -> bool:
        return False  # sum a^2 = sum 1/(t+1) diverges


def sqrt_decay(init_value: float) -> Schedule:
    """Square-root decay, seed 000 §1.2.3.2 "SquareRoot Scheduler".

    ``eta_t = eta_0 (t + 1)^(-1/2)``.
    """
    return _SqrtDecay(init_value)


def inverse_sqrt(init_value: float, warmup_steps: int = 0) -> Schedule:
    """Inverse square-root decay (seed 003): ``alpha_t = alpha_0 / sqrt(t)``, ``t`` = update number.

    With ``n = step + 1``: ``init_value / sqrt(n)``; with ``warmup_steps = w > 0`` the
    machine-translation form seed 003 refers to (Vaswani et al. 2017),
    ``init_value * min(n / w, sqrt(w / n))``: linear warm-up to ``init_value`` at ``n = w``,
    then ``init_value sqrt(w / n)``.
    """
    return _InvSqrt(init_value, warmup_steps)


class _Polynomial(Schedule):
    _name = "polynomial"

    def __init__(self, init_value, decay_steps, end_value, power):
        self.init_value = check_real("init_value", init_value, low=0.0)
        self.decay_steps = check_int("decay_steps", decay_steps, low=1)
        self.end_value = check_real("end_value", end_value, low=0.0)
        self.power = check_real("power", power, low=0.0, low_open=True)

    def _at(self, t: int) -> float:
        frac = 1.0 - min(t, self.decay_steps) / self.decay_steps
        return (self.init_value - self.end_value) * frac**self.power + self.end_value

    def _robbins_monro(self) -> bool:
        return False  # constant after decay_steps


def polynomial(
    init_value: float, decay_steps: int, end_value: float = 0.0, power: float = 1.0
) -> Schedule:
    """Polynomial decay (seed 003): ``(eta_0 - eta_end) (1 - min(t, T)/T)^power + eta_end``.

    ``T = decay_steps``; constant ``eta_end`` after ``T``. ``power = 1`` and ``eta_end = 0`` is
    seed 003's linear decay ``alpha_0 (1 - t / max_steps)``.
    """
    return _Polynomial(init_value, decay_steps, end_value, power)


class _Piecewise(Schedule):
    _name = "piecewise_constant"

    def __init__(self, boundaries, values):
        self.boundaries = check_boundaries("boundaries", boundaries)
        self.values = tuple(check_real(f"values[{i}]", v, low=0.0) for i, v in enumerate(values))
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(
                f"values must have len(boundaries) + 1 = {len(self.boundaries) + 1} entries, "
                f"got {len(self.values)}"
            )

    def _at(self, t: int) -> float:
        return self.values[bisect.bisect_right(self.boundaries, t)]

    def _robbins_monro(self) -> bool:
        return False  # constant tail


def piecewise_constant(
    boundaries: Sequence[int],
    values: Sequence[float] | None = None,
    *,
    init_value: float | None = None,
    scales: Sequence[float] | None = None,
) -> Schedule:
    """Piecewise-constant rate (seed 003, Keras ``PiecewiseConstantDecay``).

    ``eta_t = values[i]`` where ``i`` = number of boundaries ``<= t`` (the rate switches *at*
    each boundary, as torch's ``MultiStepLR``). Give ``values`` (``len(boundaries) + 1``), or
    ``init_value`` and per-boundary ``scales``: ``values[i] = init_value * prod(scales[:i])``.
    """
    if values is None:
        if init_value is None or scales is None:
            raise ValueError("piecewise_constant needs values, or init_value and scales")
        v = [check_real("init_value", init_value, low=0.0)]
        for i, s in enumerate(scales):
            v.append(v[-1] * check_real(f"scales[{i}]", s, low=0.0))
        values = v
    elif init_value is not None or scales is not None:
        raise ValueError("piecewise_constant takes values or (init_value, scales), not both")
    return _Piecewise(boundaries, values)


class _Cosine(Schedule):
    _name = "cosine"

    def __init__(self, init_value, decay_steps, end_value):
        self.init_value = check_real("init_value", init_value, low=0.0)
        self.decay_steps = check_int("decay_steps", decay_steps, low=1)
        self.end_value = check_real("end_value", end_value, low=0.0)

    def _at(self, t: int) -> float:
        if t >= self.decay_steps:
            return self.end_value
        c = 1.0 + math.cos(math.pi * t / self.decay_steps)
        return self.end_value + (self.init_value - self.end_value) / 2.0 * c

    def _robbins_monro(self) -> bool:
        return False


def cosine(init_value: float, decay_steps: int, end_value: float = 0.0) -> Schedule:
    """Cosine decay, seed 000 §1.2.3.2 "Cosine Scheduler" (``end_value = 0``: seed 003).

    ``eta_t = eta_T + (eta_0 - eta_T)/2 (1 + cos(pi t/T))`` for ``t < T``, ``eta_T`` for
    ``t >= T`` (``T = decay_steps``, ``eta_T = end_value``). Seed 003 writes the ``eta_T = 0``
    case also as ``alpha_0 cos^2(pi t / (2T))``.
    """
    return _Cosine(init_value, decay_steps, end_value)
