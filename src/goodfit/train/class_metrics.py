"""Imbalance-aware classification metrics, as ``sklearn.metrics`` defines them.

Accuracy hides a minority class that is always wrong; these do not:

- ``balanced_accuracy``: the mean of the per-class recalls (``balanced_accuracy_score``);
- ``macro_f1``: the unweighted mean of the per-class F1 scores (``f1_score(average="macro")``,
  a class never predicted scores 0);
- ``recall``: the per-class recall, ``confusion_matrix``: counts, rows = true class, columns =
  predicted class (``confusion_matrix(labels=range(K))``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["CLASS_METRICS", "class_metrics", "class_report", "predict_classes"]

#: The scalar metrics :func:`class_metrics` adds (validation: ``val_<name>``; early stopping
#: and studies may monitor them, both maximized).
CLASS_METRICS = ("balanced_accuracy", "macro_f1")


def _labels(y: torch.Tensor | np.ndarray) -> np.ndarray:
    y = torch.as_tensor(y).cpu()
    return (y.argmax(dim=1) if y.ndim > 1 else y).numpy()


def _counts(t: np.ndarray, p: np.ndarray, num_classes: int) -> np.ndarray:
    """The confusion matrix over classes ``0 .. max(num_classes, labels) - 1`` (rows: true,
    columns: predicted), by one ``bincount`` of ``t k + p``."""
    k = max(num_classes, int(t.max(initial=-1)) + 1, int(p.max(initial=-1)) + 1)
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def class_metrics(
    y_true: torch.Tensor | np.ndarray, y_pred: torch.Tensor | np.ndarray, num_classes: int,
    prefix: str = "",
) -> dict[str, float]:  # fmt: skip
    """``{prefix}balanced_accuracy`` and ``{prefix}macro_f1`` of predicted class indices.

    scikit-learn's definitions, from one confusion matrix ``C`` (each epoch's evaluation pays
    this, and scikit-learn's input validation costs ~6 ms a call): ``balanced_accuracy_score``
    is the mean recall ``C_ii / sum_j C_ij`` over the classes present in ``y_true``;
    ``f1_score(labels=range(num_classes), average="macro", zero_division=0)`` is the mean
    over those labels of ``2 tp / (2 tp + fp + fn)``, 0 for a label neither true nor
    predicted (``tests/test_imbalance.py`` checks both against scikit-learn).
    """
    t = _labels(y_true).astype(np.int64, copy=False)
    p = np.asarray(torch.as_tensor(y_pred).cpu()).astype(np.int64, copy=False)
    if t.shape != p.shape or t.size == 0 or min(t.min(), p.min()) < 0:
        # scikit-learn's errors (lengths, empty input) and its handling of negative labels
        return _sklearn_class_metrics(t, p, num_classes, prefix)
    cm = _counts(t, p, num_classes)
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    recall = tp[support > 0] / support[support > 0]
    tp = tp[:num_classes]  # F1 over the labels asked for
    fp = cm.sum(axis=0)[:num_classes] - tp
    fn = support[:num_classes] - tp
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return {
        f"{prefix}balanced_accuracy": float(np.mean(recall)),
        f"{prefix}macro_f1": float(np.mean(f1)),
    }


def _sklearn_class_metrics(
    t: np.ndarray, p: np.ndarray, num_classes: int, prefix: str
) -> dict[str, float]:
    from sklearn.metrics import balanced_accuracy_score, f1_score

    with warnings.catch_warnings():  # a class absent from y_true: scikit-learn warns
        warnings.simplefilter("ignore")
        return {
            f"{prefix}balanced_accuracy": float(balanced_accuracy_score(t, p)),
            f"{prefix}macro_f1": float(
                f1_score(t, p, labels=range(num_classes), average="macro", zero_division=0)
            ),
        }


def class_report(
    y_true: torch.Tensor | np.ndarray, y_pred: torch.Tensor | np.ndarray, num_classes: int,
    prefix: str = "",
) -> dict[str, Any]:  # fmt: skip
    """:func:`class_metrics` plus ``{prefix}recall`` (per class; NaN for a class without
    samples) and ``{prefix}confusion_matrix`` (a list of rows), JSON-ready."""
    from sklearn.metrics import confusion_matrix

    t, p = _labels(y_true), np.asarray(torch.as_tensor(y_pred).cpu())
    cm = confusion_matrix(t, p, labels=range(num_classes))
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, np.diag(cm) / support, np.nan)
    return {
        **class_metrics(t, p, num_classes, prefix),
        f"{prefix}recall": [float(r) for r in recall],
        f"{prefix}confusion_matrix": cm.tolist(),
    }


@torch.no_grad()
def predict_classes(model: nn.Module, X: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """``argmax`` of the model's outputs on ``X`` in eval mode (on the model's device)."""
    first = next(model.parameters(), None)
    device = X.device if first is None else first.device
    was_training = model.training
    model.eval()
    try:
        preds = [
            model(X[i : i + batch_size].to(device)).argmax(dim=1).cpu()
            for i in range(0, len(X), batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.int64)
