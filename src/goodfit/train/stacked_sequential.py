"""The forward pass of K stacked ``nn.Sequential`` members without ``vmap``.

``vmap`` over ``functional_call`` costs ~0.1 ms per layer and call on the CPU, and its batching
rules for convolutions and pooling move data around; for the layers below the same products are
written directly on the stacked tensors, in one of two layouts:

* *member-major* ``(K, B, ...)`` — a ``Linear`` is one ``baddbmm`` of ``(K, B, F)`` inputs with
  the ``(K, out, F)`` weights;
* *channel-stacked* ``(B, K*C, ...)`` — the members' channels side by side, so a convolution is
  one grouped convolution (``groups = K * groups``, the weights reshaped to ``(K*out, ...)``),
  pooling acts per channel as it is, and batch norm is ``F.batch_norm`` on ``K*C`` channels
  whose statistics are the members' own (the running buffers are views of the stacked ones,
  updated in place as ``nn.BatchNorm*`` does, ``num_batches_tracked`` counted per member).

Supported: ``Linear``, ``Conv1d/2d`` (zero padding), ``BatchNorm1d/2d`` (running statistics,
a momentum), ``MaxPool``/``AvgPool``/``AdaptiveAvgPool`` 1d/2d, ``Flatten()``, element-wise
activations, ``Identity`` and the fed dropouts of :mod:`goodfit.train.stacked`; any other layer
leaves the model to ``vmap``. Results equal the ``vmap`` path to rounding
(``tests/test_fit_many.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["sequential_forward", "sequential_plan"]

_ELEMENTWISE = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Hardtanh, nn.Identity,
)  # fmt: skip
_CONV = (nn.Conv1d, nn.Conv2d)
_NORM = (nn.BatchNorm1d, nn.BatchNorm2d)
_POOL = (
    nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
)  # fmt: skip


def _supported(m: nn.Module, fed: type) -> bool:
    t = type(m)
    if t is nn.Linear or t in _ELEMENTWISE or t is fed:
        return True
    if t in _POOL:
        return not getattr(m, "return_indices", False)
    if t is nn.Flatten:
        return m.start_dim == 1 and m.end_dim == -1
    if t in _CONV:
        return m.padding_mode == "zeros"
    if t in _NORM:
        return m.track_running_stats and m.momentum is not None
    return False


def sequential_plan(base: nn.Module, fed: type) -> list[tuple[str, nn.Module]] | None:
    """The named layers of ``base`` when it is an ``nn.Sequential`` (or a subclass keeping its
    forward) of supported layers (``fed``: the fed-dropout class), else None."""
    if not isinstance(base, nn.Sequential) or type(base).forward is not nn.Sequential.forward:
        return None
    layers = list(base.named_children())
    if not all(_supported(m, fed) for _, m in layers):
        return None
    return _pool_before_relu(layers)


def _pool_before_relu(layers: list[tuple[str, nn.Module]]) -> list[tuple[str, nn.Module]]:
    """``ReLU`` then ``MaxPool`` reordered as ``MaxPool`` then ``ReLU``: the same values
    (``max`` commutes with a non-decreasing function, and every pooling window holds an input
    element) and the same gradient (where the window's maximum is positive both pick its first
    position, else both give zero), with the activation on the pooled, smaller tensor."""
    out = list(layers)
    for i in range(len(out) - 1):
        if type(out[i][1]) is nn.ReLU and type(out[i + 1][1]) in (nn.MaxPool1d, nn.MaxPool2d):
            out[i], out[i + 1] = out[i + 1], out[i]
    return out


class _Stacked:
    """A stacked activation and its layout: member-major ``(K, B, ...)`` or channel-stacked
    ``(B, K*C, ...)``."""

    def __init__(self, x: Tensor, k: int) -> None:
        self.x, self.k, self.channels = x, k, False

    def member_major(self) -> Tensor:
        if self.channels:
            b = self.x.shape[0]
            self.x = self.x.reshape(b, self.k, -1, *self.x.shape[2:]).transpose(0, 1)
            self.channels = False
        return self.x

    def channel_stacked(self) -> Tensor:
        """``(B, K*C, ...)``; 2-D maps in ``channels_last`` memory, where the grouped
        convolutions, pooling and batch norm of these many narrow channel groups run fastest on
        the CPU (one CNN step of 5 stacked digits CNNs: 1.5x faster; max-pooling alone 3.6x)."""
        if not self.channels:
            k, b = self.x.shape[:2]
            self.x = self.x.transpose(0, 1).reshape(b, k * self.x.shape[2], *self.x.shape[3:])
            self.channels = True
        if self.x.ndim == 4 and not self.x.is_contiguous(memory_format=torch.channels_last):
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        return self.x

    def as_member_major_mask(self, mask: Tensor) -> Tensor:
        """A (K, B, ...) mask in the current layout."""
        if not self.channels:
            return mask
        return mask.transpose(0, 1).reshape(mask.shape[1], -1, *mask.shape[3:])


def _linear(s: _Stacked, w: Tensor, b: Tensor | None) -> Tensor:
    x = s.member_major()
    x2 = x.reshape(s.k, -1, x.shape[-1])
    wt = w.transpose(1, 2)
    y = x2 @ wt if b is None else torch.baddbmm(b.unsqueeze(1), x2, wt)
    return y.reshape(s.k, *x.shape[1:-1], w.shape[1])


def _conv(s: _Stacked, layer: nn.Module, w: Tensor, b: Tensor | None) -> Tensor:
    x = s.channel_stacked()
    conv = F.conv1d if type(layer) is nn.Conv1d else F.conv2d
    bias = None if b is None else b.reshape(-1)
    weight = w.reshape(-1, *w.shape[2:])
    return conv(x, weight, bias, layer.stride, layer.padding, layer.dilation, s.k * layer.groups)


def _batch_norm(s: _Stacked, layer: nn.Module, p: dict[str, Tensor], name: str) -> Tensor:
    """``nn.BatchNorm*`` per member: K*C channels, the running buffers viewed flat."""
    flat = type(layer) is nn.BatchNorm1d and not s.channels and s.x.ndim == 3  # (K, B, F)
    if flat:
        k, b, f = s.member_major().shape
        x = s.x.transpose(0, 1).reshape(b, k * f)
    else:
        x = s.channel_stacked()
    mean, var = p[f"{name}.running_mean"], p[f"{name}.running_var"]
    weight, bias = p.get(f"{name}.weight"), p.get(f"{name}.bias")
    if layer.training:
        p[f"{name}.num_batches_tracked"].add_(1)
    y = F.batch_norm(
        x,
        mean.view(-1),
        var.view(-1),
        None if weight is None else weight.reshape(-1),
        None if bias is None else bias.reshape(-1),
        layer.training,
        layer.momentum,
        layer.eps,
    )
    if flat:
        s.channels = False
        return y.reshape(b, k, f).transpose(0, 1)
    return y


def sequential_forward(
    plan: Sequence[tuple[str, nn.Module]],
    state: dict[str, Tensor],
    k: int,
    x: Tensor,
    feed: Any,
) -> Tensor:
    """The K members' outputs (K, B, ...) for inputs ``x`` (K, B, ...); ``state``: the stacked
    parameters and buffers by name; ``feed``: the dropout masks in call order."""
    s = _Stacked(x, k)
    for name, layer in plan:
        t = type(layer)
        if t is nn.Linear:
            s.x = _linear(s, state[f"{name}.weight"], state.get(f"{name}.bias"))
        elif t in _CONV:
            s.x = _conv(s, layer, state[f"{name}.weight"], state.get(f"{name}.bias"))
        elif t in _NORM:
            s.x = _batch_norm(s, layer, state, name)
        elif t in _POOL:
            s.x = layer(s.channel_stacked())
        elif t is nn.Flatten:
            s.x = s.member_major().flatten(2)
        elif t in _ELEMENTWISE:
            s.x = layer(s.x)
        elif layer.training and layer.p != 0.0:  # a fed dropout: its mask, in this layout
            mask = feed.masks[feed.cursor]
            feed.cursor += 1
            s.x = s.x * s.as_member_major_mask(mask)
    return s.member_major()
