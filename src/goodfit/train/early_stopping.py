"""Early stopping, GBC Algorithm 7.1 (seed 001), as a callback of :func:`goodfit.fit`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from goodfit.hooks import Callback

if TYPE_CHECKING:  # pragma: no cover
    from goodfit.train.loop import Trainer

__all__ = ["EarlyStopping"]


class EarlyStopping(Callback):
    """Early stopping, GBC Algorithm 7.1 (seed 001).

    After every validation (each epoch, or every ``val_every`` steps of :func:`goodfit.fit`) the
    monitored value ``v'`` is compared with the best ``v`` so far: if it improves by more than
    ``min_delta`` then ``j <- 0``, ``theta* <- theta``, ``i* <- i``, ``v <- v'``; otherwise
    ``j <- j + 1``, and training stops once ``j >= patience``. A deep copy of the best parameters
    ``theta*`` is kept and **restored however training ends** (patience exhausted, the epoch budget
    reached, another callback's stop, divergence). ``best_step`` (i*, optimizer steps) and
    ``best_epoch`` (1-based) go into the trainer's summary.

    Parameters
    ----------
    monitor : metric name from the validation metrics, e.g. ``"val_loss"``, ``"val_accuracy"``.
    patience : validations without improvement before stopping (``p`` of Algorithm 7.1), >= 1.
    min_delta : minimum improvement that counts, >= 0.
    mode : ``"min"``, ``"max"`` or ``"auto"`` (max for names containing "acc" or "f1", else
        min).
    restore_best : restore ``theta*`` at the end (default True, as Algorithm 7.1 returns theta*).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 10,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best: bool = True,
    ) -> None:
        if not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be an integer >= 1, got {patience!r}")
        if not min_delta >= 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta!r}")
        if mode == "auto":
            mode = "max" if "acc" in monitor or "f1" in monitor else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
        self.monitor, self.patience, self.min_delta = monitor, patience, float(min_delta)
        self.mode, self.restore_best = mode, restore_best
        self.best = math.inf if mode == "min" else -math.inf
        self.wait = 0
        self.best_step = 0
        self.best_epoch = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.stopped = False

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_fit_start(self, trainer: Trainer) -> None:
        if self.best_state is None:  # theta* <- theta, i* <- i before any training
            self.best_state = _clone_state(trainer.model)
            self.best_step = trainer.step

    def on_validation_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if self.monitor not in metrics:
            raise KeyError(
                f"EarlyStopping monitors {self.monitor!r} but validation reported "
                f"{sorted(metrics)}; pass validation data or monitor one of those"
            )
        value = float(metrics[self.monitor])
        if self._improved(value):
            self.best, self.wait = value, 0
            self.best_state = _clone_state(trainer.model)
            self.best_step, self.best_epoch = trainer.step, trainer.epoch + 1
        else:
            self.wait += 1
            if self.wait >= self.patience and not self.stopped:
                self.stopped = True
                trainer.request_stop(
                    f"early stopping: no improvement of {self.monitor} for {self.patience} "
                    f"validations (best {self.best:.6g} at epoch {self.best_epoch})"
                )

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.restore_best and self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)
        trainer.summary.update(
            best_epoch=self.best_epoch,
            best_step=self.best_step,
            **{f"best_{self.monitor}": self.best},
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "wait": self.wait,
            "best_step": self.best_step,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "stopped": self.stopped,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait = state["best"], state["wait"]
        self.best_step, self.best_epoch = state["best_step"], state["best_epoch"]
        self.best_state, self.stopped = state["best_state"], state["stopped"]


def _clone_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
