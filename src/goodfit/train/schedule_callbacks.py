"""Callbacks that set the learning rate: a schedule per step/epoch, and reduce-on-plateau.

:class:`ScheduleCallback` drives every param group's ``lr`` from a pure schedule
(:mod:`goodfit.schedules`) and checkpoints only its position, so a resumed run continues
bit-for-bit. :class:`ReduceLROnPlateau` is the reactive alternative: it lowers the rate when a
validation metric stops improving (same rule as ``torch.optim.lr_scheduler.ReduceLROnPlateau``).
Use one of the two per run: a schedule overwrites the rate at each of its steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from goodfit.errors import ConfigError
from goodfit.hooks import Callback

if TYPE_CHECKING:  # pragma: no cover
    from goodfit.train.loop import Trainer

__all__ = ["ReduceLROnPlateau", "ScheduleCallback", "set_lr"]


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set ``lr`` of every param group (in place when the group's ``lr`` is a tensor), times the
    group's ``lr_mult`` when it has one (per-layer rates, :mod:`goodfit.app.finetune`)."""
    for group in optimizer.param_groups:
        value = lr * group.get("lr_mult", 1.0)
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(value)
        else:
            group["lr"] = value


class ScheduleCallback(Callback):
    """Set every param group's ``lr`` to ``schedule(position)`` before each step or epoch.

    Parameters
    ----------
    schedule : callable ``int -> float``
        A pure schedule, e.g. ``goodfit.schedules.cosine(0.1, decay_steps=5000)``.
    interval : {"step", "epoch"}
        ``"step"``: the position counts optimizer steps (advanced in ``on_after_step``);
        ``"epoch"``: it counts epochs (advanced in ``on_epoch_end``).

    The epoch record gets ``lr``, the rate used by the epoch's last step. ``state_dict`` holds
    the position, so a resumed run continues the schedule where it stopped.

    Example
    -------
    >>> from goodfit import schedules
    >>> cb = ScheduleCallback(schedules.cosine(0.1, decay_steps=1000), interval="step")
    """

    def __init__(self, schedule: Callable[[int], float], interval: str = "step") -> None:
        if not callable(schedule):
            raise ValueError(f"schedule must be callable (step -> lr), got {schedule!r}")
        if interval not in ("step", "epoch"):
            raise ValueError(f"interval must be 'step' or 'epoch', got {interval!r}")
        self.schedule = schedule
        self.interval = interval
        self.position = 0
        self._current = self._used = math.nan

    def _apply(self, trainer: Trainer) -> None:
        self._current = float(self.schedule(self.position))
        set_lr(trainer.optimizer, self._current)

    def on_fit_start(self, trainer: Trainer) -> None:
        self._apply(trainer)  # after a resume: the restored position

    def on_epoch_start(self, trainer: Trainer) -> None:
        self._apply(trainer)

    def on_after_step(self, trainer: Trainer) -> None:
        if self.interval == "step":
            self._used = self._current
            self.position += 1
            self._apply(trainer)

    def on_epoch_end(self, trainer: Trainer) -> None:
        trainer.log("lr", self._used if self.interval == "step" else self._current)
        if self.interval == "epoch":
            self.position += 1

    def state_dict(self) -> dict[str, Any]:
        return {"position": self.position, "interval": self.interval}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("interval", self.interval) != self.interval:
            raise ValueError(
                f"checkpoint has a schedule stepped per {state['interval']!r}, "
                f"this callback steps per {self.interval!r}"
            )
        self.position = int(state["position"])

    def __repr__(self) -> str:
        return f"ScheduleCallback({self.schedule!r}, interval={self.interval!r})"


class ReduceLROnPlateau(Callback):
    """Multiply the rate by ``factor`` when ``monitor`` has not improved for ``patience`` checks.

    Reactive schedule (Keras/torch ``ReduceLROnPlateau``). After each validation:
    ``value`` improves on ``best`` when ``value < best (1 - threshold)`` (mode ``"min"``,
    ``threshold_mode="rel"``), ``value < best - threshold`` (``"abs"``), or the mirror images for
    ``"max"``. More than ``patience`` checks without improvement set every group's
    ``lr <- max(lr * factor, min_lr)`` (skipped when the change is ``<= eps``), then ``cooldown``
    checks are ignored (``torch.optim.lr_scheduler.ReduceLROnPlateau``'s rule, reached from the
    ``on_validation_end`` hook; the loop's epoch record already holds ``lr``).

    Parameters
    ----------
    monitor : str
        Metric name from ``on_validation_end`` (default ``"val_loss"``).
    mode : {"min", "max"}
    factor : float in (0, 1)
    patience, cooldown : int >= 0
    threshold : float >= 0
    threshold_mode : {"rel", "abs"}
    min_lr : float >= 0, or one per param group
    eps : float >= 0
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float | list[float] = 0.0,
        eps: float = 1e-8,
    ) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor!r}")
        for name, value in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if not threshold >= 0.0:
            raise ValueError(f"threshold must be >= 0, got {threshold!r}")
        if not eps >= 0.0:
            raise ValueError(f"eps must be >= 0, got {eps!r}")
        mins = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr]
        for m in mins:
            if not m >= 0.0:
                raise ValueError(f"min_lr must be >= 0, got {min_lr!r}")
        self.monitor = monitor
        self.mode = mode
        self.factor = float(factor)
        self.patience = patience
        self.threshold = float(threshold)
        self.threshold_mode = threshold_mode
        self.cooldown = cooldown
        self.min_lr = min_lr
        self.eps = float(eps)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad = 0
        self.cooldown_counter = 0

    def _is_better(self, a: float) -> bool:
        best = self.best
        if self.mode == "min":
            if self.threshold_mode == "rel":
                return a < best * (1.0 - self.threshold)
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def step(self, value: float, optimizer: torch.optim.Optimizer) -> None:
        """Record one value of the monitored metric and reduce the rate if it has plateaued."""
        value = float(value)
        if self._is_better(value):
            self.best = value
            self.num_bad = 0
        else:
            self.num_bad += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad = 0
        if self.num_bad > self.patience:
            groups = optimizer.param_groups
            mins = self.min_lr if isinstance(self.min_lr, (list, tuple)) else None
            if mins is not None and len(mins) != len(groups):
                raise ValueError(f"min_lr has {len(mins)} entries for {len(groups)} param groups")
            for i, group in enumerate(groups):
                old = float(group["lr"])
                new = max(old * self.factor, mins[i] if mins is not None else self.min_lr)
                if old - new > self.eps:
                    if isinstance(group["lr"], torch.Tensor):
                        group["lr"].fill_(new)
                    else:
                        group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad = 0

    def on_validation_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if self.monitor not in metrics:
            raise ConfigError(
                f"ReduceLROnPlateau monitor {self.monitor!r} is not a validation metric; "
                f"available: {sorted(metrics)}"
            )
        self.step(metrics[self.monitor], trainer.optimizer)

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "num_bad": self.num_bad,
            "cooldown_counter": self.cooldown_counter,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
        self.num_bad = int(state["num_bad"])
        self.cooldown_counter = int(state["cooldown_counter"])
