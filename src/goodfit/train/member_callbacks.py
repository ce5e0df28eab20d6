"""Callbacks that :func:`~goodfit.train.fit_many.fit_many` runs once per member.

A callback class that sets ``per_member_layer_norms = True`` (goodfit's
``GradientFlowCallback``) is copied for every member of a vectorized group. Each copy sees its
member as its ``trainer``: the member's own module as ``model`` (for the layer names; its weights
are not kept current during training), the group's ``step`` and ``epoch``, and a ``log`` into
that member's epoch record. After each backward pass the copy receives, through
``record_norms(step, norms)``, the norms its member's layers would have in a ``fit`` run: the
square root of the sum, over a layer's parameters, of each parameter's squared norm, computed on
the member's slice of the stacked gradients, for all members at once. The layers are the
callback's own (``parameter_layers(model)``: lists of parameter names). A member that early
stopping has frozen gets nothing more, as its ``fit`` run would have ended.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from goodfit.hooks import Callback

__all__ = ["GroupClock", "MemberCallbacks", "is_member_callback"]


def is_member_callback(cb: Callback) -> bool:
    """Whether ``fit_many`` runs ``cb`` once per member (see the module docstring)."""
    return bool(getattr(cb, "per_member_layer_norms", False))


class GroupClock:
    """A member's view of its group's clock: the group's ``step`` and ``epoch``."""

    group: Any

    @property
    def step(self) -> int:
        return self.group.step

    @property
    def epoch(self) -> int:
        return self.group.epoch


class _MemberTrainer(GroupClock):
    """What one member's callback copy sees as ``trainer``."""

    def __init__(self, group: Any, model: nn.Module) -> None:
        self.group, self.model = group, model
        self.logs: dict[str, Any] = {}

    def log(self, key: str, value: Any) -> None:
        self.logs[key] = value


class MemberCallbacks:
    """The per-member copies of a group's member callbacks, their trainers and layer norms."""

    def __init__(self, callbacks: Sequence[Callback], group: Any, models: Sequence[nn.Module]):
        per = [cb for cb in callbacks if is_member_callback(cb)]
        self.copies = [[copy.deepcopy(cb) for cb in per] for _ in models]
        self.layers = [cb.parameter_layers(models[0]) for cb in per]
        self.trainers = [_MemberTrainer(group, m) for m in models]

    def __bool__(self) -> bool:
        return bool(self.layers)

    def call(self, hook: str, active: Sequence[bool]) -> None:
        """``hook`` of every active member's copies."""
        for k, on in enumerate(active):
            if on:
                for cb in self.copies[k]:
                    getattr(cb, hook)(self.trainers[k])

    @torch.no_grad()
    def after_backward(self, step: int, params: dict[str, Tensor], active: Sequence[bool]) -> None:
        """Each active member's layer norms at ``step`` from the stacked gradients ``params``
        (name -> stacked parameter), handed to its copies that sample this step."""
        k_all = len(self.copies)
        for j, layers in enumerate(self.layers):
            want = [k for k in range(k_all) if active[k] and self.copies[k][j].samples(step)]
            if not want:
                continue
            norms = _layer_norms(params, layers, k_all)
            for k in want:
                self.copies[k][j].record_norms(step, norms[k])

    def pop_logs(self, k: int) -> dict[str, Any]:
        logs, self.trainers[k].logs = self.trainers[k].logs, {}
        return logs


def _layer_norms(params: dict[str, Tensor], layers: list[list[str]], k: int) -> Tensor:
    """(K, L) float32: per member and layer, ``sqrt(sum_p ||grad_p||^2)`` over the layer's
    parameters with a gradient (each parameter's norm taken in its own dtype and then squared
    in float32, as ``GradientFlowCallback`` does with ``torch._foreach_norm`` for ``fit``)."""
    grads, index = [], []
    for i, names in enumerate(layers):
        for n in names:
            if params[n].grad is not None:
                grads.append(params[n].grad.reshape(k, -1))
                index.append(i)
    out = torch.zeros(len(layers), k)
    if grads:
        sq = torch.stack([torch.linalg.vector_norm(g, dim=1) for g in grads]).float().square()
        out = out.to(sq.device).index_add_(0, torch.tensor(index, device=sq.device), sq)
    return out.sqrt_().T
