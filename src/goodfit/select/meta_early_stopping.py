"""Early-stopping meta-algorithms that use all the training data (GBC §7.8, seed 001).

Algorithm 7.1 (plain early stopping) is :class:`goodfit.train.callbacks.EarlyStopping`. It
leaves the validation part unused for fitting; the two algorithms here bring it back:

- **Algorithm 7.2** — run 7.1 on (subtrain, valid) to find the best number of steps ``i*``;
  set the parameters to random values *again*; train on all of the training data for ``i*``
  steps.
- **Algorithm 7.3** — run 7.1 and keep its parameters ``theta*``; let
  ``eps = J(theta*, X_subtrain)`` (the training objective at the stopping point); continue
  training on all of the training data until the validation loss falls below ``eps``
  (``while J(theta, X_valid) > eps: train for n steps``), with an epoch budget as a safeguard.

Both take a ``build`` function returning a fresh ``(model, optimizer, callbacks, penalty)``
(``penalty`` may be ``None``) — called once
per phase after the run's seed is reset, so "random values again" is the same initialization as
the first phase (as a re-run of the same config would be).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from goodfit.hooks import Callback
from goodfit.train.early_stopping import EarlyStopping
from goodfit.train.history import History
from goodfit.train.loop import evaluate, fit, seed_everything

__all__ = ["MetaResult", "StopBelow", "algorithm_7_2", "algorithm_7_3"]

Batch = tuple[torch.Tensor, torch.Tensor]
Builder = Callable[[], tuple[nn.Module, torch.optim.Optimizer, list[Callback], Any]]


class StopBelow(Callback):
    """Stop once the validation metric ``monitor`` is at or below ``threshold`` (the loop
    condition of GBC Algorithm 7.3, ``while J(theta, X_valid) > eps``)."""

    def __init__(self, threshold: float, monitor: str = "val_loss") -> None:
        self.threshold, self.monitor = float(threshold), monitor
        self.reached = False

    def on_validation_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        if metrics[self.monitor] <= self.threshold:
            self.reached = True
            trainer.request_stop(
                f"Algorithm 7.3: {self.monitor} {metrics[self.monitor]:.6g} <= eps "
                f"{self.threshold:.6g}"
            )

    def state_dict(self) -> dict[str, Any]:
        return {"reached": self.reached}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reached = state["reached"]


@dataclasses.dataclass
class MetaResult:
    """Outcome of a meta-algorithm: the final ``model``, the histories of both phases, the best
    step ``i*`` found by Algorithm 7.1 and, for 7.3, the threshold ``eps`` and whether it was
    reached."""

    model: nn.Module
    first: History
    second: History
    best_step: int
    eps: float | None = None
    reached: bool | None = None

    @property
    def records(self) -> list[dict[str, Any]]:
        """Both phases' epoch records, the second marked ``phase = 2``."""
        first = [{**r, "phase": 1} for r in self.first.records]
        offset = len(first)
        second = [{**r, "phase": 2, "epoch": r["epoch"] + offset} for r in self.second.records]
        return first + second


def _concat(a: Batch, b: Batch) -> Batch:
    return torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])


def _first_phase(
    build: Builder,
    subtrain: Batch,
    valid: Batch,
    early_stopping: EarlyStopping,
    seed: int,
    fit_kwargs: dict[str, Any],
) -> tuple[nn.Module, torch.optim.Optimizer, list[Callback], Any, History]:
    seed_everything(seed)
    model, optimizer, callbacks, penalty = build()
    history = fit(
        model,
        subtrain,
        valid,
        optimizer=optimizer,
        penalty=penalty,
        callbacks=[*callbacks, early_stopping],
        seed=seed,
        **fit_kwargs,
    )
    return model, optimizer, callbacks, penalty, history


def algorithm_7_2(
    build: Builder,
    subtrain: Batch,
    valid: Batch,
    *,
    early_stopping: EarlyStopping,
    epochs: int,
    batch_size: int = 32,
    seed: int = 0,
    **fit_kwargs: Any,
) -> MetaResult:
    """GBC Algorithm 7.2: find ``i*`` by early stopping on (subtrain, valid), re-initialize, and
    train on subtrain + valid for exactly ``i*`` optimizer steps."""
    common = {"epochs": epochs, "batch_size": batch_size, **fit_kwargs}
    *_, first = _first_phase(build, subtrain, valid, early_stopping, seed, common)
    best_step = early_stopping.best_step
    seed_everything(seed)
    model, optimizer, callbacks, penalty = build()
    if best_step == 0:  # no improvement ever: the initial parameters were best
        return MetaResult(model, first, History(), 0)
    train_all = _concat(subtrain, valid)
    steps_per_epoch = -(-len(train_all[0]) // batch_size)
    second = fit(
        model,
        train_all,
        optimizer=optimizer,
        penalty=penalty,
        callbacks=callbacks,
        seed=seed,
        epochs=-(-best_step // steps_per_epoch),
        batch_size=batch_size,
        max_steps=best_step,
        **fit_kwargs,
    )
    return MetaResult(model, first, second, best_step)


def algorithm_7_3(
    build: Builder,
    subtrain: Batch,
    valid: Batch,
    *,
    early_stopping: EarlyStopping,
    epochs: int,
    extra_epochs: int | None = None,
    batch_size: int = 32,
    seed: int = 0,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    **fit_kwargs: Any,
) -> MetaResult:
    """GBC Algorithm 7.3: keep the early-stopped ``theta*``, set ``eps`` to the subtrain loss
    there, and continue on subtrain + valid until the validation loss is ``<= eps`` (checked each
    epoch; at most ``extra_epochs``, default ``epochs``)."""
    common = {"epochs": epochs, "batch_size": batch_size, "loss": loss, **fit_kwargs}
    model, optimizer, callbacks, penalty, first = _first_phase(
        build, subtrain, valid, early_stopping, seed, common
    )
    eps = evaluate(model, *subtrain, loss_fn=loss)["loss"]  # theta* restored by EarlyStopping
    stop = StopBelow(eps)
    if evaluate(model, *valid, loss_fn=loss)["loss"] <= eps:
        return MetaResult(model, first, History(), early_stopping.best_step, eps, True)
    if extra_epochs == 0:
        return MetaResult(model, first, History(), early_stopping.best_step, eps, False)
    second = fit(
        model,
        _concat(subtrain, valid),
        valid,
        optimizer=optimizer,
        penalty=penalty,
        callbacks=[*callbacks, stop],
        seed=seed + 1,
        epochs=epochs if extra_epochs is None else extra_epochs,
        batch_size=batch_size,
        loss=loss,
        **fit_kwargs,
    )
    return MetaResult(model, first, second, early_stopping.best_step, eps, stop.reached)
