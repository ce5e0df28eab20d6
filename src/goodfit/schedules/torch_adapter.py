"""A goodfit schedule as a ``torch.optim.lr_scheduler.LRScheduler``, for plain torch optimizers.

:class:`ScheduleLR` sets each param group's rate to ``schedule(last_epoch)`` (an absolute rate,
not a factor) and checkpoints only the position; :func:`as_lr_scheduler` is its factory. The
caller steps it after each optimizer step or each epoch, as with any torch scheduler.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["ScheduleLR", "as_lr_scheduler"]


class ScheduleLR(torch.optim.lr_scheduler.LRScheduler):
    """A torch ``LRScheduler`` whose rate is ``schedule(last_epoch)`` (absolute, not a factor).

    One schedule for every param group, or a list with one per group. ``state_dict`` holds the
    position (``last_epoch``) and not the schedules, which are configuration.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, schedule: Any, last_epoch: int = -1):
        groups = len(optimizer.param_groups)
        if callable(schedule):
            schedule = [schedule] * groups
        schedule = list(schedule)
        if len(schedule) != groups or not all(callable(s) for s in schedule):
            raise ValueError(f"schedule must be a callable or {groups} callables (one per group)")
        self.schedules = schedule
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [float(s(self.last_epoch)) for s in self.schedules]

    _get_closed_form_lr = get_lr

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "schedules")}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update(state_dict)


def as_lr_scheduler(optimizer: torch.optim.Optimizer, schedule: Any) -> ScheduleLR:
    """Wrap a schedule as a ``torch.optim.lr_scheduler.LRScheduler`` for a plain torch optimizer.

    Call ``scheduler.step()`` after each ``optimizer.step()`` (per step) or each epoch.
    """
    return ScheduleLR(optimizer, schedule)
