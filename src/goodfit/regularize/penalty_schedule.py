r"""The callback that moves scheduled penalty coefficients: ``penalty.set_step(trainer.step)``
before each batch, for coefficients given as callables of the step (seed 000 §1.1.3's
:math:`\Lambda_j` may follow a schedule)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from goodfit.hooks import Callback

if TYPE_CHECKING:
    from goodfit.regularize.penalties import BasePenalty

__all__ = ["PenaltyScheduleCallback"]


class PenaltyScheduleCallback(Callback):
    """Tells a penalty the optimizer step before each batch, so scheduled coefficients move.

    ``penalty.set_step(trainer.step)`` in ``on_batch_start`` (``trainer.step`` = optimizer steps
    done, so step 0 is the first batch). Example: ``l2(lambda s: 1e-4 * min(1, s / 1000))``.
    """

    def __init__(self, penalty: BasePenalty) -> None:
        if not hasattr(penalty, "set_step"):
            raise ValueError(f"penalty has no set_step method: {penalty!r}")
        self.penalty = penalty

    def on_batch_start(self, trainer: Any) -> None:
        self.penalty.set_step(trainer.step)
