"""Box bounds ``lower <= x <= upper`` for the least-squares solvers, by transformation.

The solver works on unconstrained internal parameters ``u`` and the model sees ``x = t(u)``,
always inside the box (MINUIT's transformations, as ``lmfit`` uses them; F. James,
*MINUIT Reference Manual*, CERN D506, §1.3):

* both bounds finite: ``x = lower + (upper - lower) (sin u + 1) / 2``;
* lower only: ``x = lower - 1 + sqrt(u^2 + 1)``;
* upper only: ``x = upper + 1 - sqrt(u^2 + 1)``;
* neither: ``x = u``.

Every iterate is feasible by construction (no projection step, no active set), and the
Jacobian of ``r(t(u))`` comes from the same ``torch.func`` (or finite-difference) machinery.
The price: ``dx/du = 0`` on a bound, so a solution *on* a bound is approached linearly rather
than quadratically, and the tolerances (``xtol``, ``gtol``) are tested in ``u``. scipy's
``least_squares(method="trf")`` handles bounds with a reflective trust region instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["BoxTransform"]


def _bound(value: float | Sequence[float] | Tensor | None, x0: Tensor, fill: float) -> Tensor:
    if value is None:
        return torch.full_like(x0, fill)
    b = torch.as_tensor(value, dtype=x0.dtype, device=x0.device)
    if b.ndim == 0:
        b = b.expand_as(x0)
    if b.shape != x0.shape:
        raise ValueError(
            f"bounds: each bound must be a scalar or have the parameters' shape "
            f"{tuple(x0.shape)}, got shape {tuple(b.shape)}"
        )
    if bool(torch.isnan(b).any()):
        raise ValueError("bounds: a bound is NaN; use -inf/inf for no bound")
    return b.clone()


class BoxTransform:
    """``x = t(u)`` mapping unconstrained ``u`` into ``[lower, upper]`` (see the module)."""

    def __init__(self, lower: Tensor, upper: Tensor):
        self.lower, self.upper = lower, upper
        self.has_lo, self.has_hi = torch.isfinite(lower), torch.isfinite(upper)
        # finite stand-ins where a bound is infinite, so no branch computes inf or NaN
        self._lo = torch.where(self.has_lo, lower, torch.zeros_like(lower))
        self._hi = torch.where(self.has_hi, upper, torch.ones_like(upper))
        self._width = torch.where(self.has_lo & self.has_hi, self._hi - self._lo, 1.0)

    @classmethod
    def from_bounds(cls, bounds: tuple[object, object], x0: Tensor) -> BoxTransform:
        """Check ``bounds = (lower, upper)`` (scalars or length-``n``; ``None`` or inf for
        none) and that ``x0`` lies inside."""
        if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
            raise ValueError(f"bounds must be a pair (lower, upper), got {bounds!r}")
        lower = _bound(bounds[0], x0, -torch.inf)  # type: ignore[arg-type]
        upper = _bound(bounds[1], x0, torch.inf)  # type: ignore[arg-type]
        if bool((lower >= upper).any()):
            bad = (lower >= upper).nonzero().flatten().tolist()
            raise ValueError(f"bounds: lower must be < upper, not so for parameters {bad[:10]}")
        if bool(((x0 < lower) | (x0 > upper)).any()):
            bad = ((x0 < lower) | (x0 > upper)).nonzero().flatten().tolist()
            raise ValueError(f"bounds: x0 lies outside the bounds for parameters {bad[:10]}")
        return cls(lower, upper)

    def to_external(self, u: Tensor) -> Tensor:
        """``x = t(u)``."""
        both = self._lo + self._width * (torch.sin(u) + 1.0) / 2.0
        root = torch.sqrt(u * u + 1.0)
        lo_only = self._lo - 1.0 + root
        hi_only = self._hi + 1.0 - root
        x = torch.where(self.has_lo, torch.where(self.has_hi, both, lo_only), u)
        return torch.where(~self.has_lo & self.has_hi, hi_only, x)

    def to_internal(self, x: Tensor) -> Tensor:
        """``u = t^{-1}(x)`` for ``x`` inside the box. A start *on* a bound, where
        ``dx/du = 0`` would freeze the parameter, is first moved inside by ``sqrt(eps)``
        times the width (both bounds) or ``sqrt(eps) max(1, |bound|)`` (one bound)."""
        root_eps = torch.finfo(x.dtype).eps ** 0.5
        both_finite = self.has_lo & self.has_hi
        h_lo = torch.where(both_finite, self._width, self._lo.abs().clamp_min(1.0)) * root_eps
        h_hi = torch.where(both_finite, self._width, self._hi.abs().clamp_min(1.0)) * root_eps
        x = torch.where(self.has_lo & (x <= self._lo), self._lo + h_lo, x)
        x = torch.where(self.has_hi & (x >= self._hi), self._hi - h_hi, x)
        s = (2.0 * (x - self._lo) / self._width - 1.0).clamp(-1.0, 1.0)
        both = torch.asin(s)
        lo_only = torch.sqrt(((x - self._lo + 1.0) ** 2 - 1.0).clamp_min(0.0))
        hi_only = torch.sqrt(((self._hi - x + 1.0) ** 2 - 1.0).clamp_min(0.0))
        u = torch.where(self.has_lo, torch.where(self.has_hi, both, lo_only), x)
        return torch.where(~self.has_lo & self.has_hi, hi_only, u)

    def wrap(self, residuals: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
        """``u -> residuals(t(u))``."""

        def inner(u: Tensor) -> Tensor:
            return residuals(self.to_external(u))

        return inner
