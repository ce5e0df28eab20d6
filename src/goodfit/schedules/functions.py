"""The learning-rate schedules of the notes: pure functions of the integer step.

``step`` counts from 0: ``schedule(0)`` is the rate of the first update. Sources: seed 000
§1.2.3.2 (constant, recursive inverse-time decay with constant or step-decayed tau, exponential,
square root, cosine to eta_T, warm-up), GBC eq. 8.14 (seed 001; seed 004 eq. 6, linear decay),
seed 003 (linear/polynomial, inverse square root, exponential ``c^t`` per minibatch/epoch, cosine
to zero, restarts/warm-up, Robbins-Monro conditions); plus cyclic and one-cycle rates,
:func:`join` of consecutive schedules and the :func:`robbins_monro` check.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from typing import Any

from goodfit.schedules.base import Schedule, _boundaries, _choice, _int, _rate, _real

__all__ = [
    "constant",
    "cosine",
    "cosine_restarts",
    "cyclic",
    "exponential",
    "inverse_sqrt",
    "inverse_time",
    "join",
    "linear",
    "one_cycle",
    "piecewise_constant",
    "polynomial",
    "robbins_monro",
    "sqrt_decay",
    "warmup_cosine",
]


class _Constant(Schedule):
    _name = "constant"

    def __init__(self, value: float) -> None:
        self.value = _rate("value", value)

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
        self.init_value = _rate("init_value", init_value)
        self.decay_rate = _rate("decay_rate", decay_rate)
        self.power = _real("power", power, min_value=0.0, strict=True)
        self.recursive = bool(recursive)
        self.tau_decay_steps = (
            None if tau_decay_steps is None else _int("tau_decay_steps", tau_decay_steps)
        )
        self.tau_decay_factor = _real("tau_decay_factor", tau_decay_factor, min_value=0.0)
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
        self.init_value = _rate("init_value", init_value)
        self.end_value = _rate("end_value", end_value)
        self.transition_steps = _int("transition_steps", transition_steps)

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
        self.init_value = _rate("init_value", init_value)
        if (decay_rate is None) == (alpha is None):
            raise ValueError("exponential needs exactly one of decay_rate (c) or alpha")
        self.decay_rate = (
            None
            if decay_rate is None
            else _real("decay_rate", decay_rate, min_value=0.0, strict=True)
        )
        self.alpha = None if alpha is None else _real("alpha", alpha)
        self.transition_steps = _int("transition_steps", transition_steps)
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
        self.init_value = _rate("init_value", init_value)
        self.warmup_steps = _int("warmup_steps", warmup_steps, min_value=0)

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
        self.init_value = _rate("init_value", init_value)

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
        self.init_value = _rate("init_value", init_value)
        self.decay_steps = _int("decay_steps", decay_steps)
        self.end_value = _rate("end_value", end_value)
        self.power = _real("power", power, min_value=0.0, strict=True)

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
        self.boundaries = _boundaries("boundaries", boundaries)
        self.values = tuple(_rate(f"values[{i}]", v) for i, v in enumerate(values))
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
        v = [_rate("init_value", init_value)]
        for i, s in enumerate(scales):
            v.append(v[-1] * _rate(f"scales[{i}]", s))
        values = v
    elif init_value is not None or scales is not None:
        raise ValueError("piecewise_constant takes values or (init_value, scales), not both")
    return _Piecewise(boundaries, values)


class _Cosine(Schedule):
    _name = "cosine"

    def __init__(self, init_value, decay_steps, end_value):
        self.init_value = _rate("init_value", init_value)
        self.decay_steps = _int("decay_steps", decay_steps)
        self.end_value = _rate("end_value", end_value)

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


class _WarmupCosine(Schedule):
    _name = "warmup_cosine"

    def __init__(self, peak, warmup_steps, total_steps, init_value, end_value, slope, form):
        self.form = _choice("form", form, ("common", "seed000"))
        if warmup_steps is None:
            raise TypeError("warmup_cosine() missing required argument 'warmup_steps'")
        self.warmup_steps = _int("warmup_steps", warmup_steps, min_value=0)
        self.init_value = _rate("init_value", init_value)
        self.end_value = _rate("end_value", end_value)
        if (peak is None) == (slope is None):
            raise ValueError("warmup_cosine needs exactly one of peak or slope")
        if slope is not None:
            self.slope = _real("slope", slope)
            peak = self.init_value + self.slope * self.warmup_steps
        self.peak = _rate("peak", peak)
        if slope is None:
            self.slope = (
                (self.peak - self.init_value) / self.warmup_steps if self.warmup_steps else 0.0
            )
        if self.form == "seed000":
            if self.warmup_steps < 1:
                raise ValueError("warmup_steps must be >= 1 with form='seed000', got 0")
            self.total_steps = None if total_steps is None else _int("total_steps", total_steps)
        else:
            if total_steps is None:
                raise TypeError("warmup_cosine() missing required argument 'total_steps'")
            self.total_steps = _int("total_steps", total_steps)
        if self.total_steps is not None and self.warmup_steps > self.total_steps:
            raise ValueError(
                f"warmup_steps must be <= total_steps={self.total_steps} (the warm-up cannot be "
                f"longer than the run), got {self.warmup_steps}"
            )

    def _at(self, t: int) -> float:
        w = self.warmup_steps
        if self.form == "seed000":
            if t < w:
                return self.init_value + self.slope * t
            c = 1.0 + math.cos(math.pi * t / w)
            return self.end_value + (self.init_value - self.end_value) / 2.0 * c
        if t < w:
            return self.init_value + (self.peak - self.init_value) * t / w
        if t >= self.total_steps:
            return self.end_value
        c = 1.0 + math.cos(math.pi * (t - w) / (self.total_steps - w))
        return self.end_value + (self.peak - self.end_value) / 2.0 * c

    def _robbins_monro(self) -> bool:
        return False


def warmup_cosine(
    peak: float | None = None,
    warmup_steps: int | None = None,
    total_steps: int | None = None,
    *,
    init_value: float = 0.0,
    end_value: float = 0.0,
    slope: float | None = None,
    form: str = "common",
) -> Schedule:
    """Linear warm-up then cosine decay (seeds 000 and 003).

    ``form="common"``: ``init_value + (peak - init_value) t / w`` for ``t < w``, then
    ``end + (peak - end)/2 (1 + cos(pi (t - w)/(T - w)))`` until ``T = total_steps``, then
    ``end_value``. Seed 000's warm-up ``eta_0 + alpha t`` is ``init_value=eta_0, slope=alpha``
    (then ``peak = eta_0 + alpha w``).

    ``form="seed000"``: seed 000 §1.2.3.2 "WarmUp Scheduler" transcribed verbatim,
    ``eta_0 + alpha t`` for ``t < T`` and ``eta_T + (eta_0 - eta_T)/2 (1 + cos(pi t/T))`` for
    ``t >= T`` with ``T = warmup_steps``, ``eta_0 = init_value``, ``alpha = slope``,
    ``eta_T = end_value``. As printed, the second branch starts at ``eta_T`` at ``t = T`` and is
    periodic (period ``2T``); ``total_steps`` is only checked against the warm-up.
    """
    return _WarmupCosine(peak, warmup_steps, total_steps, init_value, end_value, slope, form)


class _CosineRestarts(Schedule):
    _name = "cosine_restarts"

    def __init__(self, init_value, period_steps, period_mult, end_value):
        self.init_value = _rate("init_value", init_value)
        self.period_steps = _int("period_steps", period_steps)
        self.period_mult = _int("period_mult", period_mult)
        self.end_value = _rate("end_value", end_value)

    def _at(self, t: int) -> float:
        t_i = self.period_steps
        if self.period_mult == 1:
            t_cur = t % t_i
        else:
            t_cur = t
            while t_cur >= t_i:  # a logarithmic number of cycles
                t_cur -= t_i
                t_i *= self.period_mult
        c = 1.0 + math.cos(math.pi * t_cur / t_i)
        return self.end_value + (self.init_value - self.end_value) * c / 2.0

    def _robbins_monro(self) -> bool:
        return False


def cosine_restarts(
    init_value: float, period_steps: int, period_mult: int = 1, end_value: float = 0.0
) -> Schedule:
    """Cosine annealing with warm restarts, SGDR (Loshchilov & Hutter 2017; seed 003 restarts).

    ``eta_t = eta_min + (eta_max - eta_min)/2 (1 + cos(pi T_cur / T_i))``, ``T_cur`` = steps
    since the last restart, ``T_0 = period_steps``, ``T_{i+1} = period_mult * T_i``.
    """
    return _CosineRestarts(init_value, period_steps, period_mult, end_value)


class _Cyclic(Schedule):
    _name = "cyclic"

    def __init__(self, low, high, up_steps, down_steps, mode, gamma):
        self.low = _rate("low", low)
        self.high = _rate("high", high)
        self.up_steps = _int("up_steps", up_steps)
        self.down_steps = self.up_steps if down_steps is None else _int("down_steps", down_steps)
        self.mode = _choice("mode", mode, ("triangular", "triangular2", "exp_range"))
        self.gamma = _real("gamma", gamma, min_value=0.0, strict=True)

    def _at(self, t: int) -> float:
        total = float(self.up_steps + self.down_steps)
        ratio = self.up_steps / total
        cycle = math.floor(1 + t / total)
        x = 1.0 + t / total - cycle
        scale = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        if self.mode == "triangular":
            amp = 1.0
        elif self.mode == "triangular2":
            amp = 1 / (2.0 ** (cycle - 1))
        else:
            amp = self.gamma**t
        return self.low + (self.high - self.low) * scale * amp

    def _robbins_monro(self) -> bool:
        return False


def cyclic(
    low: float,
    high: float,
    up_steps: int,
    down_steps: int | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
) -> Schedule:
    """Cyclical learning rate (Smith 2017; seed 003 "cyclic"), as torch's ``CyclicLR``.

    Triangle between ``low`` and ``high``: up over ``up_steps``, down over ``down_steps``; the
    amplitude is scaled by 1 (``triangular``), ``1/2^(cycle-1)`` (``triangular2``) or
    ``gamma^t`` (``exp_range``).
    """
    return _Cyclic(low, high, up_steps, down_steps, mode, gamma)


class _OneCycle(Schedule):
    _name = "one_cycle"

    def __init__(self, peak, total_steps, pct_start, anneal, div_factor, final_div_factor, three):
        self.peak = _rate("peak", peak)
        self.total_steps = _int("total_steps", total_steps)
        self.pct_start = _real("pct_start", pct_start, min_value=0.0, strict=True)
        self.anneal = _choice("anneal", anneal, ("cos", "linear"))
        self.div_factor = _real("div_factor", div_factor, min_value=0.0, strict=True)
        self.final_div_factor = _real(
            "final_div_factor", final_div_factor, min_value=0.0, strict=True
        )
        self.three_phase = bool(three)
        n, p = self.total_steps, self.pct_start
        up_end = p * n - 1
        last = 2 * p * n - 2 if self.three_phase else up_end
        if up_end <= 0 or n - 1 <= last:
            raise ValueError(
                f"pct_start={p!r} leaves an empty phase with total_steps={n}; need "
                f"1 < pct_start * total_steps < {'(n + 1) / 2' if three else 'n'}"
            )
        initial = self.peak / self.div_factor
        self._initial, self._min = initial, initial / self.final_div_factor
        if self.three_phase:
            self._phases = ((up_end, initial, self.peak), (2 * p * n - 2, self.peak, initial))
        else:
            self._phases = ((up_end, initial, self.peak),)
        self._phases += ((n - 1.0, self._phases[-1][2], self._min),)

    def _at(self, t: int) -> float:
        if t >= self.total_steps - 1:
            return self._min
        start = 0.0
        for end, a, b in self._phases:
            if t <= end:
                pct = (t - start) / (end - start)
                if self.anneal == "cos":
                    return b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1)
                return (b - a) * pct + a
            start = end
        return self._min  # pragma: no cover

    def _robbins_monro(self) -> bool:
        return False


def one_cycle(
    peak: float,
    total_steps: int,
    pct_start: float = 0.3,
    anneal: str = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> Schedule:
    """One-cycle policy (Smith & Topin 2019), as torch's ``OneCycleLR``.

    From ``peak/div_factor`` up to ``peak`` over the first ``pct_start`` of the run, then down to
    ``peak/(div_factor*final_div_factor)`` at ``total_steps - 1`` (cosine or linear
    annealing); ``three_phase`` goes back to the start value before the final descent.
    """
    return _OneCycle(
        peak, total_steps, pct_start, anneal, div_factor, final_div_factor, three_phase
    )


class _Join(Schedule):
    _name = "join"

    def __init__(self, schedules, boundaries):
        self.schedules = tuple(schedules)
        for i, s in enumerate(self.schedules):
            if not callable(s):
                raise ValueError(f"schedules[{i}] must be callable, got {s!r}")
        self.boundaries = _boundaries("boundaries", boundaries)
        if len(self.schedules) != len(self.boundaries) + 1:
            raise ValueError(
                f"join needs len(boundaries) + 1 = {len(self.boundaries) + 1} schedules, "
                f"got {len(self.schedules)}"
            )

    def _at(self, t: int) -> float:
        i = bisect.bisect_right(self.boundaries, t)
        return float(self.schedules[i](t - (self.boundaries[i - 1] if i else 0)))

    def _robbins_monro(self) -> bool | None:
        return robbins_monro(self.schedules[-1])  # only the tail matters


def join(schedules: Sequence[Callable[[int], float]], boundaries: Sequence[int]) -> Schedule:
    """Concatenate schedules: ``schedules[i]`` runs from ``boundaries[i-1]`` (restarted at 0).

    ``eta_t = schedules[i](t - boundaries[i-1])`` with ``i`` = number of boundaries ``<= t``
    (optax ``join_schedules``). E.g. ``join([linear(0, 0.1, 100), cosine(0.1, 900)], [100])``.
    """
    return _Join(schedules, boundaries)


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
