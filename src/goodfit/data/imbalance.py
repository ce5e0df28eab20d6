"""Class imbalance: weights for the loss and a class-balanced draw of each epoch's samples.

- :func:`class_weights`: scikit-learn's ``compute_class_weight`` — ``"balanced"`` gives class
  ``k`` the weight ``n / (K * n_k)`` (King & Zeng 2001, as scikit-learn documents it), a dict
  gives the listed classes their weight and every other class 1. The weights go into the
  cross-entropy (``torch.nn.functional.cross_entropy(weight=...)``, a weighted mean).
- :class:`BalancedSampler`: the loop's :class:`goodfit.train.sampling.EpochSampler` that draws
  ``n`` indices with replacement, sample ``i`` with probability proportional to
  ``1 / n_{y_i}``, so every class is drawn equally often in expectation — the draw of torch's
  ``WeightedRandomSampler`` (``torch.multinomial(weights, n, replacement=True)``), made from the
  loop's own seeded generator so a run reproduces and resumes bit-for-bit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from goodfit.errors import DataError

__all__ = ["BalancedSampler", "class_weights", "weighted_cross_entropy"]


def _class_code(key: Any, classes: Sequence[Any] | None, num_classes: int) -> int:
    """A class given by its label (as text or value) -> its index ``0..K-1``."""
    names = [str(c) for c in (classes if classes is not None else range(num_classes))]
    if str(key) not in names:
        raise ValueError(f"class {key!r} is not a class of the data; classes: {names}")
    return names.index(str(key))


def class_weights(
    y: torch.Tensor | np.ndarray,
    num_classes: int,
    spec: str | Mapping[Any, float],
    classes: Sequence[Any] | None = None,
) -> torch.Tensor:
    """Per-class loss weights (float32, length ``num_classes``) by
    ``sklearn.utils.class_weight.compute_class_weight``: ``spec="balanced"`` or a
    ``{class label: weight}`` mapping (labels as in ``classes``, the data's original labels)."""
    from sklearn.utils.class_weight import compute_class_weight

    y = np.asarray(torch.as_tensor(y).cpu())
    codes = np.arange(num_classes)
    if spec == "balanced":
        missing = sorted(set(codes) - set(np.unique(y)))
        if missing:
            raise DataError(
                f"class_weights = 'balanced' needs every class in the training part; classes "
                f"{[classes[m] if classes else m for m in missing]} have no sample"
            )
        weights = compute_class_weight("balanced", classes=codes, y=y)
    elif isinstance(spec, Mapping):
        given = {_class_code(k, classes, num_classes): float(v) for k, v in spec.items()}
        bad = {k: v for k, v in given.items() if not v > 0 or not np.isfinite(v)}
        if bad:
            raise ValueError(f"class weights must be finite and > 0, got {bad}")
        weights = compute_class_weight(given, classes=codes, y=y)
    else:
        raise ValueError(
            f"class_weights must be 'balanced' or a {{class: weight}} table, got {spec!r}"
        )
    return torch.as_tensor(weights, dtype=torch.float32)


def weighted_cross_entropy(
    weight: torch.Tensor,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Cross-entropy with per-class ``weight`` (torch's weighted mean over the batch); soft
    targets (mixup, cutmix) are weighted per class as torch defines it."""

    def loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out, target, weight=weight.to(out.device))

    return loss


class BalancedSampler:
    """Each epoch ``n`` indices drawn with replacement, ``P(i) ∝ 1 / n_{y_i}`` (classes equally
    likely), from the loop's seeded generator — torch's ``WeightedRandomSampler`` draw."""

    def __init__(self, y: torch.Tensor | np.ndarray, num_classes: int | None = None) -> None:
        y = torch.as_tensor(np.asarray(torch.as_tensor(y).cpu()), dtype=torch.int64)
        if y.ndim != 1 or len(y) == 0:
            raise ValueError(f"BalancedSampler needs 1-D class labels, got shape {tuple(y.shape)}")
        counts = torch.bincount(y, minlength=num_classes or 0).to(torch.float64)
        self.weights = (1.0 / counts)[y]

    def epoch_indices(self, trainer: Any, n: int, generator: torch.Generator) -> torch.Tensor:
        if n != len(self.weights):
            raise ValueError(f"BalancedSampler was built for {len(self.weights)} samples, not {n}")
        return torch.multinomial(self.weights, n, replacement=True, generator=generator)

    def __repr__(self) -> str:
        return f"BalancedSampler(n={len(self.weights)})"
