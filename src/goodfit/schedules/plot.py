"""Plotting a schedule: :func:`plot_schedule` draws the rate over the steps with matplotlib.

matplotlib is imported lazily inside the function (a ``matplotlib.figure.Figure``, no pyplot
state), so importing :mod:`goodfit.schedules` does not import it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from goodfit.atomic import atomic_savefig
from goodfit.schedules.base import Schedule

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["plot_schedule"]


def plot_schedule(
    schedule: Callable[[int], float],
    steps: int | Sequence[int],
    path: Any = None,
    ax: Any = None,
    *,
    xlabel: str = "step",
) -> Figure:
    """Draw ``schedule`` over ``range(steps)`` (or the given steps); save to ``path`` if given.

    Draws into ``ax`` when given, else into a new ``matplotlib.figure.Figure``; returns the figure.
    ``xlabel="epoch"`` for a schedule stepped per epoch.
    """
    from matplotlib.figure import Figure

    xs = list(range(steps)) if isinstance(steps, int) else [int(s) for s in steps]
    if ax is None:
        fig = Figure(figsize=(6.0, 3.5), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    ax.plot(xs, [schedule(s) for s in xs], lw=1.5, drawstyle="steps-post")  # held over a step
    ax.set_xlabel(xlabel)
    ax.set_ylabel("learning rate")
    ax.set_title(repr(schedule) if isinstance(schedule, Schedule) else "learning-rate schedule")
    ax.grid(alpha=0.3)
    if path is not None:
        atomic_savefig(fig, path, dpi=120)
    return fig
