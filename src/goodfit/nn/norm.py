"""The normalization family (seed 000 §1.1.5, seed 001 "Batch Normalization", seed 002 BatchNorm).

Torch's layers are used as they are: ``nn.BatchNorm1d/2d/3d``, ``nn.LayerNorm``,
``nn.GroupNorm``, ``nn.InstanceNorm1d/2d/3d`` and spectral normalization
(``torch.nn.utils.parametrizations.spectral_norm``, re-exported as :func:`spectral_norm`). This
module adds Switchable Normalization, weight standardization and one BatchNorm variant.

BatchNorm conventions
---------------------
*Momentum.* Seed 000 updates the running statistics as
``mu_new = (1 - w) mu_current + w * mu_B`` ("w is the moment of exponential averaging"): that
``w`` is exactly torch's ``momentum`` (default 0.1). Seed 001 writes the same average with the
weight on the *old* value, ``mu(t) = lambda mu(t-1) + (1 - lambda) mu_B``, ``lambda ~ 0.95``,
so ``momentum = 1 - lambda`` (Keras' ``momentum`` argument is seed 001's ``lambda``).

*Inference variance.* Torch normalizes a training batch with the biased variance (1/m) but
stores the *unbiased* one, ``m/(m-1) sigma_B^2``, in ``running_var``: that is seed 001's
"Var[x] <- m/(m-1) E_B[sigma_B^2]" (the m/(m-1) factor commutes with the average), so
``make_norm("batch", ...)`` is torch's layer unchanged. Seed 000 writes the running variance
with the biased 1/m batch variance; ``make_norm("batch", ..., running_var="biased")`` gives
:class:`BiasedVarBatchNorm`, identical to torch's except for that update.

Layer norm on images: ``make_norm("layer", C, dims>=1)`` is ``nn.GroupNorm(1, C)``, i.e. the
statistics over (C, *spatial) of each sample (seed 000: "normalizing the through-channels
statistics") with a per-channel affine, since the spatial size is unknown when the model is
built. For feature vectors (dims=0) it is ``nn.LayerNorm(F)``.

Examples
--------
>>> make_norm("group", 64, dims=2, groups=8)
GroupNorm(8, 64, eps=1e-05, affine=True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.parametrizations import spectral_norm

from goodfit.checks import check_choice, check_int, check_probability, check_real
from goodfit.nn import functional
from goodfit.nn.functional import check_dims

__all__ = [
    "NORMS",
    "BiasedVarBatchNorm",
    "SwitchableNorm",
    "WSConv1d",
    "WSConv2d",
    "WSLinear",
    "make_norm",
    "spectral_norm",
    "weight_standardized",
]


def _momentum_or_none(momentum: float | None) -> float | None:
    """torch's BatchNorm ``momentum`` (seed 000's ``w``): in [0, 1], or None (cumulative mean)."""
    return None if momentum is None else check_probability("momentum", momentum)


# --------------------------------------------------------------------------------------------------
# BatchNorm with seed 000's biased running variance
# --------------------------------------------------------------------------------------------------
class BiasedVarBatchNorm(_BatchNorm):
    """Torch's BatchNorm with seed 000's running-variance update (seed 000 §1.1.5).

    Training normalizes exactly as ``nn.BatchNorm{dims}d``; the running variance is updated
    with the biased batch variance, ``sigma2_new = (1 - w) sigma2_current + w (1/m) sum (y -
    mu_B)^2``, instead of torch's unbiased ``m/(m-1)`` one. ``momentum`` is seed 000's ``w``
    (``None`` = cumulative average, as in torch). ``dims`` is the number of spatial dims (0 or 1
    accept (N, C) / (N, C, L), like ``BatchNorm1d``).
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        dims: int = 2,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            check_int("num_features", num_features, low=1), check_real("eps", eps, low=0.0),
            _momentum_or_none(momentum), affine, track_running_stats, device=device, dtype=dtype,
        )  # fmt: skip
        self.dims = check_dims(dims)

    def _check_input_dim(self, input: Tensor) -> None:
        ok = (2, 3) if self.dims <= 1 else (self.dims + 2,)
        if input.dim() not in ok:
            raise ValueError(f"expected {' or '.join(map(str, ok))}-D input, got {input.dim()}-D")

    def forward(self, input: Tensor) -> Tensor:
        if not (self.training and self.track_running_stats and self.running_var is not None):
            return super().forward(input)
        self._check_input_dim(input)
        self.num_batches_tracked.add_(1)
        w = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        # torch's op updates a copy with r = (1 - w) r + w * m/(m-1) s2 (and saves it for
        # backward, so the copy is never touched again); we then store (1 - w) r + w * s2.
        torch_var = self.running_var.clone()
        out = F.batch_norm(
            input, self.running_mean, torch_var, self.weight, self.bias, True, w, self.eps
        )
        m = input.numel() // input.shape[1]
        with torch.no_grad():
            keep = self.running_var * (1.0 - w)
            self.running_var.copy_((torch_var - keep) * ((m - 1) / m) + keep)
        return out

    def extra_repr(self) -> str:
        return super().extra_repr() + f", dims={self.dims}, running_var=biased"


# --------------------------------------------------------------------------------------------------
# Switchable Normalization
# --------------------------------------------------------------------------------------------------
class SwitchableNorm(nn.Module):
    """Switchable Normalization (seed 000 §1.1.5 "Switchable Norm"; Luo et al. 2019).

    ``y = gamma (x - sum_k w_k mu_k) / sqrt(sum_k w'_k sigma2_k + eps) + beta`` over the
    instance, layer and batch statistics ``k in {in, ln, bn}``, with learned importance weights
    ``w = softmax(mean_weight)``, ``w' = softmax(var_weight)`` (separate for means and
    variances, initialised uniform). The batch statistics have running averages (torch's
    BatchNorm convention: ``momentum``, unbiased running variance) used at evaluation; instance
    and layer statistics are always computed from the input.

    Parameters
    ----------
    num_features : int
        Channels C of an (N, C, *spatial) input (features F of an (N, F) input).
    dims : int
        Spatial dims; for ``dims=0`` (feature vectors) the instance statistic does not exist and
        ``components`` defaults to ("ln", "bn").
    components : sequence of str, optional
        Subset of ("in", "ln", "bn") to mix.

    Examples
    --------
    >>> sn = SwitchableNorm(16, dims=2)
    >>> sn(torch.randn(8, 16, 5, 5)).shape
    torch.Size([8, 16, 5, 5])
    """

    def __init__(
        self,
        num_features: int,
        *,
        dims: int = 2,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        components: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.num_features = check_int("num_features", num_features, low=1)
        self.dims = check_dims(dims)
        self.eps = check_real("eps", eps, low=0.0)
        self.momentum = check_probability("momentum", momentum)
        if components is None:
            components = ("in", "ln", "bn") if dims > 0 else ("ln", "bn")
        components = tuple(components)
        if not components or len(set(components)) != len(components):
            raise ValueError(f"components must be distinct, non-empty, got {components!r}")
        for c in components:
            check_choice("components", c, ("in", "ln", "bn"))
        if dims == 0 and "in" in components:
            raise ValueError("components cannot contain 'in' for dims=0 (no spatial dims)")
        self.components = components
        k = len(components)
        self.mean_weight = nn.Parameter(torch.zeros(k))
        self.var_weight = nn.Parameter(torch.zeros(k))
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.track_running_stats = bool(track_running_stats)
        if self.track_running_stats and "bn" in components:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)

    def forward(self, x: Tensor) -> Tensor:
        expected = 2 if self.dims == 0 else self.dims + 2
        if x.dim() != expected or x.shape[1] != self.num_features:
            raise ValueError(
                f"SwitchableNorm(num_features={self.num_features}, dims={self.dims}) expects "
                f"(N, {self.num_features}{', *spatial' if self.dims else ''}) with "
                f"{expected} dims, got shape {tuple(x.shape)}"
            )
        use_batch = self.training or self.running_mean is None
        return functional.switchable_norm(
            x, self.mean_weight, self.var_weight, self.weight, self.bias,
            self.running_mean, self.running_var, use_batch, momentum=self.momentum,
            eps=self.eps, components=self.components,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, dims={self.dims}, components={self.components}, "
            f"eps={self.eps}, momentum={self.momentum}, affine={self.weight is not None}"
        )


# --------------------------------------------------------------------------------------------------
# Weight Standardization
# --------------------------------------------------------------------------------------------------
class _WSMixin:
    eps: float

    def standardized_weight(self) -> Tensor:
        """The weight used in forward: ``(W - mu_i) / (sigma_i + eps)`` per output channel."""
        return functional.standardize_weight(self.weight, self.eps)  # type: ignore[attr-defined]


class WSLinear(_WSMixin, nn.Linear):
    """Linear layer with weight standardization (seed 000 "Weight Standardization").

    ``y = W_hat x + b`` with ``W_hat[i, :] = (W[i, :] - mu_i) / (sigma_i + eps)``, per output
    unit, biased sigma, no affine on the weights (a following norm layer rescales).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, eps: float = 1e-5,
                 device=None, dtype=None) -> None:  # fmt: skip
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self.eps = check_real("eps", eps, low=0.0)

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.standardized_weight(), self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", eps={self.eps}"


def _ws_conv(base: type[nn.Module], n: int) -> type[nn.Module]:
    class WSConv(_WSMixin, base):  # type: ignore[misc, valid-type]
        def __init__(self, *args, eps: float = 1e-5, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.eps = check_real("eps", eps, low=0.0)

        def forward(self, x: Tensor) -> Tensor:
            return self._conv_forward(x, self.standardized_weight(), self.bias)

        def extra_repr(self) -> str:
            return super().extra_repr() + f", eps={self.eps}"

    WSConv.__name__ = WSConv.__qualname__ = f"WSConv{n}d"
    WSConv.__doc__ = (
        f'``nn.Conv{n}d`` with weight standardization (seed 000 "Weight Standardization"):\n'
        "each output channel's kernel is standardized over its fan-in ``C_in/groups * prod(k)``,\n"
        "``W_hat = (W - mu_i) / (sigma_i + eps)`` (biased sigma), no affine on the weights.\n"
        "Same constructor as torch's plus the keyword ``eps`` (default 1e-5)."
    )
    return WSConv


WSConv1d = _ws_conv(nn.Conv1d, 1)
WSConv2d = _ws_conv(nn.Conv2d, 2)
WSConv3d = _ws_conv(nn.Conv3d, 3)
__all__ += ["WSConv3d"]

_WS_OF: dict[type, type] = {
    nn.Linear: WSLinear, nn.Conv1d: WSConv1d, nn.Conv2d: WSConv2d, nn.Conv3d: WSConv3d,
}  # fmt: skip


def weight_standardized(module: nn.Module, *, eps: float = 1e-5) -> nn.Module:
    """Return the weight-standardized twin of a ``nn.Linear`` / ``nn.Conv1d/2d/3d``.

    The new module (:class:`WSLinear`, :class:`WSConv2d`, ...) *shares* the given module's
    weight and bias parameters and has the same hyperparameters.

    Examples
    --------
    >>> weight_standardized(nn.Conv2d(3, 8, 3))
    WSConv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), eps=1e-05)
    """
    cls = _WS_OF.get(type(module))
    if cls is None:
        raise ValueError(
            f"weight_standardized expects nn.Linear or nn.Conv1d/2d/3d, got {type(module).__name__}"
        )
    w = module.weight
    if isinstance(module, nn.Linear):
        new = cls(module.in_features, module.out_features, module.bias is not None, eps=eps,
                  device=w.device, dtype=w.dtype)  # fmt: skip
    else:
        new = cls(
            module.in_channels, module.out_channels, module.kernel_size, module.stride,
            module.padding, module.dilation, module.groups, module.bias is not None,
            module.padding_mode, eps=eps, device=w.device, dtype=w.dtype,
        )  # fmt: skip
    new.weight = module.weight
    new.bias = module.bias
    return new


# --------------------------------------------------------------------------------------------------
# factory and registry
# --------------------------------------------------------------------------------------------------
_BN = {0: nn.BatchNorm1d, 1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_IN = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}


def _batch(num_features: int, *, dims: int, running_var: str = "unbiased", **kwargs) -> nn.Module:
    check_choice("running_var", running_var, ("unbiased", "biased"))
    _momentum_or_none(kwargs.get("momentum"))
    if "eps" in kwargs:
        check_real("eps", kwargs["eps"], low=0.0)
    if running_var == "biased":
        return BiasedVarBatchNorm(num_features, dims=dims, **kwargs)
    return _BN[dims](check_int("num_features", num_features, low=1), **kwargs)


def _layer(num_features: int, *, dims: int, eps: float = 1e-5, affine: bool = True) -> nn.Module:
    check_int("num_features", num_features, low=1)
    if dims == 0:
        return nn.LayerNorm(
            num_features, eps=check_real("eps", eps, low=0.0), elementwise_affine=affine
        )
    return nn.GroupNorm(1, num_features, eps=check_real("eps", eps, low=0.0), affine=affine)


def _instance(num_features: int, *, dims: int, affine: bool = True, **kwargs) -> nn.Module:
    if dims == 0:
        raise ValueError("instance norm needs spatial dims (dims >= 1); use 'layer' for (N, F)")
    if "eps" in kwargs:
        check_real("eps", kwargs["eps"], low=0.0)
    return _IN[dims](check_int("num_features", num_features, low=1), affine=affine, **kwargs)


def _default_groups(c: int) -> int:
    # largest divisor <= 32 leaving >= 2 channels per group (Wu & He 2018 use G = 32)
    return max(g for g in range(1, min(32, max(1, c // 2)) + 1) if c % g == 0)


def _group(num_features: int, *, dims: int, groups: int | None = None, eps: float = 1e-5,
           affine: bool = True) -> nn.Module:  # fmt: skip
    c = check_int("num_features", num_features, low=1)
    g = _default_groups(c) if groups is None else groups
    if isinstance(g, bool) or not isinstance(g, int) or g < 1 or c % g:
        raise ValueError(f"groups must be a positive divisor of num_features={c}, got {g!r}")
    return nn.GroupNorm(g, c, eps=check_real("eps", eps, low=0.0), affine=affine)


def _switchable(num_features: int, *, dims: int, **kwargs) -> nn.Module:
    return SwitchableNorm(num_features, dims=dims, **kwargs)


#: name -> factory ``(num_features, *, dims, **kwargs) -> nn.Module``
NORMS: dict[str, Callable[..., nn.Module]] = {
    "batch": _batch,
    "layer": _layer,
    "instance": _instance,
    "group": _group,
    "switchable": _switchable,
}


def make_norm(kind: str, num_features: int, *, dims: int, **kwargs) -> nn.Module:
    """Build a normalization layer by name for the model builders and the config layer.

    Parameters
    ----------
    kind : str
        "batch" (torch ``nn.BatchNorm1d/2d/3d``; ``running_var="biased"`` for seed 000's update),
        "layer" (``nn.LayerNorm(F)`` for dims 0, ``nn.GroupNorm(1, C)`` otherwise), "instance"
        (``nn.InstanceNorm{dims}d(C, affine=True)``, dims >= 1), "group" (``nn.GroupNorm``;
        ``groups`` kwarg, default the largest divisor of C that is <= 32
        and <= C/2), "switchable"
        (:class:`SwitchableNorm`).
    num_features : int
        F for (N, F) inputs, C for (N, C, *spatial).
    dims : int
        0 for (N, F); 1, 2, 3 for (N, C, L), (N, C, H, W), (N, C, D, H, W).
    """
    if kind not in NORMS:
        raise ValueError(f"unknown norm kind {kind!r}; allowed: {sorted(NORMS)}")
    check_dims(dims)
    return NORMS[kind](num_features, dims=dims, **kwargs)
