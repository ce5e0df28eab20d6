r"""Penalties as priors, the MAP view (seed 000 §1.1.3 note): L2 is a Gaussian prior on the
weights and L1 a Laplace prior, :math:`L_{MAP} = L - \log P(W)`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from goodfit.checks import check_choice, check_int, check_real
from goodfit.regularize.penalties import Penalty, l1, l2

__all__ = ["from_prior", "prior_coefficient"]


def prior_coefficient(kind: str, scale: float, n_data: int = 1) -> float:
    r"""The L2/L1 coefficient of a MAP prior (seed 000 §1.1.3 note: L2 <-> Gaussian prior,
    L1 <-> Laplace prior; :math:`L_{MAP} = L - \log P(W)`).

    * ``"gaussian"``, :math:`w\sim N(0,\sigma^2)`: :math:`-\log p(w) = \frac{w^2}{2\sigma^2}+C`,
      so the penalty is ``l2(alpha)`` (:math:`\frac{\alpha}{2}\|w\|^2`) with
      :math:`\alpha = 1/(\sigma^2 N)`.
    * ``"laplace"``, :math:`p(w)=\frac{1}{2b}e^{-|w|/b}`: :math:`-\log p(w) = |w|/b + C`, so the
      penalty is ``l1(lam)`` with :math:`\lambda = 1/(b N)`.

    ``N = n_data`` rescales the prior to a data loss that is a *mean* over N examples (the MAP
    objective divided by N); use ``n_data=1`` when the data loss is a sum.
    """
    check_choice("prior kind", kind, ("gaussian", "laplace"))
    scale = check_real("prior scale", scale, low=0.0, low_open=True)
    n_data = check_int("n_data", n_data, low=1)
    if kind == "gaussian":
        return 1.0 / (scale**2 * n_data)
    return 1.0 / (scale * n_data)


def from_prior(
    kind: str,
    scale: float,
    *,
    n_data: int = 1,
    exclude: str | Sequence[str] = (),
    include_bias_and_norm: bool = False,
    model: nn.Module | None = None,
) -> Penalty:
    r"""The penalty equal to :math:`-\log P(W)` (up to a constant, divided by ``n_data``) for a
    zero-mean ``"gaussian"`` (std ``scale``) or ``"laplace"`` (scale ``b``) prior on every
    selected weight: ``l2(1/(scale**2 n_data))`` or ``l1(1/(scale n_data))``; see
    :func:`prior_coefficient` (seed 000 §1.1.3, MAP view)."""
    c = prior_coefficient(kind, scale, n_data)
    sel = {"exclude": exclude, "include_bias_and_norm": include_bias_and_norm, "model": model}
    return l2(c, **sel) if kind == "gaussian" else l1(c, **sel)
