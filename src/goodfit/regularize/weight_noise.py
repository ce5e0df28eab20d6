"""Noise on the weights in each training forward pass, none at evaluation.

Graves (2011, *Practical variational inference for neural networks*) and seed 000 (the
co-adaptation remedies: "add shuffled weights or inputs of layer (with some coefficient) to your
data or weights"). A :class:`WeightNoise` is a ``torch.nn.utils.parametrize`` parametrization of
a layer's ``weight``: the stored parameter ``W`` is unchanged, the layer computes with

- ``additive``:       ``W + sigma * eps``,                 ``eps ~ N(0, 1)`` elementwise;
- ``multiplicative``: ``W * (1 + sigma * eps)``;
- ``shuffled``:       ``W + sigma * P(W)``, ``P`` a fresh random permutation of ``W``'s entries
  (seed 000's "shuffled weights with some coefficient"; ``P(W)`` is treated as noise: no
  gradient flows through the permuted copy);

drawn afresh at every forward pass in training mode; in eval mode the layer computes with ``W``
itself. Gradients flow to ``W`` through the noisy weight (``d(W + sigma eps)/dW = I``). The
parametrization is a submodule, so ``model.train()`` / ``model.eval()`` switch it. Noise is drawn
from the global torch RNG (seeded by the trainer, saved in checkpoints).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from goodfit.checks import check_real

__all__ = ["KINDS", "WeightNoise", "add_weight_noise"]

KINDS = ("additive", "multiplicative", "shuffled")
#: Layer types noised by default: the layers with a ``weight`` matrix / kernel.
DEFAULT_TYPES = ("Linear", "Conv1d", "Conv2d", "Conv3d")


class WeightNoise(nn.Module):
    """The parametrization ``W -> noisy(W)`` (training) / ``W`` (eval); see the module doc."""

    def __init__(self, sigma: float, kind: str = "additive") -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"weight noise kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.sigma = check_real("weight noise sigma", sigma, low=0.0)
        self.kind = kind

    def forward(self, weight: Tensor) -> Tensor:
        if not self.training or self.sigma == 0.0:
            return weight
        if self.kind == "additive":
            return weight + self.sigma * torch.randn_like(weight)
        if self.kind == "multiplicative":
            return weight * (1.0 + self.sigma * torch.randn_like(weight))
        perm = torch.randperm(weight.numel(), device=weight.device)
        return weight + self.sigma * weight.detach().reshape(-1)[perm].reshape(weight.shape)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, kind={self.kind!r}"


def add_weight_noise(
    model: nn.Module,
    sigma: float,
    kind: str = "additive",
    *,
    types: Sequence[str] = DEFAULT_TYPES,
) -> list[str]:
    """Register a :class:`WeightNoise` on the ``weight`` of every submodule whose class name is
    in ``types``; returns the names of the noised modules (``ValueError`` if none match)."""
    noise = WeightNoise(sigma, kind)  # validates before anything is registered
    wanted = set(types)
    names = [
        name
        for name, module in model.named_modules()
        if type(module).__name__ in wanted and isinstance(getattr(module, "weight", None), Tensor)
    ]
    if not names:
        present = sorted({type(m).__name__ for m in model.modules()})
        raise ValueError(
            f"weight noise types {sorted(wanted)} match no layer of the model; its layer types: "
            f"{', '.join(present)}"
        )
    for name in names:
        module = model.get_submodule(name)
        parametrize.register_parametrization(module, "weight", WeightNoise(noise.sigma, kind))
    return names
