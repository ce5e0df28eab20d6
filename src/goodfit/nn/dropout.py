"""The dropout family (seed 000 §1.1.4, seed 001 "Regularization - Dropout").

Torch's own layers are used where they match the notes: ``nn.Dropout`` (standard, inverted
scaling: train ``x * m / (1 - p)``, eval ``x``), ``nn.Dropout1d/2d/3d`` (spatial / channel
dropout, inverted), ``nn.AlphaDropout`` / ``nn.FeatureAlphaDropout``. This module adds what torch
lacks: classic scaling, Gaussian dropout in both parameterizations, additive Gaussian noise,
DropConnect, max-/average-pooling dropout and Max-Drop.

``p`` is always the probability of dropping a unit (see :mod:`goodfit.nn.functional`).

Alpha dropout (seed 000, "Alpha Dropout (for SELU activation function only)"): seed 000 sets a
dropped unit to SELU's negative saturation ``-lambda*alpha`` ("f(-inf) = -alpha") so that mean
and variance are kept. ``torch.nn.AlphaDropout`` does exactly that and then applies the affine
correction ``a * y + b`` of Klambauer et al. 2017 (which the notes' "keep unchanged mean and
variance" requires for zero-mean unit-variance inputs); it is re-exported unchanged here.

Examples
--------
>>> layer = make_dropout("gaussian", 0.3, dims=0)
>>> layer
GaussianDropout(p=0.3, convention=srivastava, std=0.6547)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

from goodfit.checks import check_choice, check_int, check_probability, check_real
from goodfit.nn import functional
from goodfit.nn.functional import check_dims

__all__ = [
    "DROPOUTS",
    "POOL_DROPOUTS",
    "AdditiveGaussianNoise",
    "AlphaDropout",
    "AvgPoolDropout",
    "ClassicDropout",
    "DropConnectConv2d",
    "DropConnectLinear",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Dropout3d",
    "FeatureAlphaDropout",
    "GaussianDropout",
    "MaxDrop",
    "MaxPoolDropout",
    "make_dropout",
    "make_pool_dropout",
]

# torch's layers, re-exported unchanged (identical outputs and gradients)
Dropout = nn.Dropout
Dropout1d = nn.Dropout1d
Dropout2d = nn.Dropout2d
Dropout3d = nn.Dropout3d
AlphaDropout = nn.AlphaDropout
FeatureAlphaDropout = nn.FeatureAlphaDropout


class ClassicDropout(nn.Module):
    """Dropout with the classic scaling (seed 000 §1.1.4; seed 001 "Test Phase").

    Train: ``y = x * m``, ``m ~ Bernoulli(1 - p)``; evaluation: ``y = (1 - p) x``.
    ``channelwise=True`` is seed 000's "2D Spatial Dropout" (one mask entry per sample and
    channel, input ``(N, C, *spatial)``) with its evaluation rule ``y * (1 - p)``.

    Parameters
    ----------
    p : float
        Drop probability in [0, 1).
    channelwise : bool
        Drop whole channels instead of single units.
    """

    def __init__(self, p: float = 0.5, *, channelwise: bool = False) -> None:
        super().__init__()
        self.p = check_probability("p", p, high_open=True)
        self.channelwise = bool(channelwise)

    def forward(self, x: Tensor) -> Tensor:
        return functional.classic_dropout(x, self.p, self.training, channelwise=self.channelwise)

    def extra_repr(self) -> str:
        return f"p={self.p}, channelwise={self.channelwise}"


class GaussianDropout(nn.Module):
    """Multiplicative Gaussian dropout: train ``y = x * m``, ``m ~ N(1, var)``; eval ``y = x``.

    ``var`` is set by exactly one of
    - ``p`` with ``convention="srivastava"``: ``var = p / (1 - p)`` (Srivastava et al. 2014);
    - ``p`` with ``convention="seed000"``: ``var = p (1 - p)`` (seed 000 §1.1.4 Gaussian Dropout);
    - ``sigma``: ``var = sigma^2`` (seed 001 "Gaussian Dropout Multiplicative N(1, sigma^2)").

    ``channelwise=True`` draws one factor per (sample, channel) (seed 000 writes it per channel).
    """

    def __init__(
        self,
        p: float | None = None,
        *,
        sigma: float | None = None,
        convention: str = "srivastava",
        channelwise: bool = False,
    ) -> None:
        super().__init__()
        check_choice("convention", convention, ("srivastava", "seed000"))
        if (p is None) == (sigma is None):
            raise ValueError(f"give exactly one of p or sigma, got p={p!r}, sigma={sigma!r}")
        self.p = None if p is None else check_probability("p", p, high_open=True)
        self.convention = convention
        self.std = (
            check_real("sigma", sigma, low=0.0)
            if sigma is not None
            else functional.gaussian_dropout_std(self.p, convention)
        )
        self.channelwise = bool(channelwise)

    def forward(self, x: Tensor) -> Tensor:
        return functional.gaussian_dropout(x, self.std, self.training, channelwise=self.channelwise)

    def extra_repr(self) -> str:
        head = (
            f"sigma={self.std}" if self.p is None else f"p={self.p}, convention={self.convention}"
        )
        s = f"{head}, std={self.std:.4g}"
        return s + (", channelwise=True" if self.channelwise else "")


class AdditiveGaussianNoise(nn.Module):
    """Additive Gaussian noise: train ``y = x + delta``, ``delta ~ N(0, sigma^2)``; eval ``y = x``.

    seed 001 "Gaussian Dropout Additive" and "Noise Robustness"; seed 000 §1.1.4 note
    ("Gaussian noises to each feature map").
    """

    def __init__(self, sigma: float = 0.1) -> None:
        super().__init__()
        self.sigma = check_real("sigma", sigma, low=0.0)

    def forward(self, x: Tensor) -> Tensor:
        return functional.additive_gaussian_noise(x, self.sigma, self.training)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


# --------------------------------------------------------------------------------------------------
# DropConnect
# --------------------------------------------------------------------------------------------------
def _check_dropconnect(scale: str, inference: str, num_samples: int) -> None:
    check_choice("scale", scale, ("inverted", "classic"))
    check_choice("inference", inference, ("mean", "moment_matching"))
    check_int("num_samples", num_samples, low=1)


class DropConnectLinear(nn.Linear):
    """Linear layer with DropConnect (Wan et al. 2013; seed 001 "Some Variations: DropConnect").

    Train: ``y = f((M * W) x + b)``, ``M ~ Bernoulli(1 - p)`` on the weights (bias kept), one
    mask per forward call (per mini-batch; the paper draws one per example, which costs a
    weight-sized mask per sample). ``scale="inverted"`` divides the mask by ``1 - p``.

    Inference: ``"mean"`` (default) uses the mean weights ``E[M] W`` (``W`` when inverted,
    ``(1 - p) W`` when classic) - the usual deterministic approximation, exact in expectation
    for the pre-activation. ``"moment_matching"`` is the paper's inference rule (Alg. 2):
    each unit's pre-activation is approximated by ``N(E[u], Var[u])`` with
    ``Var[u] = p(1-p)/c^2 (W*W)(x*x)`` and the output is the mean of ``f`` over ``num_samples``
    draws; it only differs from "mean" through the non-linearity ``activation`` (which is then
    applied inside the layer, in training too).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        p: float = 0.5,
        scale: str = "inverted",
        inference: str = "mean",
        activation: Callable[[Tensor], Tensor] | None = None,
        num_samples: int = 64,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self.p = check_probability("p", p, high_open=True)
        _check_dropconnect(scale, inference, num_samples)
        self.scale, self.inference, self.num_samples = scale, inference, num_samples
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        return functional.dropconnect_linear(
            x, self.weight, self.bias, self.p, self.training, scale=self.scale,
            inference=self.inference, activation=self.activation, num_samples=self.num_samples,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}, scale={self.scale}, inference={self.inference}"


class DropConnectConv2d(nn.Conv2d):
    """2-D convolution with DropConnect on the kernel (see :class:`DropConnectLinear`)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        *,
        p: float = 0.5,
        scale: str = "inverted",
        inference: str = "mean",
        activation: Callable[[Tensor], Tensor] | None = None,
        num_samples: int = 64,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            device=device, dtype=dtype,
        )  # fmt: skip
        if self.padding_mode != "zeros":  # pragma: no cover - constructor default
            raise ValueError("DropConnectConv2d supports padding_mode='zeros' only")
        self.p = check_probability("p", p, high_open=True)
        _check_dropconnect(scale, inference, num_samples)
        self.scale, self.inference, self.num_samples = scale, inference, num_samples
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        return functional.dropconnect_conv2d(
            x, self.weight, self.bias, self.p, self.training, stride=self.stride,
            padding=self.padding, dilation=self.dilation, groups=self.groups, scale=self.scale,
            inference=self.inference, activation=self.activation, num_samples=self.num_samples,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}, scale={self.scale}, inference={self.inference}"


# --------------------------------------------------------------------------------------------------
# pooling dropout
# --------------------------------------------------------------------------------------------------
def _check_pool(kernel_size, stride, dims: int) -> None:
    check_dims(dims, (1, 2, 3))
    functional._ntuple(kernel_size, dims, "kernel_size")
    if stride is not None:
        functional._ntuple(stride, dims, "stride")


class _PoolBase(nn.Module):
    """A pooling layer with dropout: checks the input's layout, then ``_pool(x)``."""

    def __init__(self, kernel_size, stride, dims: int) -> None:
        super().__init__()
        _check_pool(kernel_size, stride, dims)
        self.kernel_size, self.stride, self.dims = kernel_size, stride, dims

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != self.dims + 2:
            raise ValueError(
                f"{type(self).__name__}(dims={self.dims}) expects a {self.dims + 2}-D input "
                f"(N, C, *spatial), got shape {tuple(x.shape)}"
            )
        return self._pool(x)

    def _pool(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class _BernoulliPoolDropout(_PoolBase):
    """Pooling with a Bernoulli mask of drop rate ``p`` and one rule, the attribute named
    ``_rule``: the shared body of :class:`MaxPoolDropout` and :class:`AvgPoolDropout`."""

    _rule: str

    def __init__(self, p: float, kernel_size, stride, dims: int) -> None:
        super().__init__(kernel_size, stride, dims)
        self.p = check_probability("p", p, high_open=True)

    def extra_repr(self) -> str:
        return (
            f"p={self.p}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"dims={self.dims}, {self._rule}={getattr(self, self._rule)}"
        )


class MaxPoolDropout(_BernoulliPoolDropout):
    """Max-pooling dropout (seed 000 §1.1.4 "Pooling Dropout"; Wu & Gu 2015).

    Train: ``y = max{pool_size(x) * M}``, ``M`` kept w.p. ``1 - p`` (mask before the max).
    Evaluation: ``y = (1 - p) max{pool_size(x)}`` (seed 000, ``eval_rule="scaled"``), or Wu &
    Gu's probabilistic weighted pooling (``eval_rule="probabilistic"``), the exact training
    expectation for non-negative inputs. See :func:`goodfit.nn.functional.max_pool_dropout`.
    """

    _rule = "eval_rule"

    def __init__(
        self,
        p: float = 0.5,
        kernel_size: int | Sequence[int] = 2,
        stride: int | Sequence[int] | None = None,
        *,
        dims: int = 2,
        eval_rule: str = "scaled",
    ) -> None:
        super().__init__(p, kernel_size, stride, dims)
        self.eval_rule = check_choice("eval_rule", eval_rule, ("scaled", "probabilistic"))

    def _pool(self, x: Tensor) -> Tensor:
        return functional.max_pool_dropout(
            x, self.p, self.kernel_size, self.stride, self.training, eval_rule=self.eval_rule
        )


class AvgPoolDropout(_BernoulliPoolDropout):
    """Average-pooling dropout (seed 000 §1.1.4 "Pooling Dropout").

    Train: mean over the window of ``x * M`` (``M / (1 - p)`` with ``scale="inverted"``, the
    default, so that seed 000's evaluation rule - the plain average - is the expectation);
    ``scale="classic"``: unscaled mask in training, ``(1 - p) * avg`` at evaluation.
    """

    _rule = "scale"

    def __init__(
        self,
        p: float = 0.5,
        kernel_size: int | Sequence[int] = 2,
        stride: int | Sequence[int] | None = None,
        *,
        dims: int = 2,
        scale: str = "inverted",
    ) -> None:
        super().__init__(p, kernel_size, stride, dims)
        self.scale = check_choice("scale", scale, ("inverted", "classic"))

    def _pool(self, x: Tensor) -> Tensor:
        return functional.avg_pool_dropout(
            x, self.p, self.kernel_size, self.stride, self.training, scale=self.scale
        )


class MaxDrop(_PoolBase):
    """Max-Drop (seed 000 §1.1.4 "Pooling Dropout", normal distribution).

    Train: ``y = max{pool_size(x) * M}``, ``M ~ N(mu, sigma^2)``; evaluation:
    ``y = mu * max{pool_size(x)}``. The defaults used by :func:`make_pool_dropout` for a drop
    rate ``p`` are ``mu = 1 - p``, ``sigma = sqrt(p (1 - p))``: the mean and standard deviation
    of the Bernoulli keep-mask of :class:`MaxPoolDropout`, so both share the (1 - p) max
    evaluation rule.
    """

    def __init__(
        self,
        kernel_size: int | Sequence[int] = 2,
        stride: int | Sequence[int] | None = None,
        *,
        mu: float = 1.0,
        sigma: float = 0.5,
        dims: int = 2,
    ) -> None:
        super().__init__(kernel_size, stride, dims)
        self.mu = check_real("mu", mu, low=0.0, low_open=True)
        self.sigma = check_real("sigma", sigma, low=0.0)

    def _pool(self, x: Tensor) -> Tensor:
        return functional.max_drop(
            x, self.mu, self.sigma, self.kernel_size, self.stride, self.training
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, mu={self.mu}, "
            f"sigma={self.sigma}, dims={self.dims}"
        )


# --------------------------------------------------------------------------------------------------
# factories and registries (config layer)
# --------------------------------------------------------------------------------------------------
def _standard(p: float, *, dims: int, inplace: bool = False) -> nn.Module:
    return nn.Dropout(check_probability("p", p, high_open=True), inplace=inplace)


def _classic(p: float, *, dims: int) -> nn.Module:
    return ClassicDropout(p)


def _spatial(p: float, *, dims: int, scale: str = "inverted") -> nn.Module:
    check_dims(dims, (1, 2, 3))
    check_choice("scale", scale, ("inverted", "classic"))
    if scale == "classic":
        return ClassicDropout(p, channelwise=True)
    return (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)[dims - 1](
        check_probability("p", p, high_open=True)
    )


def _gaussian(p: float, *, dims: int, channelwise: bool = False) -> nn.Module:
    return GaussianDropout(p, convention="srivastava", channelwise=channelwise)


def _gaussian_seed000(p: float, *, dims: int, channelwise: bool = False) -> nn.Module:
    return GaussianDropout(p, convention="seed000", channelwise=channelwise)


def _additive_gaussian(p: float | None = None, *, dims: int, sigma: float | None = None):
    if p is not None and sigma is not None:
        raise ValueError(
            f"additive_gaussian takes sigma (or p read as sigma), got both {p}, {sigma}"
        )
    s = sigma if sigma is not None else p
    if s is None:
        raise ValueError("additive_gaussian needs sigma")
    return AdditiveGaussianNoise(s)


def _alpha(p: float, *, dims: int, channelwise: bool = False) -> nn.Module:
    return (nn.FeatureAlphaDropout if channelwise else nn.AlphaDropout)(
        check_probability("p", p, high_open=True)
    )


#: name -> factory ``(p, *, dims, **kwargs) -> nn.Module`` (unknown kwargs raise TypeError)
DROPOUTS: dict[str, Callable[..., nn.Module]] = {
    "standard": _standard,
    "classic": _classic,
    "spatial": _spatial,
    "gaussian": _gaussian,
    "gaussian_seed000": _gaussian_seed000,
    "additive_gaussian": _additive_gaussian,
    "alpha": _alpha,
}


def make_dropout(kind: str, p: float | None = None, *, dims: int, **kwargs) -> nn.Module:
    """Build a dropout layer by name for the model builders and the config layer.

    Parameters
    ----------
    kind : str
        One of ``DROPOUTS``: "standard" (torch ``nn.Dropout``, inverted), "classic" (eval
        ``(1 - p) x``), "spatial" (channel dropout, torch ``nn.Dropout1d/2d/3d``; ``dims`` 1-3;
        ``scale="classic"`` for seed 000's eval rule), "gaussian" (``N(1, p/(1-p))``),
        "gaussian_seed000" (``N(1, p(1-p))``), "additive_gaussian" (``N(0, sigma^2)``; ``sigma``
        kwarg, or ``p`` read as sigma), "alpha" (torch ``nn.AlphaDropout``;
        ``channelwise=True`` for ``nn.FeatureAlphaDropout``).
    p : float
        Drop probability in [0, 1).
    dims : int
        Spatial dims of the input: 0 for (N, F), 1 for (N, C, L), 2 for (N, C, H, W), 3.

    Examples
    --------
    >>> make_dropout("spatial", 0.2, dims=2)
    Dropout2d(p=0.2, inplace=False)
    """
    if kind not in DROPOUTS:
        raise ValueError(f"unknown dropout kind {kind!r}; allowed: {sorted(DROPOUTS)}")
    check_dims(dims)
    if p is None and kind != "additive_gaussian":
        raise ValueError(f"dropout kind {kind!r} needs p in [0, 1)")
    return DROPOUTS[kind](p, dims=dims, **kwargs)


def _max_pool_dropout(p: float, kernel_size=2, *, dims: int = 2, stride=None, eval_rule="scaled"):
    return MaxPoolDropout(p, kernel_size, stride, dims=dims, eval_rule=eval_rule)


def _avg_pool_dropout(p: float, kernel_size=2, *, dims: int = 2, stride=None, scale="inverted"):
    return AvgPoolDropout(p, kernel_size, stride, dims=dims, scale=scale)


def _max_drop(p: float, kernel_size=2, *, dims: int = 2, stride=None, mu=None, sigma=None):
    p = check_probability("p", p, high_open=True)
    mu = 1.0 - p if mu is None else mu
    sigma = (p * (1.0 - p)) ** 0.5 if sigma is None else sigma
    return MaxDrop(kernel_size, stride, mu=mu, sigma=sigma, dims=dims)


#: name -> factory ``(p, kernel_size, *, dims, **kwargs) -> nn.Module`` (replacements for MaxPool)
POOL_DROPOUTS: dict[str, Callable[..., nn.Module]] = {
    "max_pool_dropout": _max_pool_dropout,
    "avg_pool_dropout": _avg_pool_dropout,
    "max_drop": _max_drop,
}


def make_pool_dropout(
    kind: str, p: float, kernel_size: int | Sequence[int] = 2, dims: int = 2, **kwargs
) -> nn.Module:
    """Build a pooling-dropout layer (a drop-in replacement for ``MaxPool{dims}d(kernel_size)``).

    kinds: "max_pool_dropout" (:class:`MaxPoolDropout`; kwargs ``stride``, ``eval_rule``),
    "avg_pool_dropout" (:class:`AvgPoolDropout`; ``stride``, ``scale``), "max_drop"
    (:class:`MaxDrop`; ``mu`` default ``1 - p``, ``sigma`` default ``sqrt(p(1-p))``, ``stride``).

    Examples
    --------
    >>> make_pool_dropout("max_pool_dropout", 0.25, 2, dims=2)
    MaxPoolDropout(p=0.25, kernel_size=2, stride=None, dims=2, eval_rule=scaled)
    """
    if kind not in POOL_DROPOUTS:
        raise ValueError(f"unknown pool dropout kind {kind!r}; allowed: {sorted(POOL_DROPOUTS)}")
    check_dims(dims, (1, 2, 3))
    return POOL_DROPOUTS[kind](p, kernel_size, dims=dims, **kwargs)
