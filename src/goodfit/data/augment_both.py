"""Augmentation ops for images (N, C, H, W) and signals (N, C, L) alike, written here rather than
taken from kornia: multiplicative noise, the blending ops mixup and cutmix, and the random crop
that dispatches to kornia's image crop or the 1-D crop.

Randomness: the global torch RNG, as for every op (:mod:`goodfit.data.augment_base`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from goodfit.checks import check_real
from goodfit.data.augment_base import Augmentation, DimDispatch, sample_mask
from goodfit.data.augment_image import crop_image
from goodfit.data.augment_signal import Crop1d

__all__ = ["CutMix", "MixUp", "MultiplicativeNoise", "crop"]


class MultiplicativeNoise(Augmentation):
    """Multiplicative (speckle) noise ``x * (1 + std * eps)``, ``eps ~ N(0, 1)`` per element.

    "Additive/Multiplicative Noise" (seed 001, Data Augmentation, standard transforms); kornia
    has additive Gaussian noise only. Works on images and signals.
    """

    name = "multiplicative_noise"
    dims = (1, 2)

    def __init__(self, std: float = 0.1, p: float = 1.0) -> None:
        super().__init__(p)
        self.std = check_real(f"{self.name}: std", std, low=0.0)

    def apply(self, x: Tensor) -> Tensor:
        mask = sample_mask(x.shape[0], self.p, x.device)
        noise = torch.randn_like(x).mul_(self.std).add_(1.0)
        mask = mask.view(-1, *([1] * (x.ndim - 1)))
        return torch.where(mask, x * noise, x)

    def _params(self) -> dict[str, Any]:
        return {"std": self.std, "p": self.p}


# ----------------------------------------------------------------------------- blending
class _Blend(Augmentation):
    """Base of the blending ops: ``(x, y_soft) -> (x, y_soft)``.

    After each call ``last_lambda`` (shape (N,)) is the weight kept by each sample's own image
    and label, and ``last_permutation`` the partner index of each sample; samples not selected
    (probability ``1 - p``) have ``lambda = 1``.
    """

    dims = (1, 2)
    blends = True

    def __init__(self, alpha: float, p: float) -> None:
        super().__init__(p)
        self.alpha = check_real(f"{self.name}: alpha", alpha, low=0.0, low_open=True)
        self.last_lambda: Tensor | None = None
        self.last_permutation: Tensor | None = None

    def _draw(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        n = x.shape[0]
        dev = x.device
        perm = torch.randperm(n, device=dev)
        a = torch.tensor(self.alpha, dtype=torch.float64, device=dev)
        lam = torch.distributions.Beta(a, a).sample((n,))
        mask = sample_mask(n, self.p, dev)
        return perm, lam, mask

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        self.check_input(x)
        if y.ndim != 2 or y.shape[0] != x.shape[0]:
            raise ValueError(
                f"{self.name}: targets must be soft labels of shape (N, num_classes) with "
                f"N = {x.shape[0]}, got {tuple(y.shape)}"
            )
        if self.p == 0.0 or x.shape[0] == 0:
            return x, y
        return self.blend(x, y)

    def blend(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "p": self.p}


class MixUp(_Blend):
    r"""Mixup: :math:`\tilde x_i = \lambda_i x_i + (1-\lambda_i) x_{\pi(i)}`, same for the labels.

    :math:`\lambda_i \sim \mathrm{Beta}(\alpha, \alpha)` per sample, :math:`\pi` a random
    permutation of the batch (Zhang et al. 2018, "mixup"; the notes' "image blending",
    seed 000 §1.1.2). Labels become soft targets that sum to 1. Written here rather than taken
    from ``kornia.augmentation.RandomMixUpV2`` because kornia draws lambda from a uniform range,
    not Beta(alpha, alpha), and returns ``(y, y_perm, lambda)`` triples, not soft targets.

    Examples
    --------
    >>> op = MixUp(alpha=0.2)
    >>> x, y = op(torch.rand(4, 1, 8, 8), torch.eye(4))
    >>> torch.allclose(y.sum(1), torch.ones(4))
    True
    """

    name = "mixup"

    def __init__(self, alpha: float = 0.2, p: float = 1.0) -> None:
        super().__init__(alpha, p)

    def blend(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        perm, lam, mask = self._draw(x)
        lam = torch.where(mask, lam, torch.ones_like(lam))
        self.last_lambda, self.last_permutation = lam, perm
        lx = lam.to(x.dtype).view(-1, *([1] * (x.ndim - 1)))
        ly = lam.to(y.dtype).view(-1, 1)
        return torch.lerp(x[perm], x, lx), torch.lerp(y[perm], y, ly)


class CutMix(_Blend):
    r"""CutMix: paste a random box of a partner sample; labels mixed by the pasted area.

    Per sample, :math:`\lambda \sim \mathrm{Beta}(\alpha, \alpha)`; a box of relative side
    :math:`\sqrt{1-\lambda}` (a segment of relative length :math:`1-\lambda` for signals) with a
    uniform random centre is clipped to the image and filled from :math:`x_{\pi(i)}`. The label
    weight is recomputed from the area actually pasted, ``lambda = 1 - area / (H W)`` (Yun et al.
    2019), and stored in ``last_lambda``. Not ``kornia.augmentation.RandomCutMixV2``: its default
    lambda is not the pasted area (kornia warns about it) and it returns label triples.
    """

    name = "cutmix"

    def __init__(self, alpha: float = 1.0, p: float = 1.0) -> None:
        super().__init__(alpha, p)
        self.last_box: Tensor | None = None

    @staticmethod
    def _segment(size: int, frac: Tensor) -> tuple[Tensor, Tensor]:
        """Random [start, stop) of relative length ``frac`` with a uniform centre, clipped."""
        centre = torch.randint(0, size, frac.shape, device=frac.device)
        half = torch.round(frac * size).long() // 2
        length = torch.round(frac * size).long()
        start = (centre - half).clamp(0, size)
        stop = (centre - half + length).clamp(0, size)
        return start, stop

    def blend(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        perm, lam, mask = self._draw(x)
        cut = torch.where(mask, 1.0 - lam, torch.zeros_like(lam))  # fraction to paste
        if x.ndim == 4:
            h, w = x.shape[-2:]
            side = cut.sqrt()
            y0, y1 = self._segment(h, side)
            x0, x1 = self._segment(w, side)
            rows = torch.arange(h, device=x.device)
            cols = torch.arange(w, device=x.device)
            in_r = (rows >= y0[:, None]) & (rows < y1[:, None])
            in_c = (cols >= x0[:, None]) & (cols < x1[:, None])
            region = (in_r[:, :, None] & in_c[:, None, :])[:, None]  # (N, 1, H, W)
            area = ((y1 - y0) * (x1 - x0)).double() / (h * w)
            self.last_box = torch.stack([y0, y1, x0, x1], 1)
        else:
            length = x.shape[-1]
            s0, s1 = self._segment(length, cut)
            t = torch.arange(length, device=x.device)
            region = ((t >= s0[:, None]) & (t < s1[:, None]))[:, None]  # (N, 1, L)
            area = (s1 - s0).double() / length
            self.last_box = torch.stack([s0, s1], 1)
        lam = 1.0 - area
        self.last_lambda, self.last_permutation = lam, perm
        ly = lam.to(y.dtype).view(-1, 1)
        return torch.where(region, x[perm], x), torch.lerp(y[perm], y, ly)


def crop(padding: int = 4, padding_mode: str = "constant", p: float = 1.0) -> Augmentation:
    """Random crop with padding: for images ``kornia`` RandomCrop of the input size from the
    image padded by ``padding`` pixels (seed 000 "Random cropping"); for signals the 1-D random
    crop/pad :class:`~goodfit.data.augment_signal.Crop1d` (zero padding only)."""
    image_op = crop_image(padding=padding, padding_mode=padding_mode, p=p)
    return DimDispatch("crop", {2: image_op, 1: Crop1d(padding=padding, p=p)}, p)
