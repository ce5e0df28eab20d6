"""Leak-free standardization: statistics fitted on training data only, applied to every part.

Fit :func:`fit_standardizer` on the part a model trains on (the training set, or a
cross-validation fold's training part) and apply the resulting :class:`Standardizer` to
validation and test data, so no statistic of held-out data leaks into training.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from goodfit.errors import DataError

__all__ = ["Standardizer", "apply_standardizer", "fit_standardizer"]


class Standardizer(NamedTuple):
    """Mean and standard deviation fitted on training data; ``(X - mean) / std``.

    A named tuple ``(mean, std)`` of float32 tensors shaped to broadcast against a batch
    ``(N, ...)``. Calling it (or :func:`apply_standardizer`) standardizes a tensor.
    """

    mean: Tensor
    std: Tensor

    def __call__(self, X: Tensor) -> Tensor:
        return apply_standardizer(X, self)


def _reduce_dims(X: Tensor, per: str) -> tuple[int, ...]:
    if per == "auto":
        per = "feature" if X.ndim <= 2 else "channel"
    if per == "feature":
        return (0,)
    if per == "channel":
        return (0, *range(2, X.ndim)) if X.ndim >= 2 else (0,)
    if per == "global":
        return tuple(range(X.ndim))
    raise ValueError(f"per must be one of 'auto', 'feature', 'channel', 'global', got {per!r}")


def fit_standardizer(X: Tensor | np.ndarray, *, per: str = "auto") -> Standardizer:
    """Fit standardization statistics on (training) data ``X`` of shape ``(N, ...)``.

    ``mean`` and population ``std`` (ddof 0, as scikit-learn's ``StandardScaler``) are computed
    in float64 over:

    - ``per="feature"``: the sample axis only, one statistic per feature/element (the default
      for tabular data, ``X.ndim <= 2``);
    - ``per="channel"``: the sample and all spatial/time axes, one statistic per channel (the
      default for images ``(N, C, H, W)`` and signals ``(N, C, L)``);
    - ``per="global"``: everything, one scalar.

    A zero standard deviation (a constant feature, e.g. an always-blank pixel) is replaced by 1,
    as scikit-learn does, so that feature is only centred.

    Fit on the training part only and apply the result to validation/test data; that is what
    keeps their statistics from leaking into training.

    Examples
    --------
    >>> s = fit_standardizer(X_train)
    >>> X_train, X_val = s(X_train), s(X_val)
    """
    X = torch.as_tensor(X)
    if X.ndim == 0 or X.shape[0] == 0:
        raise DataError("cannot fit standardization statistics on an empty array")
    dims = _reduce_dims(X, per)
    X64 = X.to(torch.float64)
    mean = X64.mean(dim=dims, keepdim=True)
    std = X64.std(dim=dims, keepdim=True, correction=0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return Standardizer(mean.to(torch.float32), std.to(torch.float32))


def apply_standardizer(X: Tensor, standardizer: Standardizer | tuple[Tensor, Tensor]) -> Tensor:
    """Return ``(X - mean) / std`` with statistics from :func:`fit_standardizer` (float32)."""
    mean, std = standardizer
    return ((torch.as_tensor(X, dtype=torch.float32) - mean) / std).to(torch.float32)
