"""Residual networks for 1-D signals and 2-D images, with or without the shortcuts.

He et al. 2016's CIFAR ResNets (the ResNet-20/56/110 of Li et al. 2018, *Visualizing the Loss
Landscape of Neural Nets*, seed 003 Fig. 1 and 4): a stem ``conv -> [norm] -> act``, then
``stages`` stages of ``depth`` basic blocks each (stage ``i`` has ``width * 2**i`` channels, its
first block halves the length/size with stride 2), then global average pooling and one linear
layer. A basic block computes ``act(F(x) + shortcut(x))`` with ``F = conv -> [norm] -> act ->
conv -> [norm]``; the shortcut is the identity, or a 1x1 convolution (+ norm) where the shape
changes ("option B"). ``skip=False`` builds the same network without any shortcut
(``act(F(x))``: Li et al.'s "ResNet-56-noshort"), so the two differ only in the shortcuts.

Example
-------
>>> import goodfit as gf
>>> net = gf.nn.resnet.resnet((1, 8, 8), 10, depth=2, width=8, norm="batch")
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from goodfit.nn.models import (
    _CONV,
    GlobalAvgPool,
    NormSpec,
    _activation,
    _as_shape,
    _dropout_layer,
    _dropout_spec,
    _norm_layer,
    check_head,
)

__all__ = ["BasicBlock", "count_shortcuts", "resnet"]


def _conv(dims: int, c_in: int, c_out: int, k: int, stride: int, ws: bool, sn: bool) -> nn.Module:
    if ws:
        from goodfit.nn import norm as gf_norm

        cls: Any = {1: gf_norm.WSConv1d, 2: gf_norm.WSConv2d}[dims]
    else:
        cls = _CONV[dims]
    conv = cls(c_in, c_out, k, stride=stride, padding=k // 2, bias=True)
    return nn.utils.parametrizations.spectral_norm(conv) if sn else conv


class BasicBlock(nn.Module):
    """``act(F(x) + shortcut(x))``; ``shortcut`` is ``None`` without skip connections,
    ``nn.Identity`` when the shape is kept, else a 1x1 convolution with ``stride`` (+ norm)."""

    def __init__(
        self,
        dims: int,
        c_in: int,
        c_out: int,
        stride: int,
        *,
        kernel_size: int,
        activation: str,
        norm: NormSpec,
        skip: bool,
        ws: bool = False,
        sn: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv(dims, c_in, c_out, kernel_size, stride, ws, sn)]
        if (n1 := _norm_layer(norm, c_out, dims)) is not None:
            layers.append(n1)
        layers += [_activation(activation), _conv(dims, c_out, c_out, kernel_size, 1, ws, sn)]
        if (n2 := _norm_layer(norm, c_out, dims)) is not None:
            layers.append(n2)
        self.residual = nn.Sequential(*layers)
        self.shortcut: nn.Module | None = None
        if skip and (stride != 1 or c_in != c_out):
            proj: list[nn.Module] = [_conv(dims, c_in, c_out, 1, stride, ws, sn)]
            if (n3 := _norm_layer(norm, c_out, dims)) is not None:
                proj.append(n3)
            self.shortcut = nn.Sequential(*proj)
        elif skip:
            self.shortcut = nn.Identity()
        self.act = _activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        out = self.residual(x)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.act(out)


def count_shortcuts(model: nn.Module) -> int:
    """The number of skip connections (identity or projection) in ``model``."""
    return sum(1 for m in model.modules() if isinstance(m, BasicBlock) and m.shortcut is not None)


def resnet(
    input_shape: tuple[int, ...] | list[int],
    num_outputs: int = 10,
    *,
    depth: int = 3,
    width: int = 16,
    stages: int = 3,
    skip: bool = True,
    head: str = "gap",
    kernel_size: int = 3,
    activation: str = "relu",
    norm: NormSpec = "batch",
    dropout: Mapping[str, Any] | float | None = None,
    weight_standardization: bool = False,
    spectral_norm: bool = False,
) -> nn.Sequential:
    """A ResNet of ``stages`` x ``depth`` basic blocks (``6 * depth + 2`` weight layers for the
    default 3 stages: depth 9 is ResNet-56) on ``(C, L)`` or ``(C, H, W)`` inputs.

    ``dropout`` (the same tables as :func:`goodfit.nn.models.cnn2d`) follows every block;
    ``head = "gap"`` averages each channel over space, ``"flatten"`` keeps every position.
    """
    shape = _as_shape(input_shape)
    dims = len(shape) - 1
    if dims not in (1, 2):
        raise ValueError(f"resnet needs input_shape (C, L) or (C, H, W), got {shape}")
    for name, value in (("depth", depth), ("width", width), ("stages", stages)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and >= 1, got {kernel_size}")
    check_head(head)
    spec = _dropout_spec(dropout)
    if spec is not None and spec["kind"] == "dropconnect":
        raise ValueError("dropout kind 'dropconnect' is not available for resnet")
    ws, sn = weight_standardization, spectral_norm
    layers: list[nn.Module] = [_conv(dims, shape[0], width, kernel_size, 1, ws, sn)]
    if (n0 := _norm_layer(norm, width, dims)) is not None:
        layers.append(n0)
    layers.append(_activation(activation))
    c_in, spatial = width, list(shape[1:])
    for stage in range(stages):
        c_out = width * 2**stage
        for block in range(depth):
            stride = 2 if stage > 0 and block == 0 and min(spatial) >= 2 else 1
            spatial = [(s + 1) // 2 for s in spatial] if stride == 2 else spatial
            layers.append(
                BasicBlock(
                    dims,
                    c_in,
                    c_out,
                    stride,
                    kernel_size=kernel_size,
                    activation=activation,
                    norm=norm,
                    skip=skip,
                    ws=ws,
                    sn=sn,
                )
            )
            if (drop := _dropout_layer(spec, dims)) is not None:
                layers.append(drop)
            c_in = c_out
    n_features = c_in if head == "gap" else c_in * math.prod(spatial)
    layers += [
        GlobalAvgPool() if head == "gap" else nn.Flatten(),
        nn.Linear(n_features, num_outputs),
    ]
    return nn.Sequential(*layers)
