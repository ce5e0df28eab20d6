"""Multitask losses and metrics (seed 001: multitask learning with shared parameters).

The model's output is the heads' outputs concatenated in task order
(:class:`goodfit.nn.multihead.MultiHead`), the target ``y`` one column per task
(:mod:`goodfit.data.multitask`); task ``t`` of width ``K_t`` reads its slice of the output.

- Per-task loss ``L_t``: cross-entropy (classification) or mean squared error (regression).
- :class:`MultiTaskLoss`: ``sum_t w_t L_t`` with fixed weights (default 1), or Kendall, Gal &
  Cipolla (2018)'s homoscedastic uncertainty weighting with learned ``s_t = log sigma_t^2``:
  ``0.5 exp(-s_t) L_t + 0.5 s_t`` for a regression task (their eq. 7: ``L / (2 sigma^2) +
  log sigma``) and ``exp(-s_t) L_t + 0.5 s_t`` for a classification task (eq. 10:
  ``L / sigma^2 + log sigma``). ``s`` lives in a :class:`TaskUncertainty` module that the
  model holds (so the optimizer trains it and checkpoints keep it). Evaluation (no autograd)
  reports ``sum_t w_t L_t``, so ``val_loss`` means the same with either weighting.
- :func:`task_metrics`: ``<prefix><task>_loss`` and, for classification, ``_accuracy``;
  :class:`MultiTaskMetrics` adds them to each validation's metrics (history, early stopping).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from goodfit.hooks import Callback

__all__ = ["MultiTaskLoss", "MultiTaskMetrics", "TaskUncertainty", "task_losses", "task_metrics"]

Task = dict[str, Any]  # {"name": str, "kind": "classification" | "regression", "width": int}


def _slices(tasks: Sequence[Task]) -> list[slice]:
    out, start = [], 0
    for t in tasks:
        out.append(slice(start, start + t["width"]))
        start += t["width"]
    return out


def task_losses(output: Tensor, y: Tensor, tasks: Sequence[Task]) -> list[Tensor]:
    """Each task's mean loss on the batch: cross-entropy or mean squared error."""
    losses = []
    for i, (task, sl) in enumerate(zip(tasks, _slices(tasks), strict=True)):
        out = output[:, sl]
        if task["kind"] == "classification":
            losses.append(F.cross_entropy(out, y[:, i].long()))
        else:
            losses.append(F.mse_loss(out[:, 0], y[:, i].to(out.dtype)))
    return losses


class TaskUncertainty(nn.Module):
    """The learned ``s_t = log sigma_t^2`` of Kendall et al.'s weighting (one per task, 0 at
    the start: every weight 1)."""

    def __init__(self, n_tasks: int) -> None:
        super().__init__()
        self.log_var = nn.Parameter(torch.zeros(n_tasks))


class MultiTaskLoss:
    """``sum_t w_t L_t`` or, with ``uncertainty``, Kendall et al.'s weighting (module doc)."""

    def __init__(
        self,
        tasks: Sequence[Task],
        weights: Sequence[float] | None = None,
        uncertainty: TaskUncertainty | None = None,
    ) -> None:
        self.tasks = list(tasks)
        self.weights = [1.0] * len(tasks) if weights is None else [float(w) for w in weights]
        if len(self.weights) != len(self.tasks) or any(w < 0 for w in self.weights):
            raise ValueError(f"need one weight >= 0 per task, got {list(self.weights)}")
        self.uncertainty = uncertainty

    def __call__(self, output: Tensor, y: Tensor) -> Tensor:
        losses = task_losses(output, y, self.tasks)
        if self.uncertainty is None or not torch.is_grad_enabled():
            return sum(w * loss for w, loss in zip(self.weights, losses, strict=True))
        s = self.uncertainty.log_var
        total = 0.0
        for i, (task, loss) in enumerate(zip(self.tasks, losses, strict=True)):
            scale = 1.0 if task["kind"] == "classification" else 0.5
            total = total + scale * torch.exp(-s[i]) * loss + 0.5 * s[i]
        return total

    def __repr__(self) -> str:
        names = [t["name"] for t in self.tasks]
        how = "uncertainty" if self.uncertainty is not None else f"weights={self.weights}"
        return f"MultiTaskLoss(tasks={names}, {how})"


@torch.no_grad()
def task_metrics(
    model: nn.Module,
    X: Tensor,
    y: Tensor,
    tasks: Sequence[Task],
    prefix: str = "",
    *,
    batch_size: int = 2048,
) -> dict[str, float]:
    """``{prefix}{task}_loss`` (mean over samples) and, for a classification task,
    ``{prefix}{task}_accuracy``, with the model in eval mode."""
    first = next(model.parameters(), None)
    device = X.device if first is None else first.device
    was_training = model.training
    model.eval()
    sums = [0.0] * len(tasks)
    correct = [0] * len(tasks)
    try:
        for start in range(0, len(X), batch_size):
            xb = X[start : start + batch_size].to(device)
            yb = y[start : start + batch_size].to(device)
            out = model(xb)
            for i, loss in enumerate(task_losses(out, yb, tasks)):
                sums[i] += float(loss) * len(xb)
            for i, (task, sl) in enumerate(zip(tasks, _slices(tasks), strict=True)):
                if task["kind"] == "classification":
                    correct[i] += int((out[:, sl].argmax(dim=1) == yb[:, i].long()).sum())
    finally:
        model.train(was_training)
    n = max(len(X), 1)
    metrics = {}
    for i, task in enumerate(tasks):
        metrics[f"{prefix}{task['name']}_loss"] = sums[i] / n
        if task["kind"] == "classification":
            metrics[f"{prefix}{task['name']}_accuracy"] = correct[i] / n
    return metrics


class MultiTaskMetrics(Callback):
    """Adds :func:`task_metrics` of ``val`` to every validation's metrics (so the history and
    an early stopping placed after this callback see ``val_<task>_accuracy``), and logs the
    learned ``<task>_log_var`` of an uncertainty weighting each epoch."""

    def __init__(
        self,
        tasks: Sequence[Task],
        val: tuple[Tensor, Tensor] | None,
        uncertainty: TaskUncertainty | None = None,
    ) -> None:
        self.tasks, self.val, self.uncertainty = list(tasks), val, uncertainty

    def on_validation_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        if self.val is not None:
            metrics.update(task_metrics(trainer.model, *self.val, self.tasks, "val_"))

    def on_epoch_end(self, trainer: Any) -> None:
        if self.uncertainty is not None:
            for task, s in zip(self.tasks, self.uncertainty.log_var.tolist(), strict=True):
                trainer.log(f"{task['name']}_log_var", s)
