"""The order in which an epoch visits the training samples: the loop's one seam for samplers.

Seed 003's minibatch SGD draws a fresh random permutation every epoch; that is
:class:`RandomOrder`, the default. Other orders (a curriculum's admitted easiest fraction, a
class-balanced draw, one rank's share under data parallelism) implement the same
:class:`EpochSampler` protocol, so the loop itself never changes: each epoch it asks the sampler
for the indices to visit (any length >= 1, repeats allowed) and splits them into minibatches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch

if TYPE_CHECKING:
    from goodfit.train.loop import Trainer

__all__ = ["EpochSampler", "RandomOrder"]


@runtime_checkable
class EpochSampler(Protocol):
    """What :func:`goodfit.fit` accepts as ``sampler``.

    ``epoch_indices(trainer, n, generator)`` returns a 1-D int64 CPU tensor of indices into the
    ``n`` training samples for the epoch ``trainer.epoch`` (0-based). Draw randomness only from
    ``generator`` (the loop's seeded generator, saved in checkpoints), so a run is reproducible and
    resumes bit-for-bit. A sampler with state of its own (scores, say) also defines
    ``state_dict()`` / ``load_state_dict(state)``; the loop saves it in the checkpoint.
    """

    def epoch_indices(
        self, trainer: Trainer, n: int, generator: torch.Generator
    ) -> torch.Tensor: ...


class RandomOrder:
    """A fresh uniform random permutation of all ``n`` samples every epoch (seed 003)."""

    def epoch_indices(self, trainer: Any, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randperm(n, generator=generator)

    def __repr__(self) -> str:
        return "RandomOrder()"
