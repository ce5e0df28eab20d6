"""K models of one architecture as one: parameters and buffers stacked along a leading member
axis, the forward pass ``vmap`` over ``torch.func.functional_call`` — or, for an
``nn.Sequential`` of the common layers (MLPs and plain CNNs), the same products written on the
stacked tensors without ``vmap``'s per-layer cost (:mod:`goodfit.train.stacked_sequential`;
measured: 8 bagged MLPs in 0.20 s instead of 0.32 s, ``benchmarks/ensemble.py``).

``torch.func.stack_module_state`` gives the stacked tensors; a *shell* (a copy of the first
model whose parameters are the stacked ones) is what an optimizer is built on, so param-group
rules that read module types (no weight decay on biases and norms) still apply. Batch-norm
running statistics are stacked buffers, updated in place per member under ``vmap``.

Dropout is the one random operation that is vectorized, and it is *fed*: each ``nn.Dropout``
(and ``Dropout1d/2d/3d``) of the functional copy multiplies by a mask drawn outside ``vmap``,
member by member, from that member's own generator, in the order the layers run. ``fit(seed=s)``
seeds torch's global generator with ``s`` and nothing else draws from it during training, so a
member whose generator is seeded with ``s`` draws exactly the masks ``fit`` would: same
``bernoulli_(1 - p)`` call, same shape, same generator state. (``vmap(randomness="different")``
draws one batched tensor from the global generator instead, which no sequential run reproduces.)
Any other random operation inside the forward raises under ``randomness="error"``; the caller
then trains sequentially.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from goodfit.train.stacked_sequential import sequential_forward, sequential_plan

__all__ = ["StackedModel", "architecture_mismatch", "has_tied_tensors"]

_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


def architecture_mismatch(models: Sequence[nn.Module]) -> str | None:
    """Why ``models`` cannot be stacked (different types, names, shapes or dtypes), or None."""
    first = models[0]
    sig0 = _signature(first)
    for k, m in enumerate(models[1:], start=1):
        if type(m) is not type(first) or _signature(m) != sig0:
            return f"member {k} differs from member 0 in its modules, parameters or buffers"
    return None


def has_tied_tensors(module: nn.Module) -> bool:
    """Whether one tensor stands under two names in ``module`` (tied weights): only then does
    ``functional_call`` need its weight-tying pass (``tie_weights=True``), which costs ~0.1 ms a
    call."""
    every = [
        *module.named_parameters(remove_duplicate=False),
        *module.named_buffers(remove_duplicate=False),
    ]
    return len({id(t) for _, t in every}) < len(every)


def _signature(model: nn.Module) -> tuple:
    mods = tuple((n, type(m).__name__) for n, m in model.named_modules())
    tensors = tuple(
        (n, tuple(t.shape), t.dtype) for n, t in (*model.named_parameters(), *model.named_buffers())
    )
    return mods, tensors


class _MaskFeed:
    """The masks of one forward pass, handed to the fed dropout layers in call order; in probe
    mode it records the (per-member) input shapes instead."""

    def __init__(self) -> None:
        self.masks: list[Tensor] = []
        self.cursor = 0
        self.probe: list[tuple[_FedDropout, tuple[int, ...]]] | None = None

    def take(self, layer: _FedDropout, x: Tensor) -> Tensor:
        if self.probe is not None:
            self.probe.append((layer, tuple(x.shape)))
            return x
        mask = self.masks[self.cursor]
        self.cursor += 1
        return x * mask


class _FedDropout(nn.Module):
    """``nn.Dropout``'s place in the functional copy: ``x * mask`` with a fed inverted mask."""

    def __init__(self, p: float, channelwise: bool, feed: _MaskFeed) -> None:
        super().__init__()
        self.p, self.channelwise, self.feed = float(p), channelwise, feed

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:  # torch's dropout draws nothing for p = 0
            return x
        return self.feed.take(self, x)

    def mask_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if not self.channelwise:
            return shape
        return shape[:2] + (1,) * (len(shape) - 2)


def _feed_dropouts(module: nn.Module, feed: _MaskFeed) -> None:
    for name, child in module.named_children():
        if isinstance(child, _DROPOUTS):
            channelwise = type(child) is not nn.Dropout
            setattr(module, name, _FedDropout(child.p, channelwise, feed))
        else:
            _feed_dropouts(child, feed)


class StackedModel:
    """The K members of one architecture, stacked.

    ``params`` / ``buffers``: name -> stacked tensor (leading axis = member); ``shell``: an
    ``nn.Module`` holding ``params`` as its parameters (build the optimizer on it);
    :meth:`forward` runs all members at once; :meth:`member_state` / :meth:`load_member` read
    and write one member's ``state_dict``.
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        self.k = len(models)
        params, buffers = stack_module_state(list(models))
        self.feed = _MaskFeed()
        self.base = copy.deepcopy(models[0])
        _feed_dropouts(self.base, self.feed)
        self.shell = copy.deepcopy(models[0])
        for name, t in params.items():
            _set_tensor(self.shell, name, nn.Parameter(t.detach().clone()))
        for name, t in buffers.items():
            _set_tensor(self.shell, name, t.clone())
        self.params: dict[str, Tensor] = dict(self.shell.named_parameters())
        self.buffers: dict[str, Tensor] = dict(self.shell.named_buffers())
        self._state_keys = list(models[0].state_dict().keys())
        self._tied = has_tied_tensors(self.base)
        self._plan = sequential_plan(self.base, _FedDropout)
        self._shapes: dict[tuple[int, ...], list[tuple[_FedDropout, tuple[int, ...]]]] = {}

    # -- one member's state ---------------------------------------------------------------------
    def member_state(self, k: int) -> dict[str, Tensor]:
        """Member ``k``'s ``state_dict`` (views into the stacked tensors)."""
        every = {**self.params, **self.buffers}
        return {name: every[name].detach()[k] for name in self._state_keys}

    @torch.no_grad()
    def load_member(self, k: int, state: dict[str, Tensor]) -> None:
        every = {**self.params, **self.buffers}
        for name in self._state_keys:
            every[name][k].copy_(state[name])

    # -- forward ------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> None:
        self.base.train(mode)

    def dropout_shapes(self, x: Tensor) -> list[tuple[_FedDropout, tuple[int, ...]]]:
        """The fed dropout layers a training forward on ``x`` (K, B, ...) calls, in order, with
        their per-member input shapes; found once per input shape by a probe pass under
        ``vmap(randomness="error")`` (so any other random operation raises here)."""
        key = tuple(x.shape[1:])  # per member: the same for any subset of the members
        if key not in self._shapes:
            self.feed.probe = []
            buffers = {n: b.clone() for n, b in self.buffers.items()}  # the probe changes nothing
            xs = x[:1].expand(self.k, *key)
            try:
                with torch.no_grad():
                    vmap(self._call, randomness="error")(self.params, buffers, xs)
                self._shapes[key] = self.feed.probe
            finally:
                self.feed.probe = None
        return self._shapes[key]

    def draw_masks(self, x: Tensor, generators: Sequence[torch.Generator | None]) -> list[Tensor]:
        """One stacked inverted mask per dropout call of a training forward on ``x``: member
        ``k`` draws from ``generators[k]`` (``None``: a frozen member, mask of ones, no draw)."""
        masks = []
        for layer, shape in self.dropout_shapes(x):
            shape = layer.mask_shape(shape)
            per_member = []
            for gen in generators:
                m = torch.empty(shape, dtype=x.dtype, device=x.device)
                if gen is None:
                    m.fill_(1.0)
                elif layer.p == 1.0:
                    m.zero_()
                else:
                    m.bernoulli_(1.0 - layer.p, generator=gen).div_(1.0 - layer.p)
                per_member.append(m)
            masks.append(torch.stack(per_member))
        return masks

    def _call(self, params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor) -> Tensor:
        state = {**params, **buffers} if buffers else params
        return functional_call(self.base, state, (x,), tie_weights=self._tied)

    def forward(
        self,
        x: Tensor,
        masks: Sequence[Tensor] = (),
        *,
        loss: Callable[..., Tensor] | None = None,
        extra: tuple[Any, ...] = (),
        x_shared: bool = False,
        members: Tensor | None = None,
    ) -> Any:
        """All members' outputs for ``x`` (K, B, ...) — or (B, ...) shared when ``x_shared`` —
        and, with ``loss``, ``loss(out, *extra)`` per member (``extra`` stacked per member).
        ``members`` (an index tensor): only those members, ``x`` (len(members), B, ...); their
        parameters are gathered (gradients flow back to the stacked ones) and their batch-norm
        statistics written back."""
        params, buffers, k = self.params, self.buffers, self.k
        if members is not None:
            params = {n: t.index_select(0, members) for n, t in params.items()}
            buffers = {n: t.index_select(0, members) for n, t in buffers.items()}
            k = len(members)
        try:
            return self._forward(params, buffers, k, x, masks, loss, extra, x_shared)
        finally:
            if members is not None:
                with torch.no_grad():
                    for name, t in buffers.items():
                        self.buffers[name].index_copy_(0, members, t)

    def _forward(
        self,
        params: dict[str, Tensor],
        buffers: dict[str, Tensor],
        k: int,
        x: Tensor,
        masks: Sequence[Tensor],
        loss: Callable[..., Tensor] | None,
        extra: tuple[Any, ...],
        x_shared: bool,
    ) -> Any:
        if loss is None and not x_shared and self._plan is not None:
            self.feed.masks, self.feed.cursor = list(masks), 0
            try:
                return sequential_forward(self._plan, {**params, **buffers}, k, x, self.feed)
            finally:
                self.feed.masks = []

        def member(params, buffers, xk, mk, *ek):
            self.feed.masks, self.feed.cursor = list(mk), 0
            out = self._call(params, buffers, xk)
            return (out, loss(out, *ek)) if loss is not None else out

        in_dims = (0, 0, None if x_shared else 0, 0, *(0,) * len(extra))
        try:
            return vmap(member, in_dims=in_dims, randomness="error")(
                params, buffers, x, tuple(masks), *extra
            )
        finally:
            self.feed.masks = []


def _set_tensor(module: nn.Module, dotted: str, value: Tensor) -> None:
    *path, leaf = dotted.split(".")
    owner = module
    for part in path:
        owner = getattr(owner, part)
    if isinstance(value, nn.Parameter):
        owner._parameters[leaf] = value
    else:
        owner._buffers[leaf] = value
