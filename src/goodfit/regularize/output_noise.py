"""Noise on the outputs (targets): seed 001, "Regularization – Others": *Noise Robustness
(adding noise to input/output)*.

- :class:`LabelSmoothingLoss` — torch's own ``F.cross_entropy(..., label_smoothing=eps)``
  (Szegedy et al. 2016: the target is ``(1 - eps) e_y + eps / K``) while training; evaluation
  (no autograd, as :func:`goodfit.train.loop.evaluate` runs) reports the plain cross-entropy, so
  ``val_loss`` stays comparable with an unsmoothed run and early stopping watches the same
  quantity.
- :class:`SoftTargetNoise` — a batch transform: each training target becomes
  ``(1 - alpha) e_y + alpha u`` with ``u ~ Dirichlet(1, ..., 1)`` drawn afresh per sample and
  step (a random point of the probability simplex; ``E[u] = 1/K``, so in expectation it is
  label smoothing with ``eps = alpha``). Cross-entropy takes the soft ``(N, K)`` targets.
- :class:`TargetNoise` — a batch transform for regression: ``y + sigma * N(0, 1)`` per target
  entry, in the targets' own units (GBC 7.5, noise injection at the output).

The transforms draw from the global torch RNG (seeded by the trainer and saved in its
checkpoints), like the augmentation ops, and act on training batches only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from goodfit.checks import check_probability, check_real

__all__ = ["LabelSmoothingLoss", "SoftTargetNoise", "TargetNoise"]


class LabelSmoothingLoss:
    """Cross-entropy with ``label_smoothing`` while gradients are recorded (training), plain
    cross-entropy otherwise (evaluation), both with the optional per-class ``weight`` (torch's
    ``cross_entropy(weight=...)``). Takes class indices or soft ``(N, K)`` targets."""

    def __init__(self, label_smoothing: float, weight: Tensor | None = None) -> None:
        self.label_smoothing = check_probability("label_smoothing", label_smoothing)
        self.weight = weight

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        eps = self.label_smoothing if torch.is_grad_enabled() else 0.0
        weight = None if self.weight is None else self.weight.to(output.device)
        return F.cross_entropy(output, target, weight=weight, label_smoothing=eps)

    def __repr__(self) -> str:
        extra = "" if self.weight is None else f", weight={self.weight.tolist()}"
        return f"LabelSmoothingLoss(label_smoothing={self.label_smoothing}{extra})"


class SoftTargetNoise:
    """``(x, y) -> (x, (1 - alpha) onehot(y) + alpha u)``, ``u ~ Dirichlet(1_K)`` per sample.

    ``y`` may already be soft ``(N, K)`` (mixup, cutmix): the noise mixes into it the same way.
    """

    def __init__(self, alpha: float, num_classes: int) -> None:
        self.alpha = check_probability("soft_target_noise", alpha)
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        self.num_classes = num_classes

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if self.alpha == 0.0:
            return x, y
        soft = y if y.ndim > 1 else F.one_hot(y, self.num_classes).to(x.dtype)
        concentration = torch.ones(self.num_classes, device=x.device, dtype=soft.dtype)
        u = torch.distributions.Dirichlet(concentration).sample((len(y),))
        return x, (1.0 - self.alpha) * soft + self.alpha * u

    def __repr__(self) -> str:
        return f"SoftTargetNoise(alpha={self.alpha}, num_classes={self.num_classes})"


class TargetNoise:
    """``(x, y) -> (x, y + sigma * N(0, 1))`` for floating (regression) targets."""

    def __init__(self, sigma: float) -> None:
        self.sigma = check_real("target_noise", sigma, low=0.0)

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if not torch.is_floating_point(y):
            raise TypeError("target_noise needs floating (regression) targets; got class indices")
        if self.sigma == 0.0:
            return x, y
        return x, y + self.sigma * torch.randn_like(y)

    def __repr__(self) -> str:
        return f"TargetNoise(sigma={self.sigma})"
