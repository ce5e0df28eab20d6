"""Schedules in phases: warm-up, warm restarts, cycles, and :func:`join` of consecutive schedules.

``step`` counts from 0. Sources: seeds 000 and 003 (linear warm-up then cosine decay, seed 000
§1.2.3.2 "WarmUp Scheduler"), seed 003 (restarts, cyclic rates), SGDR (Loshchilov & Hutter
2017), cyclical rates (Smith 2017), the one-cycle policy (Smith & Topin 2019) and optax's
``join_schedules``. The monotone decay schedules are in :mod:`goodfit.schedules.decay`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence

from goodfit.checks import check_choice, check_int, check_real
from goodfit.schedules.base import Schedule, check_boundaries, robbins_monro

__all__ = ["cosine_restarts", "cyclic", "join", "one_cycle", "warmup_cosine"]


class _WarmupCosine(Schedule):
    _name = "warmup_cosine"

    def __init__(self, peak, warmup_steps, total_steps, init_value, end_value, slope, form):
        self.form = check_choice("form", form, ("common", "seed000"))
        if warmup_steps is None:
            raise TypeError("warmup_cosine() missing required argument 'warmup_steps'")
        self.warmup_steps = check_int("warmup_steps", warmup_steps, low=0)
        self.init_value = check_real("init_value", init_value, low=0.0)
        self.end_value = check_real("end_value", end_value, low=0.0)
        if (peak is None) == (slope is None):
            raise ValueError("warmup_cosine needs exactly one of peak or slope")
        if slope is not None:
            self.slope = check_real("slope", slope)
            peak = self.init_value + self.slope * self.warmup_steps
        self.peak = check_real("peak", peak, low=0.0)
        if slope is None:
            self.slope = (
                (self.peak - self.init_value) / self.warmup_steps if self.warmup_steps else 0.0
            )
        if self.form == "seed000":
            if self.warmup_steps < 1:
                raise ValueError("warmup_steps must be >= 1 with form='seed000', got 0")
            self.total_steps = (
                None if total_steps is None else check_int("total_steps", total_steps, low=1)
            )
        else:
            if total_steps is None:
                raise TypeError("warmup_cosine() missing required argument 'total_steps'")
            self.total_steps = check_int("total_steps", total_steps, low=1)
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
        self.init_value = check_real("init_value", init_value, low=0.0)
        self.period_steps = check_int("period_steps", period_steps, low=1)
        self.period_mult = check_int("period_mult", period_mult, low=1)
        self.end_value = check_real("end_value", end_value, low=0.0)

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
        self.low = check_real("low", low, low=0.0)
        self.high = check_real("high", high, low=0.0)
        self.up_steps = check_int("up_steps", up_steps, low=1)
        self.down_steps = (
            self.up_steps if down_steps is None else check_int("down_steps", down_steps, low=1)
        )
        self.mode = check_choice("mode", mode, ("triangular", "triangular2", "exp_range"))
        self.gamma = check_real("gamma", gamma, low=0.0, low_open=True)

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
        self.peak = check_real("peak", peak, low=0.0)
        self.total_steps = check_int("total_steps", total_steps, low=1)
        self.pct_start = check_real("pct_start", pct_start, low=0.0, low_open=True)
        self.anneal = check_choice("anneal", anneal, ("cos", "linear"))
        self.div_factor = check_real("div_factor", div_factor, low=0.0, low_open=True)
        self.final_div_factor = check_real(
            "final_div_factor", final_div_factor, low=0.0, low_open=True
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
        self.boundaries = check_boundaries("boundaries", boundaries)
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
