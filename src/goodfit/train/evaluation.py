"""Evaluation of a model on a dataset, and the task's default loss (seed 003).

:func:`evaluate` is what the loop validates with and what studies score with: the mean loss,
the accuracy for classification, and on request the imbalance-aware metrics of
:mod:`goodfit.train.class_metrics`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["default_loss", "evaluate", "hard_labels", "infer_task"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def infer_task(y: torch.Tensor) -> str:
    """``"classification"`` for integer targets, ``"regression"`` for floating ones."""
    return "regression" if torch.is_floating_point(y) else "classification"


def default_loss(task: str) -> LossFn:
    """Cross-entropy (the negative log-likelihood of a categorical output, seed 003) for
    classification — it also takes soft targets (N, K) from mixup/cutmix — and mean squared error
    (the Gaussian NLL up to constants) for regression."""
    if task == "classification":
        return F.cross_entropy
    if task == "regression":
        return F.mse_loss
    raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")


def hard_labels(y: torch.Tensor) -> torch.Tensor:
    """Class indices of ``y``: itself, or the argmax of soft ``(N, K)`` targets."""
    return y.argmax(dim=1) if y.ndim > 1 else y


@torch.no_grad()
def evaluate(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    task: str | None = None,
    loss_fn: LossFn | None = None,
    batch_size: int = 2048,
    prefix: str = "",
    class_metrics: bool = False,
) -> dict[str, float]:
    """Mean loss (and accuracy for classification) of ``model`` on ``(X, y)`` in eval mode.

    Batches are moved to the model's device (data may stay on the CPU for a CUDA model).
    Returns e.g. ``{"val_loss": 0.12, "val_accuracy": 0.97}`` for ``prefix="val_"``;
    ``class_metrics`` adds balanced accuracy and macro-F1
    (:func:`goodfit.train.class_metrics.class_metrics`).
    """
    task = task or infer_task(y)
    loss_fn = loss_fn or default_loss(task)
    first = next(model.parameters(), None)
    device = X.device if first is None else first.device
    was_training = model.training
    model.eval()
    try:
        total, correct, n, preds = 0.0, 0, len(X), []
        for start in range(0, n, batch_size):
            xb = X[start : start + batch_size].to(device)
            yb = y[start : start + batch_size].to(device)
            out = model(xb)
            total += float(loss_fn(out, yb)) * len(xb)
            if task == "classification":
                correct += int((out.argmax(dim=1) == hard_labels(yb)).sum())
                if class_metrics:
                    preds.append(out.argmax(dim=1).cpu())
    finally:
        model.train(was_training)
    metrics = {f"{prefix}loss": total / max(n, 1)}
    if task == "classification":
        metrics[f"{prefix}accuracy"] = correct / max(n, 1)
        if class_metrics and preds:
            from goodfit.train.class_metrics import class_metrics as _class_metrics

            metrics.update(_class_metrics(y, torch.cat(preds), out.shape[1], prefix))
    return metrics
