"""Model builders used by configs: :func:`mlp`, :func:`cnn1d`, :func:`cnn2d`.

Each builder returns a plain ``nn.Sequential``. Regularization layers are one argument away:
``dropout={"kind": "gaussian", "p": 0.3}`` inserts a layer of the dropout family after every hidden
activation (conv blocks get the layer for their dimensionality), ``norm="batch"`` inserts a layer of
the normalization family between each hidden linear/conv layer and its activation (seed 000
§1.1.5 places BN before the nonlinearity; instance norm, which has nothing to normalize over
after flattening, is applied to the conv blocks only), ``pool`` picks the CNN's pooling layer
(``"max"``, ``"avg"`` or a pooling dropout such as ``"max_pool_dropout"``),
``weight_standardization`` and ``spectral_norm`` wrap the conv/linear layers, and ``head``
picks how the CNN's feature maps reach the dense head: ``"flatten"`` or ``"gap"``
(:class:`GlobalAvgPool`, seed 000's "replace flatten with global average pooling").
Residual networks are in :mod:`goodfit.nn.resnet`.

Example
-------
>>> import goodfit as gf
>>> net = gf.nn.models.cnn2d((1, 8, 8), num_outputs=10, channels=(16, 32), norm="batch")
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

__all__ = ["ACTIVATIONS", "HEADS", "GlobalAvgPool", "cnn1d", "cnn2d", "mlp"]

#: How conv feature maps become the dense head's input.
HEADS = ("flatten", "gap")


class GlobalAvgPool(nn.Module):
    """Global average pooling: ``(N, C, *spatial) -> (N, C)``, the mean over every spatial
    position (Lin et al. 2014; seed 000 lists it among the architecture-level remedies: no
    parameters in the head's input, so far fewer weights than ``Flatten -> Linear``)."""

    def forward(self, x: Any) -> Any:
        return x.mean(dim=tuple(range(2, x.dim())))


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
    "identity": nn.Identity,
}

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_POOL = {"max": {1: nn.MaxPool1d, 2: nn.MaxPool2d}, "avg": {1: nn.AvgPool1d, 2: nn.AvgPool2d}}


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


def _dropout_spec(dropout: Mapping[str, Any] | float | None) -> dict[str, Any] | None:
    if dropout is None:
        return None
    if isinstance(dropout, int | float):
        return {"kind": "standard", "p": float(dropout)} if dropout > 0 else None
    spec = dict(dropout)
    if "p" not in spec and spec.get("kind") not in ("additive_gaussian",):
        raise ValueError(f"dropout needs a rate 'p', got {spec!r}")
    spec.setdefault("kind", "standard")
    return spec


def _dropout_layer(spec: dict[str, Any] | None, dims: int) -> nn.Module | None:
    if spec is None:
        return None
    from goodfit.nn.dropout import make_dropout

    kind = spec["kind"]
    if kind == "dropconnect":  # acts on weights: handled where the linear layers are built
        return None
    if kind == "spatial" and dims == 0:  # channel dropout has no channels after flattening
        return None
    kwargs = {k: v for k, v in spec.items() if k != "kind"}
    return make_dropout(kind, dims=dims, **kwargs)


NormSpec = str | Mapping[str, Any] | None


def _norm_kind(norm: NormSpec) -> str | None:
    return norm.get("kind") if isinstance(norm, Mapping) else norm


def _norm_layer(norm: NormSpec, num_features: int, dims: int) -> nn.Module | None:
    """``norm`` is a kind (``"batch"``) or a table with the kind's options
    (``{"kind": "group", "groups": 4}``, ``{"kind": "batch", "running_var": "biased"}``)."""
    if norm is None or norm == "none":
        return None
    from goodfit.nn.norm import make_norm

    if isinstance(norm, Mapping):
        options = {k: v for k, v in norm.items() if k != "kind"}
        if "kind" not in norm:
            raise ValueError(f"norm table needs a 'kind', got {dict(norm)!r}")
        return make_norm(norm["kind"], num_features, dims=dims, **options)
    return make_norm(norm, num_features, dims=dims)


def _linear(
    n_in: int,
    n_out: int,
    dropout: dict[str, Any] | None,
    weight_standardization: bool,
    spectral_norm: bool,
    hidden: bool,
) -> nn.Module:
    if hidden and dropout is not None and dropout["kind"] == "dropconnect":
        from goodfit.nn.dropout import DropConnectLinear

        extra = {k: v for k, v in dropout.items() if k not in ("kind",)}
        layer: nn.Module = DropConnectLinear(n_in, n_out, **extra)
    elif hidden and weight_standardization:
        from goodfit.nn.norm import WSLinear

        layer = WSLinear(n_in, n_out)
    else:
        layer = nn.Linear(n_in, n_out)
    if spectral_norm:
        layer = nn.utils.parametrizations.spectral_norm(layer)
    return layer


def _dense_stack(
    n_in: int,
    widths: Sequence[int],
    num_outputs: int,
    activation: str,
    dropout: dict[str, Any] | None,
    norm: NormSpec,
    weight_standardization: bool,
    spectral_norm: bool,
) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for width in widths:
        if width < 1:
            raise ValueError(f"layer widths must be >= 1, got {list(widths)}")
        layers.append(_linear(n_in, width, dropout, weight_standardization, spectral_norm, True))
        if (norm_layer := _norm_layer(norm, width, 0)) is not None:
            layers.append(norm_layer)
        layers.append(_activation(activation))
        if (drop := _dropout_layer(dropout, 0)) is not None:
            layers.append(drop)
        n_in = width
    layers.append(_linear(n_in, num_outputs, None, False, spectral_norm, False))
    return layers


def _as_shape(input_shape: int | Sequence[int]) -> tuple[int, ...]:
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(int(s) for s in input_shape)
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"input_shape must be positive sizes, got {input_shape!r}")
    return shape


def mlp(
    input_shape: int | Sequence[int],
    widths: Sequence[int] = (128, 128),
    num_outputs: int = 1,
    *,
    activation: str = "relu",
    dropout: Mapping[str, Any] | float | None = None,
    norm: NormSpec = None,
    weight_standardization: bool = False,
    spectral_norm: bool = False,
) -> nn.Sequential:
    """Multilayer perceptron: ``[Flatten] -> (Linear -> [norm] -> act -> [dropout]) x len(widths)
    -> Linear``.

    Inputs of any shape are flattened, so ``mlp((1, 8, 8), ...)`` works on images.
    """
    shape = _as_shape(input_shape)
    spec = _dropout_spec(dropout)
    if spec is not None and spec["kind"] == "spatial":
        raise ValueError(
            "dropout kind 'spatial' drops whole channels: it needs a cnn1d/cnn2d, not an mlp"
        )
    if _norm_kind(norm) == "instance":
        raise ValueError("norm 'instance' needs channels with a spatial extent: use a cnn")
    layers: list[nn.Module] = [nn.Flatten()] if len(shape) > 1 else []
    layers += _dense_stack(
        math.prod(shape),
        widths,
        num_outputs,
        activation,
        spec,
        norm,
        weight_standardization,
        spectral_norm,
    )
    return nn.Sequential(*layers)


def _cnn(
    dims: int,
    input_shape: Sequence[int],
    channels: Sequence[int],
    hidden: Sequence[int],
    num_outputs: int,
    kernel_size: int,
    activation: str,
    dropout: Mapping[str, Any] | float | None,
    norm: NormSpec,
    pool: str | Mapping[str, Any],
    pool_every: int,
    weight_standardization: bool,
    spectral_norm: bool,
    head: str = "flatten",
) -> nn.Sequential:
    shape = _as_shape(input_shape)
    check_head(head)
    if len(shape) != dims + 1:
        raise ValueError(
            f"cnn{dims}d needs input_shape (C, {'L' if dims == 1 else 'H, W'}), got {shape}"
        )
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and >= 1, got {kernel_size}")
    if pool_every < 1:
        raise ValueError(f"pool_every must be >= 1, got {pool_every}")
    spec = _dropout_spec(dropout)
    dropconnect = spec is not None and spec["kind"] == "dropconnect"
    if dropconnect and weight_standardization:
        raise ValueError("dropout kind 'dropconnect' and weight_standardization both replace the "
                         "conv/linear layers; choose one")  # fmt: skip
    if dropconnect and dims != 2:
        raise ValueError("dropout kind 'dropconnect' exists for Linear and Conv2d layers (cnn2d "
                         "or mlp), not for cnn1d")  # fmt: skip
    c_in, spatial = shape[0], list(shape[1:])
    layers: list[nn.Module] = []
    for i, c_out in enumerate(channels):
        if c_out < 1:
            raise ValueError(f"channels must be >= 1, got {list(channels)}")
        conv_kwargs: dict[str, Any] = {}
        if weight_standardization:
            from goodfit.nn import norm as gf_norm

            conv_cls = {1: gf_norm.WSConv1d, 2: gf_norm.WSConv2d}[dims]
        elif dropconnect:
            from goodfit.nn.dropout import DropConnectConv2d

            conv_cls = DropConnectConv2d
            conv_kwargs = {k: v for k, v in spec.items() if k != "kind"}
        else:
            conv_cls = _CONV[dims]
        conv: nn.Module = conv_cls(
            c_in, c_out, kernel_size, padding=kernel_size // 2, **conv_kwargs
        )
        if spectral_norm:
            conv = nn.utils.parametrizations.spectral_norm(conv)
        layers.append(conv)
        if (norm_layer := _norm_layer(norm, c_out, dims)) is not None:
            layers.append(norm_layer)
        layers.append(_activation(activation))
        if (i + 1) % pool_every == 0 and min(spatial) >= 2:
            layers.append(_pool_layer(pool, dims))
            spatial = [s // 2 for s in spatial]
        if spec is not None and (drop := _dropout_layer(spec, dims)) is not None:
            layers.append(drop)
        c_in = c_out
    layers.append(nn.Flatten() if head == "flatten" else GlobalAvgPool())
    layers += _dense_stack(
        c_in * (math.prod(spatial) if head == "flatten" else 1),
        hidden,
        num_outputs,
        activation,
        spec,
        None if _norm_kind(norm) == "instance" else norm,  # nothing spatial after Flatten
        False,
        spectral_norm,
    )
    return nn.Sequential(*layers)


def check_head(head: str) -> str:
    """``head`` if it is one of :data:`HEADS`, else ``ValueError``."""
    if head not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
    return head


def _pool_layer(pool: str | Mapping[str, Any], dims: int) -> nn.Module:
    """``pool`` is ``"max"``/``"avg"`` or a pooling dropout: a table with its options
    (``{"kind": "max_pool_dropout", "p": 0.2}``; the name alone means ``p = 0.1``)."""
    if isinstance(pool, str) and pool in _POOL:
        return _POOL[pool][dims](2)
    from goodfit.nn.dropout import make_pool_dropout

    spec = {"kind": pool} if isinstance(pool, str) else dict(pool)
    if "kind" not in spec:
        raise ValueError(f"pool table needs a 'kind', got {spec!r}")
    kind = spec.pop("kind")
    p = spec.pop("p", 0.1)
    return make_pool_dropout(kind, p, kernel_size=2, dims=dims, **spec)


def _cnn_builder(dims: int, kernel_size_default: int, doc: str) -> Callable[..., nn.Sequential]:
    """The public ``cnn{dims}d`` builder: one signature for both, only the default kernel and the
    docstring differ."""

    def builder(
        input_shape: Sequence[int],
        channels: Sequence[int] = (32, 64),
        num_outputs: int = 10,
        *,
        hidden: Sequence[int] = (128,),
        kernel_size: int = kernel_size_default,
        activation: str = "relu",
        dropout: Mapping[str, Any] | float | None = None,
        norm: NormSpec = None,
        pool: str | Mapping[str, Any] = "max",
        pool_every: int = 1,
        weight_standardization: bool = False,
        spectral_norm: bool = False,
        head: str = "flatten",
    ) -> nn.Sequential:
        return _cnn(
            dims, input_shape, channels, hidden, num_outputs, kernel_size, activation, dropout,
            norm, pool, pool_every, weight_standardization, spectral_norm, head,
        )  # fmt: skip

    builder.__name__ = builder.__qualname__ = f"cnn{dims}d"
    builder.__doc__ = doc
    return builder


cnn1d = _cnn_builder(
    1,
    5,
    """1-D CNN for (C, L) signals: conv blocks ``Conv1d -> [norm] -> act -> [pool] -> [dropout]``
    (a pool of size 2 after every ``pool_every`` blocks), then ``head`` (``"flatten"`` or
    ``"gap"``) and an :func:`mlp` head.""",
)
cnn2d = _cnn_builder(
    2,
    3,
    """2-D CNN for (C, H, W) images: conv blocks ``Conv2d -> [norm] -> act -> [pool] ->
    [dropout]`` (a 2x2 pool after every ``pool_every`` blocks), then ``head`` (``"flatten"``
    or ``"gap"``) and an :func:`mlp` head.""",
)
