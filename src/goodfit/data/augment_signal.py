"""Batched augmentation of 1-D signals (N, C, L), e.g. MNIST-1D.

The ops are batched torch versions of the transforms the ``mnist1d`` package uses to generate
its data set (``mnist1d.transform``: ``translate``, ``scale``, ``corr_noise_like``,
``iid_noise_like``, ``shear``, ``pad`` + ``interpolate``), which are numpy, one sample at a time
and driven by numpy's global RNG, so they cannot run on a batch, on the device or from the run's
torch seed. Each op has a deterministic functional twin (``shift_signal``, ``trend``,
``gaussian_filter1d``, ``stretch_signal``) that the tests compare with ``mnist1d``/scipy.

Randomness: the global torch RNG, as for every op (:mod:`goodfit.data.augment_base`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from goodfit.checks import check_bool, check_int, check_real
from goodfit.data.augment_base import Augmentation, check_range, sample_mask

__all__ = [
    "AmplitudeScale",
    "CorrelatedNoise",
    "Crop1d",
    "Shift",
    "TimeStretch",
    "Trend",
    "WhiteNoise",
    "gaussian_filter1d",
    "shift_signal",
    "stretch_signal",
    "trend",
]


# ----------------------------------------------------------------------------- functional twins
def shift_signal(x: Tensor, shifts: Tensor, circular: bool = True) -> Tensor:
    """Shift each sample of ``x`` (N, C, L) right by ``shifts[i]`` steps (negative: left).

    ``circular=True`` is ``torch.roll`` per sample (= ``mnist1d.transform.translate`` for
    ``k >= 0``); ``circular=False`` fills the vacated steps with zeros (crop of a zero-padded
    signal).
    """
    length = x.shape[-1]
    src = torch.arange(length, device=x.device) - shifts.to(x.device).long().view(-1, 1)  # (N, L)
    if circular:
        return x.gather(-1, src.remainder(length)[:, None, :].expand_as(x))
    valid = (src >= 0) & (src < length)
    out = x.gather(-1, src.clamp(0, length - 1)[:, None, :].expand_as(x))
    return out * valid[:, None, :].to(x.dtype)


def trend(x: Tensor, coeff: Tensor) -> Tensor:
    """Subtract a linear ramp: ``x - coeff[i] * linspace(-0.5, 0.5, L)``.

    ``mnist1d.transform.shear`` (there with ``coeff = scale * (U(0, 1) - 0.5)``).
    """
    ramp = torch.linspace(-0.5, 0.5, x.shape[-1], device=x.device, dtype=x.dtype)
    return x - coeff.to(x.dtype).view(-1, 1, 1) * ramp


def gaussian_filter1d(x: Tensor, sigma: float, truncate: float = 4.0) -> Tensor:
    """Gaussian smoothing along the last axis, ``scipy.ndimage.gaussian_filter1d`` with its
    defaults (``mode='reflect'``: the edge sample is repeated, radius ``int(truncate*sigma+0.5)``).
    ``mnist1d.transform.corr_noise_like`` is this filter (sigma 2) applied to white noise."""
    radius = int(truncate * float(sigma) + 0.5)
    if radius == 0:
        return x
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    w = torch.exp(-0.5 * (t / sigma) ** 2)
    w = w / w.sum()
    shape = x.shape
    flat = x.reshape(-1, 1, shape[-1])
    length = shape[-1]
    # 'reflect' in scipy = symmetric padding (d c b a | a b c d | d c b a), repeated if short
    idx = torch.arange(-radius, length + radius, device=x.device)
    period = 2 * length
    idx = idx.remainder(period)
    idx = torch.where(idx >= length, period - 1 - idx, idx)
    padded = flat[..., idx]
    return F.conv1d(padded, w.view(1, 1, -1)).reshape(shape)


def stretch_signal(x: Tensor, factors: Tensor) -> Tensor:
    """Dilate each sample in time by ``factors[i]`` about the centre:
    ``out(t) = x(c + (t - c) / s)``,
    ``c = (L - 1) / 2``, with ``x`` linearly interpolated and extended by zeros. The time scaling of
    ``mnist1d.transform`` (``pad`` + ``interpolate``) in centred form."""
    length = x.shape[-1]
    pos = torch.linspace(-1.0, 1.0, length, device=x.device, dtype=x.dtype)
    gx = pos / factors.to(x.dtype).view(-1, 1)  # (N, L) normalised source positions
    grid = torch.stack([gx, torch.zeros_like(gx)], -1)[:, None]  # (N, 1, L, 2)
    out = F.grid_sample(
        x[:, :, None, :], grid, mode="bilinear", padding_mode="zeros", align_corners=True
    )
    return out[:, :, 0, :]


def _where(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    return torch.where(mask.view(-1, *([1] * (a.ndim - 1))), a, b)


# ----------------------------------------------------------------------------- random ops
class Shift(Augmentation):
    """Shift / roll by ``k ~ U{-max_shift, ..., max_shift}`` steps per sample.

    Seed 000 "Shift of data"; ``mnist1d.transform.translate`` (circular, ``max_translation``).
    ``circular=False`` fills with zeros instead of wrapping around.
    """

    name = "shift"
    dims = (1,)

    def __init__(self, max_shift: int = 5, circular: bool = True, p: float = 1.0) -> None:
        super().__init__(p)
        self.max_shift = check_int(f"{self.name}: max_shift", max_shift, low=0)
        self.circular = check_bool(f"{self.name}: circular", circular)

    def apply(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        k = torch.randint(-self.max_shift, self.max_shift + 1, (n,), device=x.device)
        k = torch.where(sample_mask(n, self.p, x.device), k, torch.zeros_like(k))
        return shift_signal(x, k, self.circular)

    def _params(self) -> dict[str, Any]:
        return {"max_shift": self.max_shift, "circular": self.circular, "p": self.p}


class Crop1d(Shift):
    """Random crop of length L from the signal zero-padded by ``padding`` on both sides
    (random crop/pad): a zero-filled shift by ``k ~ U{-padding, ..., padding}``."""

    name = "crop"

    def __init__(self, padding: int = 4, p: float = 1.0) -> None:
        super().__init__(max_shift=check_int("crop: padding", padding, low=0), circular=False, p=p)

    def _params(self) -> dict[str, Any]:
        return {"padding": self.max_shift, "p": self.p}


class AmplitudeScale(Augmentation):
    """Amplitude scaling ``x * (1 + coeff * (u - 1/2))``, ``u ~ U(0, 1)`` per sample
    (``mnist1d.transform``: ``new_x *= 1 + args.scale_coeff * (np.random.rand() - 0.5)``)."""

    name = "amplitude_scale"
    dims = (1,)

    def __init__(self, coeff: float = 0.4, p: float = 1.0) -> None:
        super().__init__(p)
        self.coeff = check_real(f"{self.name}: coeff", coeff, low=0.0)

    def apply(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        s = 1.0 + self.coeff * (torch.rand(n, device=x.device, dtype=x.dtype) - 0.5)
        s = torch.where(sample_mask(n, self.p, x.device), s, torch.ones_like(s))
        return x * s.view(-1, 1, 1)

    def _params(self) -> dict[str, Any]:
        return {"coeff": self.coeff, "p": self.p}


class TimeStretch(Augmentation):
    """Time scaling by a factor ``s ~ U(lo, hi)`` about the centre (``factor = f`` means
    ``(1 - f, 1 + f)``); see :func:`stretch_signal`."""

    name = "time_stretch"
    dims = (1,)

    def __init__(self, factor: float | Sequence[float] = 0.2, p: float = 1.0) -> None:
        super().__init__(p)
        self.factor = factor
        self.range = check_range(self.name, "factor", factor, center=1.0)
        if self.range[0] <= 0.0:
            raise ValueError(f"{self.name}: factor must give stretch factors > 0, got {factor!r}")

    def apply(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        lo, hi = self.range
        s = torch.rand(n, device=x.device, dtype=x.dtype) * (hi - lo) + lo
        mask = sample_mask(n, self.p, x.device)
        return _where(mask, stretch_signal(x, s), x)

    def _params(self) -> dict[str, Any]:
        return {"factor": self.factor, "p": self.p}


class WhiteNoise(Augmentation):
    """Additive white Gaussian noise ``x + std * eps`` (``mnist1d.transform.iid_noise_like``)."""

    name = "white_noise"
    dims = (1,)

    def __init__(self, std: float = 0.02, p: float = 1.0) -> None:
        super().__init__(p)
        self.std = check_real(f"{self.name}: std", std, low=0.0)

    def noise(self, x: Tensor) -> Tensor:
        return torch.randn_like(x).mul_(self.std)

    def apply(self, x: Tensor) -> Tensor:
        mask = sample_mask(x.shape[0], self.p, x.device)
        return _where(mask, x + self.noise(x), x)

    def _params(self) -> dict[str, Any]:
        return {"std": self.std, "p": self.p}


class CorrelatedNoise(WhiteNoise):
    """Additive correlated noise: white noise of ``std`` smoothed along time by a Gaussian of
    ``sigma`` steps (``mnist1d.transform.corr_noise_like``, sigma 2, there added only where the
    signal is padding; here everywhere)."""

    name = "correlated_noise"

    def __init__(self, std: float = 0.25, sigma: float = 2.0, p: float = 1.0) -> None:
        super().__init__(std=std, p=p)
        self.sigma = check_real(f"{self.name}: sigma", sigma, low=0.0, low_open=True)

    def noise(self, x: Tensor) -> Tensor:
        return gaussian_filter1d(super().noise(x), self.sigma)

    def _params(self) -> dict[str, Any]:
        return {"std": self.std, "sigma": self.sigma, "p": self.p}


class Trend(Augmentation):
    """Random linear trend (``mnist1d.transform.shear``): ``x - c * linspace(-1/2, 1/2, L)``,
    ``c = scale * (u - 1/2)``, ``u ~ U(0, 1)`` per sample; see :func:`trend`."""

    name = "trend"
    dims = (1,)

    def __init__(self, scale: float = 0.75, p: float = 1.0) -> None:
        super().__init__(p)
        self.scale = check_real(f"{self.name}: scale", scale, low=0.0)

    def apply(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        c = self.scale * (torch.rand(n, device=x.device, dtype=x.dtype) - 0.5)
        c = torch.where(sample_mask(n, self.p, x.device), c, torch.zeros_like(c))
        return trend(x, c)

    def _params(self) -> dict[str, Any]:
        return {"scale": self.scale, "p": self.p}
