"""The callback protocol: small objects with named hooks called by :func:`goodfit.fit`.

A leaf module: parts (penalties, constraints, sparsity reports) subclass :class:`Callback`
without importing the training loop.

A hook receives the :class:`goodfit.train.loop.Trainer` that runs the loop; it may read
``trainer.model``, ``trainer.optimizer``, ``trainer.epoch``, ``trainer.step`` (optimizer steps
done so far), ``trainer.history`` and write ``trainer.log(key, value)`` (added to the current
epoch's record) or ``trainer.request_stop(reason)``.

Only the hooks a callback overrides are called, so an unused hook costs nothing on the hot path.
A callback that keeps state across epochs implements ``state_dict``/``load_state_dict`` with
plain tensors, numbers, strings, lists and dicts, so checkpoints load with
``torch.load(weights_only=True)`` and a resumed run continues bit-for-bit.
"""

from __future__ import annotations

from typing import Any

#: A hook's ``trainer`` argument: the :class:`goodfit.train.loop.Trainer` running the loop
#: (typed loosely so that this leaf module imports nothing of the loop).
Trainer = Any

__all__ = ["HOOKS", "Callback"]

HOOKS = (
    "on_fit_start",
    "on_epoch_start",
    "on_batch_start",
    "on_after_backward",
    "on_after_step",
    "on_batch_end",
    "on_validation_end",
    "on_epoch_end",
    "on_fit_end",
)


class Callback:
    """Base class: override any of the hooks in :data:`HOOKS`.

    Order inside one training step: ``on_batch_start`` -> forward, loss, backward ->
    ``on_after_backward`` (gradient clipping, noise) -> ``optimizer.step()`` ->
    ``on_after_step`` (constraints, proximal steps, per-step schedules) -> ``on_batch_end``.
    ``on_validation_end(trainer, metrics)`` runs after each validation (every epoch, or every
    ``val_every`` steps) with the validation metrics, e.g. ``{"val_loss": 0.3}``.
    """

    def on_fit_start(self, trainer: Trainer) -> None: ...
    def on_epoch_start(self, trainer: Trainer) -> None: ...
    def on_batch_start(self, trainer: Trainer) -> None: ...
    def on_after_backward(self, trainer: Trainer) -> None: ...
    def on_after_step(self, trainer: Trainer) -> None: ...
    def on_batch_end(self, trainer: Trainer) -> None: ...
    def on_validation_end(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...
    def on_epoch_end(self, trainer: Trainer) -> None: ...
    def on_fit_end(self, trainer: Trainer) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint (plain tensors/numbers/strings/containers only)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def overrides(self, hook: str) -> bool:
        """True when this callback's class redefines ``hook`` (so the loop must call it)."""
        return getattr(type(self), hook) is not getattr(Callback, hook)
