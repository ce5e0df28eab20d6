"""The augmentation op protocol: the :class:`Augmentation` base class, :class:`DimDispatch`
(one name for an image op and a signal op), the per-sample mask and the range check.

Randomness
----------
Every op draws from the **global torch RNG** (of the data's device), exactly as kornia does, so a
run is reproducible from ``torch.manual_seed(seed)``; the trainer seeds that RNG and saves/restores
its state in checkpoints. Parameters are drawn per sample; an op with probability ``p`` is applied
to each sample independently with probability ``p``, and an op with ``p == 0`` is skipped without
touching the batch or the RNG (exact identity).

Messages name the op and the key (``"rotate: degrees must be ..."``); the checks are
:mod:`goodfit.checks`, plus :func:`check_range` for the scalar-or-pair ranges.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from goodfit.checks import check_probability, check_real

__all__ = ["Augmentation", "DimDispatch", "check_range", "sample_mask"]


def check_range(
    op: str,
    key: str,
    value: float | Sequence[float],
    *,
    center: float | None = None,
    low: float | None = None,
    high: float | None = None,
) -> tuple[float, float]:
    """Normalise a scalar-or-pair hyperparameter to a ``(lo, hi)`` range and validate it.

    A scalar ``v`` means ``(center - v, center + v)`` when ``center`` is given (then ``v`` must be
    >= 0, e.g. ``degrees = 10`` -> (-10, 10)); a pair is taken as it is. ``lo <= hi`` and the
    optional bounds ``low <= lo``, ``hi <= high`` are enforced.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if center is None:
            rng = (float(value), float(value))
        else:
            v = check_real(f"{op}: {key}", value, low=0.0)
            rng = (center - v, center + v)
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        try:
            rng = (float(value[0]), float(value[1]))
        except (TypeError, ValueError):
            raise ValueError(
                f"{op}: {key} must be a number or a pair of numbers, got {value!r}"
            ) from None
    else:
        raise ValueError(f"{op}: {key} must be a number or a pair [lo, hi], got {value!r}")
    if not all(math.isfinite(b) for b in rng) or rng[0] > rng[1]:
        raise ValueError(f"{op}: {key} must be a finite range with lo <= hi, got {value!r}")
    if low is not None and rng[0] < low:
        raise ValueError(f"{op}: {key} must be >= {low}, got {value!r}")
    if high is not None and rng[1] > high:
        raise ValueError(f"{op}: {key} must be <= {high}, got {value!r}")
    return rng


def sample_mask(n: int, p: float, device: torch.device) -> Tensor:
    """Per-sample Bernoulli(p) mask of shape (n,) drawn from the global RNG of ``device``."""
    if p >= 1.0:
        return torch.ones(n, dtype=torch.bool, device=device)
    return torch.rand(n, device=device) < p


class Augmentation:
    """One random augmentation applied to a batch.

    Subclasses set ``dims`` (the spatial dimensionalities they accept: 2 for images
    (N, C, H, W), 1 for signals (N, C, L)) and implement :meth:`apply`. Blending ops
    (``blends = True``) take and return ``(x, y_soft)`` instead of ``x``.

    Parameters
    ----------
    p : float
        Probability, in [0, 1], that a sample is augmented; ``p = 0`` is an exact identity.
    """

    name: str = "augmentation"
    dims: tuple[int, ...] = (2,)
    blends: bool = False

    def __init__(self, p: float = 1.0) -> None:
        self.p = check_probability(f"{self.name}: p", p)

    def check_input(self, x: Tensor) -> None:
        """Raise ValueError unless ``x`` has a layout this op supports."""
        sd = x.ndim - 2
        if sd not in self.dims:
            want = " or ".join(
                {2: "images (N, C, H, W)", 1: "signals (N, C, L)"}[d] for d in self.dims
            )
            raise ValueError(
                f"augmentation {self.name!r} works on {want}, "
                f"got a tensor of shape {tuple(x.shape)}"
            )

    def apply(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x: Tensor) -> Tensor:
        self.check_input(x)
        if self.p == 0.0 or x.shape[0] == 0:
            return x
        return self.apply(x)

    def drawable(self, x: Tensor) -> bool:
        """Whether all of the op's randomness for ``x`` is drawn before it touches the data
        (:meth:`draw`), so that parts of one batch can take their draws from different RNG
        states and be transformed at once (:meth:`apply_drawn`), as ``fit_many`` does for its
        members. False unless a subclass says otherwise."""
        return False

    def draw(self, x: Tensor) -> Any:
        """The random parameters that ``self(x)`` would draw, drawn as it draws them."""
        raise NotImplementedError(f"augmentation {self.name!r} does not draw apart")

    def apply_drawn(self, x: Tensor, parts: list[Any]) -> Tensor:
        """``x`` (the parts' batches one after another, equal sizes) transformed with each
        part's drawn parameters: ``cat([self(x_k) for k])`` where part ``k``'s RNG state drew
        ``parts[k]``."""
        raise NotImplementedError(f"augmentation {self.name!r} does not draw apart")

    def _params(self) -> dict[str, Any]:
        return {"p": self.p}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"


class DimDispatch(Augmentation):
    """One registry name for an op that exists for images and for signals: picks the
    implementation by the input's layout (``{2: image_op, 1: signal_op}``)."""

    def __init__(self, name: str, ops: dict[int, Augmentation], p: float) -> None:
        self.name = name
        self.dims = tuple(sorted(ops, reverse=True))
        self.ops = ops
        super().__init__(p)

    def apply(self, x: Tensor) -> Tensor:
        return self.ops[x.ndim - 2](x)

    def drawable(self, x: Tensor) -> bool:
        return self.ops[x.ndim - 2].drawable(x)

    def draw(self, x: Tensor) -> Any:
        return self.ops[x.ndim - 2].draw(x)

    def apply_drawn(self, x: Tensor, parts: list[Any]) -> Tensor:
        return self.ops[x.ndim - 2].apply_drawn(x, parts)

    def __repr__(self) -> str:
        return repr(self.ops[max(self.ops)])
