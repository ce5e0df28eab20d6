"""One run, many models: snapshot ensembles and weight averaging (SWA, EMA).

- **Snapshot ensembles** (Huang, Li, Pleiss, Liu, Hopcroft & Weinberger 2017, *Snapshot
  Ensembles: Train 1, get M for free*): the learning rate follows cosine cycles,
  ``alpha(t) = alpha_0/2 (cos(pi mod(t, ceil(T/M)) / ceil(T/M)) + 1)`` — SGDR with a constant
  period and ``eta_min = 0`` (``goodfit.schedules.cosine_restarts``) — and the weights at the end
  of each cycle are one member; the members' predictions are averaged.
- **SWA** (Izmailov et al. 2018) and **EMA** of the weights, through torch's
  ``torch.optim.swa_utils.AveragedModel`` (equal running average, or
  ``get_ema_multi_avg_fn(decay)``) and ``update_bn`` (a pass over the training data recomputes
  batch-norm statistics for the averaged weights).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn

from goodfit.ensemble.aggregate import Ensemble
from goodfit.hooks import Callback
from goodfit.schedules import cosine_restarts

if TYPE_CHECKING:  # pragma: no cover
    from goodfit.train.loop import Trainer

__all__ = ["SnapshotEnsemble", "WeightAveraging", "snapshot_schedule"]

AVERAGING = ("swa", "ema")


def snapshot_schedule(lr: float, cycle_steps: int) -> Any:
    """Huang et al. 2017's cyclic cosine schedule (eq. 2): SGDR with period ``cycle_steps``."""
    return cosine_restarts(lr, period_steps=cycle_steps)


class SnapshotEnsemble(Callback):
    """Keep a copy of the weights after every ``cycle_steps`` optimizer steps (the end of each
    cosine cycle, Huang et al. 2017); :meth:`ensemble` builds the members from them."""

    def __init__(self, cycle_steps: int) -> None:
        if not isinstance(cycle_steps, int) or cycle_steps < 1:
            raise ValueError(f"cycle_steps must be an integer >= 1, got {cycle_steps!r}")
        self.cycle_steps = cycle_steps
        self.snapshots: list[dict[str, Tensor]] = []

    def on_after_step(self, trainer: Trainer) -> None:
        if trainer.step % self.cycle_steps == 0:
            self.snapshots.append(
                {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
            )

    def ensemble(self, model: nn.Module, *, task: str, rule: str = "mean") -> Ensemble:
        """The snapshots as members of an :class:`Ensemble` (copies of ``model``)."""
        if not self.snapshots:
            raise ValueError("no snapshot was taken: train at least one full cycle")
        members = []
        for state in self.snapshots:
            m = copy.deepcopy(model)
            m.load_state_dict(state)
            members.append(m)
        return Ensemble(members, task=task, rule=rule, info={"snapshots": len(members)})

    def state_dict(self) -> dict[str, Any]:
        return {"snapshots": self.snapshots}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.snapshots = list(state["snapshots"])


class WeightAveraging(Callback):
    """SWA (``kind="swa"``: the equal average of the weights at the end of every epoch from
    ``start_epoch`` (0-based) on) or EMA (``kind="ema"``: ``theta_ema <- decay theta_ema +
    (1 - decay) theta`` after every step), kept in ``self.averaged`` (torch's
    ``AveragedModel``; ``self.averaged.module`` is the averaged network). With ``bn_data`` (the
    training inputs) torch's ``update_bn`` recomputes batch-norm statistics at the end."""

    def __init__(
        self,
        kind: str = "swa",
        *,
        start_epoch: int = 0,
        decay: float = 0.999,
        bn_data: Tensor | None = None,
        batch_size: int = 256,
    ) -> None:
        if kind not in AVERAGING:
            raise ValueError(f"kind must be one of {AVERAGING}, got {kind!r}")
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay!r}")
        if not isinstance(start_epoch, int) or start_epoch < 0:
            raise ValueError(f"start_epoch must be an integer >= 0, got {start_epoch!r}")
        self.kind, self.start_epoch, self.decay = kind, start_epoch, decay
        self.bn_data, self.batch_size = bn_data, batch_size
        self.averaged: AveragedModel | None = None
        self.updates = 0
        self._pending: dict[str, Any] | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        if self.averaged is None:
            fn = get_ema_multi_avg_fn(self.decay) if self.kind == "ema" else None
            self.averaged = AveragedModel(
                trainer.model, multi_avg_fn=fn, use_buffers=self.kind == "ema"
            )
            if self._pending is not None:  # resumed: the average so far
                self.averaged.load_state_dict(self._pending)
                self._pending = None

    def _update(self, model: nn.Module) -> None:
        assert self.averaged is not None
        self.averaged.update_parameters(model)
        self.updates += 1

    def on_after_step(self, trainer: Trainer) -> None:
        if self.kind == "ema":
            self._update(trainer.model)

    def on_epoch_end(self, trainer: Trainer) -> None:
        if self.kind == "swa" and trainer.epoch >= self.start_epoch:
            self._update(trainer.model)

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.averaged is None or self.updates == 0:
            return
        if self.bn_data is not None and _has_batch_norm(self.averaged.module):
            device = next(self.averaged.parameters()).device
            batches = _batches(self.bn_data, self.batch_size)
            update_bn(batches, self.averaged, device=device)
        trainer.summary[f"{self.kind}_updates"] = self.updates

    def model(self) -> nn.Module:
        """The averaged network (the trained model's architecture)."""
        if self.averaged is None or self.updates == 0:
            raise ValueError(f"{self.kind}: no average was taken (train past start_epoch)")
        return self.averaged.module

    def state_dict(self) -> dict[str, Any]:
        return {
            "averaged": None if self.averaged is None else self.averaged.state_dict(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = state["updates"]
        self._pending = state["averaged"]


def _has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _batches(X: Tensor, batch_size: int) -> Sequence[Tensor]:
    return [X[s : s + batch_size] for s in range(0, len(X), batch_size)]
