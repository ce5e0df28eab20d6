"""The per-member losses of a :func:`goodfit.train.fit_many` group: on outputs stacked along a
leading member axis (K, B, ...), each member's batch loss as ``fit`` computes it for one model —
the batch mean, or the sample-weighted mean ``sum w_i l_i / sum w_i``."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

__all__ = ["hard_labels_k", "stacked_loss", "weighted"]


def hard_labels_k(y: Tensor) -> Tensor:
    """Class indices (K, B) of stacked labels: themselves, or the argmax of soft targets."""
    return y.argmax(dim=-1) if y.ndim > 2 else y


def stacked_loss(loss_fn: Callable[..., Tensor]) -> Callable[..., Tensor] | None:
    """Each member's batch loss computed on the stacked outputs (K, B, ...) at once, for the
    built-in losses (the mean over the batch, or ``sum w_i l_i / sum w_i`` with weights, as
    ``fit`` and :func:`weighted` compute it); None for any other loss (evaluated under vmap)."""
    if loss_fn is F.cross_entropy:

        def per_sample(out: Tensor, y: Tensor) -> Tensor:
            k, b = out.shape[:2]  # class indices (K, B, ...) or soft targets shaped as out
            flat = F.cross_entropy(
                out.reshape(k * b, *out.shape[2:]), y.reshape(k * b, *y.shape[2:]), reduction="none"
            )
            return flat.reshape(k, b, -1).mean(2)

    elif loss_fn is F.mse_loss:

        def per_sample(out: Tensor, y: Tensor) -> Tensor:
            sq = F.mse_loss(out, y.reshape(out.shape), reduction="none")
            return sq.reshape(out.shape[0], out.shape[1], -1).mean(2)

    else:
        return None

    def batch_loss(out: Tensor, y: Tensor, w: Tensor | None) -> Tensor:
        per = per_sample(out, y)
        return per.mean(1) if w is None else (w * per).sum(1) / w.sum(1)

    return batch_loss


def weighted(loss_fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """The sample-weighted mean ``sum w_i l_i / sum w_i`` of a loss taking ``reduction``."""
    if loss_fn is F.mse_loss:
        return lambda out, y, w: (
            (w * F.mse_loss(out, y, reduction="none").reshape(len(w), -1).mean(1)).sum() / w.sum()
        )
    return lambda out, y, w: (w * loss_fn(out, y, reduction="none")).sum() / w.sum()
