r"""Weight initializers and initialization by layer type (seed 004, "Initialization").

For a layer with ``m`` inputs and ``n`` outputs (a weight of shape ``(n, m)``; for a convolution
``(out, in, *k)`` both are multiplied by the kernel size :math:`\prod k`):

* ``glorot_uniform``: :math:`U(\pm g\sqrt{6/(m+n)})` (Glorot & Bengio 2010; seed 004 eq. 1);
* ``glorot_normal``: :math:`N(0,\ g^2 \cdot 2/(m+n))`;
* ``he_uniform``: :math:`U(\pm g\sqrt{3/m})`, :math:`g=\sqrt2`, i.e. :math:`U(\pm\sqrt{6/m})`
  (He et al. 2015, the note's [He+15]);
* ``he_normal``: :math:`N(0,\ g^2/m)`, :math:`g=\sqrt2`, i.e. variance :math:`2/m`;
* ``torch_default``: :math:`U(\pm g/\sqrt{m})`, :math:`g=1`: PyTorch's Linear/Conv default
  ``kaiming_uniform_(a=sqrt(5))``, seed 004 eq. (2) (which the note calls "He-uniform");
* ``lecun_normal``: :math:`N(0,\ g^2/m)` truncated at :math:`\pm2\sigma` as Flax does
  (seed 004 eq. 3; see :func:`lecun_normal` for the variance rescaling);
* ``orthogonal``: :math:`g\,Q` with orthonormal rows/columns (Saxe et al. 2014);
* ``zeros``.

A scheme's name means its formula: without a gain :math:`g = 1`, except He's, whose formula is
:math:`g^2/m` with the ReLU gain :math:`g=\sqrt2` (He et al. derive :math:`2/m` for ReLU and
:math:`2/((1+a^2)m)` for a leaky slope :math:`a`: the squared gain of
:func:`torch.nn.init.calculate_gain`). A gain is opt-in (:func:`apply`'s ``gain``: a number or a
nonlinearity's name): it multiplies the std/bound of every scheme but He's, whose :math:`\sqrt2`
it replaces (as torch's ``kaiming_*_(nonlinearity=...)``). ``xavier_*`` and ``kaiming_*`` are
aliases. :data:`SCHEMES` maps each name to its function ``f(tensor, gain=..., generator=None)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "SCHEMES",
    "TRUNCATED_NORMAL_STD",
    "apply",
    "constant",
    "fans",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "orthogonal",
    "resolve_gain",
    "torch_default",
    "zeros",
]

#: Standard deviation of a standard normal truncated to (-2, 2): the factor JAX's
#: ``variance_scaling(..., "truncated_normal")`` divides by so the result has the target variance.
TRUNCATED_NORMAL_STD = 0.87962566103423978


def fans(tensor: Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` = ``(m, n)`` of a weight ``(out, in, *kernel)``: in/out features times
    the receptive-field size (as :mod:`torch.nn.init` computes them)."""
    if tensor.ndim < 2:
        raise ValueError(
            f"fan_in/fan_out need a weight with >= 2 dims, got shape {tuple(tensor.shape)}"
        )
    receptive = math.prod(tensor.shape[2:]) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _gain(gain: Any) -> float:
    if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not 0 < gain < math.inf:
        raise ValueError(f"gain must be a finite number > 0, got {gain!r}")
    return float(gain)


def glorot_uniform(tensor: Tensor, gain: float = 1.0, generator: torch.Generator | None = None):
    r"""Glorot/Xavier uniform :math:`U(\pm g\sqrt{6/(m+n)})` (seed 004 eq. 1), in place."""
    return nn.init.xavier_uniform_(tensor, gain=_gain(gain), generator=generator)


def glorot_normal(tensor: Tensor, gain: float = 1.0, generator: torch.Generator | None = None):
    r"""Glorot/Xavier normal :math:`N(0, g^2 \cdot 2/(m+n))` (Glorot & Bengio 2010), in place."""
    return nn.init.xavier_normal_(tensor, gain=_gain(gain), generator=generator)


def he_uniform(
    tensor: Tensor, gain: float = math.sqrt(2.0), generator: torch.Generator | None = None
):
    r"""He/Kaiming uniform :math:`U(\pm g\sqrt{3/m})`, :math:`g=\sqrt2` for ReLU, i.e.
    :math:`U(\pm\sqrt{6/m})` (He et al. 2015), in place."""
    bound = _gain(gain) * math.sqrt(3.0 / fans(tensor)[0])
    with torch.no_grad():
        return tensor.uniform_(-bound, bound, generator=generator)


def he_normal(
    tensor: Tensor, gain: float = math.sqrt(2.0), generator: torch.Generator | None = None
):
    r"""He/Kaiming normal :math:`N(0, g^2/m)`, :math:`g=\sqrt2` for ReLU (He et al. 2015), in
    place."""
    std = _gain(gain) / math.sqrt(fans(tensor)[0])
    with torch.no_grad():
        return tensor.normal_(0.0, std, generator=generator)


def torch_default(tensor: Tensor, gain: float = 1.0, generator: torch.Generator | None = None):
    r"""PyTorch's default for Linear/Conv weights, :math:`U(\pm 1/\sqrt{m})` (seed 004 eq. 2),
    times ``gain``, in place.

    (torch writes it as ``kaiming_uniform_(a=sqrt(5))``, whose bound
    :math:`\sqrt{2/(1+5)}\sqrt{3/m} = 1/\sqrt m`; seed 004 calls it He-uniform.)"""
    bound = _gain(gain) / math.sqrt(fans(tensor)[0])
    with torch.no_grad():
        return tensor.uniform_(-bound, bound, generator=generator)


def lecun_normal(
    tensor: Tensor,
    gain: float = 1.0,
    generator: torch.Generator | None = None,
    *,
    mode: str = "fan_in",
    rescale: bool = True,
):
    r"""LeCun truncated normal, the Flax/JAX default for Dense kernels (seed 004 eq. 3), in place.

    Seed 004: :math:`w \sim N(0, \sqrt{1/n})` (std :math:`\sigma=\sqrt{1/n}`) with values beyond
    :math:`2\sigma` redrawn. Flax's ``lecun_normal`` is
    ``variance_scaling(1.0, "fan_in", "truncated_normal")``: it takes ``n`` = fan-in (the seed's
    ``n`` names the output width in its own notation; ``mode="fan_out"`` gives that reading) and
    divides the std by :data:`TRUNCATED_NORMAL_STD` (0.8796, the std of N(0,1) truncated to
    :math:`\pm2`) so the *truncated* weights have variance exactly :math:`g^2/n`. Hence:

    * ``rescale=True`` (default, Flax): :math:`\sigma = g\sqrt{1/n}/0.8796`, values in
      :math:`[-2\sigma, 2\sigma]`, variance :math:`g^2/n`;
    * ``rescale=False`` (the seed's literal rule): :math:`\sigma = g\sqrt{1/n}`, values in
      :math:`[-2\sigma, 2\sigma]`, variance :math:`0.774\, g^2/n`.
    """
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fans(tensor)
    n = fan_in if mode == "fan_in" else fan_out
    std = _gain(gain) * math.sqrt(1.0 / n)
    if rescale:
        std /= TRUNCATED_NORMAL_STD
    return nn.init.trunc_normal_(
        tensor, mean=0.0, std=std, a=-2.0 * std, b=2.0 * std, generator=generator
    )


def orthogonal(tensor: Tensor, gain: float = 1.0, generator: torch.Generator | None = None):
    r"""(Semi-)orthogonal :math:`gQ` (Saxe et al. 2014; :func:`torch.nn.init.orthogonal_`): rows
    (or columns, whichever are fewer) of the flattened ``(out, -1)`` weight are orthonormal,
    times ``gain``."""
    return nn.init.orthogonal_(tensor, gain=_gain(gain), generator=generator)


def zeros(tensor: Tensor, gain: float = 1.0, generator: torch.Generator | None = None):
    """All zeros (``gain`` and ``generator`` are ignored), in place."""
    return nn.init.zeros_(tensor)


def constant(tensor: Tensor, value: float) -> Tensor:
    """Fill with ``value``, in place (for biases, e.g. a small positive ReLU bias)."""
    return nn.init.constant_(tensor, float(value))


SCHEMES: dict[str, Callable[..., Tensor]] = {
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "xavier_uniform": glorot_uniform,
    "xavier_normal": glorot_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
    "kaiming_uniform": he_uniform,
    "kaiming_normal": he_normal,
    "torch_default": torch_default,
    "lecun_normal": lecun_normal,
    "orthogonal": orthogonal,
    "zeros": zeros,
}

_DEFAULT_GAIN = {he_uniform: math.sqrt(2.0), he_normal: math.sqrt(2.0)}

_LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def resolve_gain(gain: float | str | tuple[str, float] | list | None, scheme: str) -> float:
    """The gain :func:`apply` uses: ``None`` -> the scheme's formula (1; sqrt(2) for He), a number
    > 0 as given, a nonlinearity's name (``"relu"`` -> sqrt(2), ``"tanh"`` -> 5/3, ``"selu"``,
    ...) or a ``(name, param)`` pair (``("leaky_relu", 0.2)``) -> its
    :func:`torch.nn.init.calculate_gain`."""
    if gain is None:
        return _DEFAULT_GAIN.get(SCHEMES[scheme], 1.0)
    if isinstance(gain, str) or (isinstance(gain, (tuple, list)) and len(gain) == 2):
        name, param = (gain, None) if isinstance(gain, str) else tuple(gain)
        try:
            return float(nn.init.calculate_gain(name, param))
        except ValueError as e:
            raise ValueError(
                f"gain {gain!r}: {e}; use a number > 0, a nonlinearity's name (e.g. 'relu', "
                "'tanh') or a pair such as ('leaky_relu', 0.2)"
            ) from None
    return _gain(gain)


def apply(
    model: nn.Module,
    scheme: str,
    gain: float | str | tuple[str, float] | None = None,
    bias: str | float | None = "zeros",
    *,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Initialize every Linear and Conv1d/2d/3d layer of ``model`` in place; returns ``model``.

    The weights follow the scheme's formula exactly (seed 004; module docstring): no activation
    gain unless one is asked for.

    Parameters
    ----------
    scheme : a name in :data:`SCHEMES` for the weights
    gain : ``None`` (default): the scheme's formula, gain 1 (He: its sqrt(2)). Opt-in: a number
        > 0, a nonlinearity's name (``"relu"`` -> sqrt(2), ``"tanh"`` -> 5/3) or a
        ``(name, param)`` pair (``("leaky_relu", 0.2)``), see :func:`resolve_gain`; it multiplies
        the std/bound (for He it replaces the sqrt(2), as ``torch.nn.init.kaiming_*_``)
    bias : ``"zeros"`` (default), a number (constant), ``"torch_default"``
        (:math:`U(\\pm1/\\sqrt m)` as PyTorch does) or ``None``/``"keep"`` to leave biases alone
    generator : a :class:`torch.Generator` for reproducible draws

    Other layers (normalization, embeddings, transposed convolutions) keep their own init.

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    >>> _ = apply(net, "glorot_uniform")  # U(+-sqrt(6 / (64 + 256))) for the first layer
    >>> _ = apply(net, "glorot_uniform", gain="relu")  # the same times sqrt(2)
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; known: {sorted(SCHEMES)}")
    fn = SCHEMES[scheme]
    g = resolve_gain(gain, scheme)
    if not (bias is None or bias in ("zeros", "keep", "torch_default")) and (
        isinstance(bias, bool) or not isinstance(bias, (int, float))
    ):
        raise ValueError(
            f"bias must be 'zeros', 'torch_default', 'keep', None or a number, got {bias!r}"
        )
    layers = [m for m in model.modules() if isinstance(m, _LAYER_TYPES)]
    if not layers:
        raise ValueError("init.apply found no Linear or Conv1d/2d/3d layer in the model")
    with torch.no_grad():
        for m in layers:
            if isinstance(m.weight, nn.parameter.UninitializedParameter):
                raise ValueError(f"layer {m} is lazy and not initialized yet; run a forward first")
            fn(m.weight, gain=g, generator=generator)
            if m.bias is None or bias is None or bias == "keep":
                continue
            if bias == "zeros":
                m.bias.zero_()
            elif bias == "torch_default":
                b = 1.0 / math.sqrt(fans(m.weight)[0])
                m.bias.uniform_(-b, b, generator=generator)
            else:
                m.bias.fill_(float(bias))
    return model
