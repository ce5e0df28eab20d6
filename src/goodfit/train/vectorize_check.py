"""What keeps a group of models from training as one :func:`goodfit.train.fit_many` pass.

The members must share their architecture and their number of batches per epoch (sizes may
differ: a batch of different sizes runs per size); the optimizer must be
element-wise (each listed ``torch.optim`` rule, or a goodfit chain whose transforms are all
element-wise), so that one step on the stacked tensors is K independent steps; a penalty needs
a per-member form, an augmentation must be an ``AugmentPipeline`` on the CPU; callbacks other
than early stopping, learning-rate schedules and per-member callbacks (gradient flow,
:mod:`goodfit.train.member_callbacks`) are per model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from goodfit.data.augment import AugmentPipeline
from goodfit.hooks import Callback
from goodfit.train.early_stopping import EarlyStopping
from goodfit.train.member_callbacks import is_member_callback
from goodfit.train.schedule_callbacks import ScheduleCallback
from goodfit.train.stacked import architecture_mismatch

__all__ = ["ELEMENTWISE", "batch_sizes", "vectorize_obstacle"]

#: The torch.optim rules whose step is element-wise (exact on stacked tensors).
ELEMENTWISE = (
    torch.optim.SGD,
    torch.optim.Adam,
    torch.optim.AdamW,
    torch.optim.Adamax,
    torch.optim.NAdam,
    torch.optim.RMSprop,
    torch.optim.Adagrad,
    torch.optim.Adadelta,
)


def batch_sizes(n: int, bs: int) -> tuple[int, ...]:
    """The minibatch sizes of one epoch over ``n`` samples, by the loop's rule (a lone last
    sample joins the previous batch)."""
    n_batches = math.ceil(n / bs)
    if n > bs and n % bs == 1:
        n_batches -= 1
    return tuple([bs] * (n_batches - 1) + [n - bs * (n_batches - 1)])


def vectorize_obstacle(
    models: Sequence[nn.Module],
    optimizer: torch.optim.Optimizer,
    callbacks: Sequence[Callback],
    sizes: Sequence[int],
    batch_size: int,
    *,
    penalty: Any = None,
    augment: Any = None,
    sampler: Any = None,
) -> str | None:
    """Why the group cannot train as one vectorized pass (see the module docstring), or None."""
    mismatch = architecture_mismatch(models)
    if mismatch:
        return mismatch
    if len({len(batch_sizes(n, batch_size)) for n in sizes}) > 1:
        return (
            f"the members' training sets ({sorted(set(sizes))} rows) make different numbers "
            f"of batches of {batch_size}"
        )
    if sampler is not None:
        return "a custom sampler is per model"
    if penalty is not None and not hasattr(penalty, "per_member"):
        return f"the penalty {type(penalty).__name__} has no per-member form"
    if augment is not None:
        if not isinstance(augment, AugmentPipeline):
            return f"the augmentation {type(augment).__name__} is not an AugmentPipeline"
        if next(models[0].parameters()).device.type != "cpu":
            return "an augmentation draws from the global RNG: vectorized on the CPU only"
    transform = getattr(optimizer, "transform", None)
    if transform is not None:
        if not transform.chunkable:
            return f"the optimizer's chain {transform!r} is not element-wise"
    elif type(optimizer) not in ELEMENTWISE:
        return f"{type(optimizer).__name__} is not an element-wise optimizer"
    for cb in callbacks:
        if not isinstance(cb, EarlyStopping | ScheduleCallback) and not (
            getattr(cb, "vectorizable", False) or is_member_callback(cb)
        ):
            return f"the callback {type(cb).__name__} is per model"
    return None
