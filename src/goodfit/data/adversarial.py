"""Adversarial noise (seed 000, "Neural-based transformations: Adversarial noise"): FGSM and PGD
examples, adversarial training as a batch transform, and robust accuracy.

- FGSM (Goodfellow, Shlens & Szegedy 2015, eq. 3): ``x' = clip(x + eps * sign(grad_x L(f(x), y)))``.
- PGD (Madry et al. 2018, eq. 2): from ``x + U(-eps, eps)`` (random start), ``steps`` times
  ``x <- Proj_{B_inf(x0, eps)}(x + alpha * sign(grad_x L))``, then clipped to the data range.
- :class:`AdversarialTraining` replaces a share ``ratio`` of each training batch with its
  adversarial examples (Kurakin, Goodfellow & Bengio 2017, *Adversarial machine learning at
  scale*: k of the m examples of a minibatch replaced); ``ratio = 0.5`` is Goodfellow et al.'s
  equal weighting of the clean and the adversarial objective.

Scale. ``eps`` (and ``alpha``) may be a number or a tensor broadcasting against one sample, and
the range ``lower``/``upper`` likewise: to attack standardized inputs ``z = (x - mu) / sigma`` with
a budget ``eps`` in the data's own units, pass ``eps / sigma`` and ``(lo - mu) / sigma``,
``(hi - mu) / sigma`` (:func:`in_standardized_units`), so the attack is the same one as on the
raw data. Examples are built with the model in eval mode (no dropout, no batch-norm statistics
updated, no weight noise); only ``grad_x`` is computed, parameter gradients are left untouched.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from goodfit.checks import check_int, check_probability

__all__ = [
    "METHODS",
    "AdversarialTraining",
    "fgsm",
    "in_standardized_units",
    "pgd",
    "robust_accuracy",
]

METHODS = ("fgsm", "pgd")
Bound = float | Tensor | None
LossFn = Callable[[Tensor, Tensor], Tensor]


def in_standardized_units(
    eps: float, lower: float | None, upper: float | None, mean: Tensor, std: Tensor
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """A budget ``eps`` and a range ``[lower, upper]`` in the data's units, expressed for inputs
    standardized as ``(x - mean) / std`` (``mean``/``std`` shaped ``(1, ...)`` like
    :class:`goodfit.data.standardize.Standardizer`): ``eps / std``, ``(lower - mean) / std``..."""
    mean, std = mean[0], std[0]
    lo = (lower - mean) / std if lower is not None else None
    hi = (upper - mean) / std if upper is not None else None
    return eps / std, lo, hi


def _clip(x: Tensor, lower: Bound, upper: Bound) -> Tensor:
    if lower is None and upper is None:
        return x
    lo = torch.as_tensor(lower, dtype=x.dtype, device=x.device) if lower is not None else None
    hi = torch.as_tensor(upper, dtype=x.dtype, device=x.device) if upper is not None else None
    return torch.clamp(x, lo, hi)


def _as(value: float | Tensor, x: Tensor) -> Tensor:
    return torch.as_tensor(value, dtype=x.dtype, device=x.device)


def _input_grad(model: nn.Module, x: Tensor, y: Tensor, loss_fn: LossFn) -> Tensor:
    """``grad_x L(model(x), y)`` with the model in eval mode, parameter grads untouched."""
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(loss_fn(model(x), y), x)
    finally:
        model.train(was_training)
    return grad


def fgsm(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float | Tensor,
    *,
    lower: Bound = None,
    upper: Bound = None,
    loss_fn: LossFn = F.cross_entropy,
) -> Tensor:
    """Goodfellow et al. (2015): ``clip(x + eps * sign(grad_x L(model(x), y)), lower, upper)``."""
    grad = _input_grad(model, x, y, loss_fn)
    return _clip(x.detach() + _as(eps, x) * grad.sign(), lower, upper).detach()


def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float | Tensor,
    *,
    steps: int = 10,
    alpha: float | Tensor | None = None,
    random_start: bool = True,
    lower: Bound = None,
    upper: Bound = None,
    loss_fn: LossFn = F.cross_entropy,
) -> Tensor:
    """Madry et al. (2018): ``steps`` signed-gradient steps of size ``alpha`` (default
    ``2.5 * eps / steps``, their choice), each projected onto the L-inf ``eps``-ball around ``x``
    and clipped to ``[lower, upper]``; from a uniform random point of the ball with
    ``random_start`` (drawn from the global torch RNG)."""
    check_int("pgd steps", steps, low=1)
    x0 = x.detach()
    eps_t = _as(eps, x0)
    alpha_t = _as(alpha, x0) if alpha is not None else 2.5 * eps_t / steps
    adv = x0
    if random_start:
        adv = _clip(x0 + (2.0 * torch.rand_like(x0) - 1.0) * eps_t, lower, upper)
    for _ in range(steps):
        grad = _input_grad(model, adv, y, loss_fn)
        adv = adv + alpha_t * grad.sign()
        adv = torch.minimum(torch.maximum(adv, x0 - eps_t), x0 + eps_t)
        adv = _clip(adv, lower, upper)
    return adv.detach()


def _attack(method: str) -> Callable[..., Tensor]:
    if method not in METHODS:
        raise ValueError(f"adversarial method must be one of {', '.join(METHODS)}, got {method!r}")
    return fgsm if method == "fgsm" else pgd


class AdversarialTraining:
    """A batch transform ``(x, y) -> (x', y)``: the first ``round(ratio * len(x))`` rows of the
    (already shuffled) batch replaced by their FGSM or PGD examples against ``model``."""

    def __init__(
        self,
        model: nn.Module,
        method: str,
        eps: float | Tensor,
        *,
        ratio: float = 0.5,
        steps: int = 10,
        alpha: float | Tensor | None = None,
        lower: Bound = None,
        upper: Bound = None,
    ) -> None:
        self.attack = _attack(method)
        self.model, self.method, self.eps = model, method, eps
        self.ratio = check_probability("adversarial ratio", ratio)
        self.options: dict = {"lower": lower, "upper": upper}
        if method == "pgd":
            self.options.update(steps=check_int("adversarial steps", steps, low=1), alpha=alpha)

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        k = round(self.ratio * len(x))
        if k == 0:
            return x, y
        adv = self.attack(self.model, x[:k], y[:k], self.eps, **self.options)
        return torch.cat([adv, x[k:]]), y

    def __repr__(self) -> str:
        return f"AdversarialTraining(method={self.method!r}, eps={self.eps}, ratio={self.ratio})"


def robust_accuracy(
    model: nn.Module,
    X: Tensor,
    y: Tensor,
    method: str,
    eps: float | Tensor,
    *,
    batch_size: int = 512,
    **options: object,
) -> float:
    """Accuracy of ``model`` (eval mode) on the ``method`` examples of ``(X, y)`` at ``eps``."""
    attack = _attack(method)
    first = next(model.parameters(), None)
    device = X.device if first is None else first.device
    was_training = model.training
    model.eval()
    correct = 0
    try:
        for start in range(0, len(X), batch_size):
            xb, yb = X[start : start + batch_size].to(device), y[start : start + batch_size]
            yb = yb.to(device)
            adv = attack(model, xb, yb, _to(eps, device), **_on(options, device))
            with torch.no_grad():
                correct += int((model(adv).argmax(dim=1) == yb).sum())
    finally:
        model.train(was_training)
    return correct / max(len(X), 1)


def _to(value: object, device: torch.device) -> object:
    return value.to(device) if isinstance(value, Tensor) else value


def _on(options: dict, device: torch.device) -> dict:
    return {k: _to(v, device) for k, v in options.items()}
