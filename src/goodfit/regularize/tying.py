r"""Parameter tying and sharing (GBC §7.9, seed 001 "Regularization - Others").

*Tying* keeps two models' parameters close with the penalty
:math:`\Omega(w^{(A)}, w^{(B)}) = \|w^{(A)} - w^{(B)}\|_2^2`; *sharing* forces them to be equal
by making both modules use the same :class:`torch.nn.Parameter` objects.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from goodfit.regularize.norms import sum_pow_norms
from goodfit.regularize.penalties import BasePenalty, Coef, check_coef, eval_coef

__all__ = ["TyingPenalty", "share_parameters", "tying_penalty"]


def _matching(module_a: nn.Module, module_b: nn.Module) -> list[tuple[str, Tensor, Tensor]]:
    pa = dict(module_a.named_parameters(remove_duplicate=False))
    pb = dict(module_b.named_parameters(remove_duplicate=False))
    if pa.keys() != pb.keys():
        only_a = sorted(pa.keys() - pb.keys())
        only_b = sorted(pb.keys() - pa.keys())
        raise ValueError(
            f"modules do not have matching parameters: only in A {only_a}, only in B {only_b}"
        )
    if not pa:
        raise ValueError("modules have no parameters to tie or share")
    out = []
    for name, a in pa.items():
        b = pb[name]
        if a.shape != b.shape:
            raise ValueError(
                f"parameter {name!r} has shape {tuple(a.shape)} in A but {tuple(b.shape)} in B"
            )
        out.append((name, a, b))
    return out


class TyingPenalty(BasePenalty):
    r""":math:`\Omega = \lambda \sum_k \|w^{(A)}_k - w^{(B)}_k\|_2^2` over the parameters with the
    same name in two modules (GBC §7.9 parameter tying, seed 001). ``coef`` may be a callable of
    the step. The ``model`` argument of ``__call__`` is ignored: the modules are bound."""

    def __init__(self, module_a: nn.Module, module_b: nn.Module, coef: Coef = 1.0) -> None:
        self.coef = check_coef("tying coef", coef)
        pairs = _matching(module_a, module_b)
        self.names = [n for n, _, _ in pairs]
        self._a = [a for _, a, _ in pairs]
        self._b = [b for _, _, b in pairs]

    def __call__(self, model: nn.Module | None = None) -> Tensor:
        c = eval_coef(self.coef, self._step, "tying")
        diffs = torch._foreach_sub(self._a, self._b)
        return sum_pow_norms(diffs, 2.0) * c

    def __repr__(self) -> str:
        return f"TyingPenalty(coef={self.coef!r}, parameters={self.names})"


def tying_penalty(module_a: nn.Module, module_b: nn.Module, coef: Coef = 1.0) -> TyingPenalty:
    """Parameter-tying penalty ``coef * ||w(A) - w(B)||_2^2`` (GBC §7.9, seed 001).

    Parameters are matched by name; a missing name or a shape mismatch raises ValueError.

    Examples
    --------
    >>> a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    >>> pen = tying_penalty(a, b, coef=0.1)
    >>> bool(pen(None) >= 0)
    True
    """
    return TyingPenalty(module_a, module_b, coef)


def share_parameters(module_a: nn.Module, module_b: nn.Module) -> nn.Module:
    """Make ``module_b`` use ``module_a``'s parameters (GBC §7.9 parameter sharing).

    Every parameter of ``module_b`` is replaced by the same-named :class:`~torch.nn.Parameter`
    of ``module_a`` (names and shapes must match, else ValueError), so both compute with one
    tensor and its gradient sums both uses; ``model.parameters()`` lists it once. Returns
    ``module_b``. Do it before creating the optimizer.
    """
    pairs = _matching(module_a, module_b)
    for name, a, _ in pairs:
        owner_name, _, leaf = name.rpartition(".")
        owner = module_b.get_submodule(owner_name) if owner_name else module_b
        setattr(owner, leaf, a)
    return module_b
