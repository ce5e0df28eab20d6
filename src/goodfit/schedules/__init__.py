"""Learning-rate schedules: pure functions of the integer step, ``schedule(step) -> float``.

A schedule holds only its hyperparameters; the position (the step) lives in the caller (the
optimizer's ``scale_by_lr``, :class:`goodfit.train.schedule_callbacks.ScheduleCallback`, or the
torch adapter :func:`as_lr_scheduler`), so checkpoints store a single integer. ``step`` counts
from 0: ``schedule(0)`` is the rate of the first update.

Sources: seed 000 §1.2.3.2 (constant, recursive inverse-time decay with constant or step-decayed
tau, exponential, square root, cosine to eta_T, warm-up), GBC eq. 8.14 (seed 001; seed 004 eq. 6,
linear decay), seed 003 (linear/polynomial, inverse square root, exponential ``c^t`` per
minibatch/epoch, cosine to zero, restarts/warm-up, Robbins-Monro conditions).

Layout: :mod:`~goodfit.schedules.base` (the :class:`Schedule` base class and
:func:`robbins_monro`), :mod:`~goodfit.schedules.decay` (the decay schedules),
:mod:`~goodfit.schedules.phases` (warm-up, warm restarts, cycles and :func:`join`),
:mod:`~goodfit.schedules.torch_adapter` (:class:`ScheduleLR`, :func:`as_lr_scheduler`) and
:mod:`~goodfit.schedules.plot` (:func:`plot_schedule`); everything is re-exported here.

Example
-------
>>> from goodfit import schedules
>>> s = schedules.warmup_cosine(peak=1e-3, warmup_steps=200, total_steps=5000)
>>> s(0), s(200), s(5000)
(0.0, 0.001, 0.0)
"""

from goodfit.schedules import decay, phases
from goodfit.schedules.base import Schedule, robbins_monro
from goodfit.schedules.decay import *  # noqa: F403
from goodfit.schedules.phases import *  # noqa: F403
from goodfit.schedules.plot import plot_schedule
from goodfit.schedules.torch_adapter import ScheduleLR, as_lr_scheduler

__all__ = [
    "Schedule",
    "ScheduleLR",
    "as_lr_scheduler",
    "plot_schedule",
    "robbins_monro",
    *decay.__all__,
    *phases.__all__,
]
