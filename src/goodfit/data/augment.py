"""Data augmentation: batched, on the data's device, for images (N, C, H, W) and signals (N, C, L).

"Increase the dataset or augment it" (seed 000 §1.1, §1.1.2; GBC ch. 7 "Dataset Augmentation",
seed 001; seed 004). The ops live in :mod:`goodfit.data.augment_image` (kornia-backed where
kornia has the op, plus multiplicative noise, mixup and cutmix) and
:mod:`goodfit.data.augment_signal` (1-D ops, batched versions of ``mnist1d``'s transforms); this
module is the public entry: :class:`AugmentPipeline`, the registry :data:`AUGMENTATIONS`,
and :func:`preview` (the ``[augment]`` config section is read by :mod:`goodfit.app.augment_spec`).

Randomness: every op draws from the global torch RNG of the data's device (as kornia does); the
trainer seeds it from the run's seed and checkpoints its state, so ``torch.manual_seed(s)``
followed by the same pipeline call gives the same batch.

Examples
--------
>>> pipe = AugmentPipeline([hflip(p=0.5), affine(degrees=10, translate=0.1), MixUp(alpha=0.2)],
...                        num_classes=10)
>>> x, y = pipe(torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,)))
>>> y.shape
torch.Size([8, 10])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from goodfit.data.augment_image import (
    Augmentation,
    DimDispatch,
    KorniaOp,
    MultiplicativeNoise,
    affine,
    blur,
    brightness,
    channel_shuffle,
    check_non_negative,
    color_jitter,
    contrast,
    crop_image,
    elastic,
    erasing,
    gaussian_noise,
    glare,
    hflip,
    hue_shift,
    linear_illumination,
    perspective,
    rain,
    resized_crop,
    rotate,
    salt_and_pepper,
    sample_mask,
    shadow,
    snow,
    thin_plate_spline,
    vflip,
)
from goodfit.data.augment_signal import (
    AmplitudeScale,
    CorrelatedNoise,
    Crop1d,
    Shift,
    TimeStretch,
    Trend,
    WhiteNoise,
    gaussian_filter1d,
    shift_signal,
    stretch_signal,
    trend,
)

__all__ = [
    "AUGMENTATIONS",
    "AmplitudeScale",
    "AugmentPipeline",
    "Augmentation",
    "CorrelatedNoise",
    "CutMix",
    "KorniaOp",
    "MixUp",
    "MultiplicativeNoise",
    "Shift",
    "TimeStretch",
    "Trend",
    "WhiteNoise",
    "affine",
    "blur",
    "brightness",
    "channel_shuffle",
    "color_jitter",
    "contrast",
    "crop",
    "elastic",
    "erasing",
    "gaussian_filter1d",
    "gaussian_noise",
    "glare",
    "hflip",
    "hue_shift",
    "linear_illumination",
    "perspective",
    "preview",
    "rain",
    "resized_crop",
    "rotate",
    "salt_and_pepper",
    "shadow",
    "shift_signal",
    "snow",
    "stretch_signal",
    "thin_plate_spline",
    "trend",
    "vflip",
]


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
        a = check_non_negative(self.name, "alpha", alpha)
        if a == 0.0:
            raise ValueError(f"{self.name}: alpha must be > 0, got {alpha!r}")
        self.alpha = a
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


#: Registry NAME -> factory(**hyperparameters) for the ``[augment]`` config section.
AUGMENTATIONS: dict[str, Callable[..., Augmentation]] = {
    # geometry (images)
    "hflip": hflip,
    "vflip": vflip,
    "rotate": rotate,
    "affine": affine,
    "crop": crop,
    "resized_crop": resized_crop,
    "elastic": elastic,
    "perspective": perspective,
    "thin_plate_spline": thin_plate_spline,
    # intensity / colour (images)
    "brightness": brightness,
    "contrast": contrast,
    "color_jitter": color_jitter,
    "blur": blur,
    "channel_shuffle": channel_shuffle,
    "erasing": erasing,
    "gaussian_noise": gaussian_noise,
    "salt_and_pepper": salt_and_pepper,
    # local distortions (images; those kornia provides)
    "rain": rain,
    "snow": snow,
    "shadow": shadow,
    "glare": glare,
    "linear_illumination": linear_illumination,
    # images and signals
    "multiplicative_noise": MultiplicativeNoise,
    "mixup": MixUp,
    "cutmix": CutMix,
    # signals
    "shift": Shift,
    "amplitude_scale": AmplitudeScale,
    "time_stretch": TimeStretch,
    "white_noise": WhiteNoise,
    "correlated_noise": CorrelatedNoise,
    "trend": Trend,
}


class AugmentPipeline:
    """Apply augmentation ops in order to a training batch: ``(x, y) -> (x, y)``.

    Parameters
    ----------
    ops : iterable of Augmentation
        Ops from :data:`AUGMENTATIONS` (or any :class:`Augmentation`).
    num_classes : int, optional
        Needed when a blending op (mixup, cutmix) with ``p > 0`` is present: integer labels (N,)
        are then turned into one-hot soft targets (N, num_classes) before blending, and the
        pipeline returns soft targets (rows summing to 1). Otherwise ``y`` is returned untouched.

    Notes
    -----
    ``train_only = True``: the trainer applies the pipeline to training batches only, never to
    validation or test data. Ops with ``p = 0`` are skipped, so a pipeline whose ops all have
    ``p = 0`` returns its inputs themselves (exact identity). Runs under ``torch.no_grad()`` on
    the device of ``x``, drawing from the global torch RNG (seeded and checkpointed by the
    trainer).
    """

    train_only: bool = True

    def __init__(self, ops: Iterable[Augmentation], *, num_classes: int | None = None) -> None:
        self.ops = list(ops)
        for i, op in enumerate(self.ops):
            if not isinstance(op, Augmentation):
                raise ValueError(f"ops[{i}] must be an Augmentation, got {type(op).__name__}")
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1
        ):
            raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
        self.num_classes = num_classes
        if self.soft_targets and num_classes is None:
            names = [op.name for op in self.ops if op.blends]
            raise ValueError(
                f"num_classes is required when a blending op ({', '.join(names)}) is present"
            )

    @property
    def soft_targets(self) -> bool:
        """Whether the pipeline turns labels into soft targets (a blending op with p > 0)."""
        return any(op.blends and op.p > 0 for op in self.ops)

    def check_input(self, x: Tensor) -> None:
        """Raise ValueError if an op does not accept the layout of ``x``."""
        for op in self.ops:
            op.check_input(x)

    def soft_labels(self, y: Tensor) -> Tensor:
        """Integer labels (N,) -> one-hot (N, num_classes); soft targets (N, K) are kept."""
        k = self.num_classes
        if y.ndim == 1:
            if y.is_floating_point():
                raise ValueError("labels must be integer class indices (N,) or soft targets (N, K)")
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= k):  # type: ignore[operator]
                raise ValueError(
                    f"labels must lie in [0, {k}), got range [{int(y.min())}, {int(y.max())}]"
                )
            return torch.nn.functional.one_hot(y.long(), k).to(torch.get_default_dtype())
        if y.ndim == 2 and y.shape[1] == k:
            return y if y.is_floating_point() else y.to(torch.get_default_dtype())
        raise ValueError(f"labels must have shape (N,) or (N, {k}), got {tuple(y.shape)}")

    def __call__(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        self.check_input(x)
        soft = self.soft_targets
        if soft:
            if y is None:
                raise ValueError("a blending op (mixup/cutmix) needs the labels y")
            if y.shape[0] != x.shape[0]:
                raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
            y = self.soft_labels(y)
            if x.is_floating_point() and y.dtype != x.dtype:
                y = y.to(x.dtype)
        with torch.no_grad():
            for op in self.ops:
                if op.p == 0.0:
                    continue
                if op.blends:
                    x, y = op(x, y)  # type: ignore[call-arg, arg-type, misc]
                else:
                    x = op(x)
        return x, y

    def __len__(self) -> int:
        return len(self.ops)

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(op) for op in self.ops)
        return f"AugmentPipeline([\n  {inner}\n], num_classes={self.num_classes})"


def preview(
    pipeline: AugmentPipeline | Callable[..., Any],
    x: Tensor,
    y: Tensor | None,
    path: str | Path,
    n: int = 8,
) -> Path:
    """Save a PNG grid: the first ``n`` samples (top row) and their augmented versions (bottom).

    Images are drawn as images (grey for 1 channel, RGB for 3, first channel otherwise); signals
    (N, C, L) as line plots, one line per channel. Titles show the label (argmax of soft targets
    with its weight). Uses the matplotlib Figure API (no pyplot state). Returns the path.
    """
    from matplotlib.figure import Figure

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    n = min(n, x.shape[0])
    xs = x[:n]
    ys = None if y is None else y[:n]
    xa, ya = pipeline(xs, ys)
    fig = Figure(figsize=(1.6 * n, 3.6), constrained_layout=True)
    axes = fig.subplots(2, n, squeeze=False)

    def label(lab: Tensor | None, i: int) -> str:
        if lab is None:
            return ""
        v = lab[i]
        if v.ndim == 0:
            return f"y={int(v)}"
        k = int(v.argmax())
        return f"y={k} ({float(v[k]):.2f})"

    # one grey scale for the whole grid, so brightness/contrast changes stay visible
    lo = float(min(xs.min(), xa.min()))
    hi = float(max(xs.max(), xa.max()))
    for row, (data, lab, title) in enumerate(((xs, ys, "original"), (xa, ya, "augmented"))):
        data = data.detach().float().cpu()
        for i in range(n):
            ax = axes[row, i]
            sample = data[i]
            if sample.ndim == 3:
                if sample.shape[0] == 3:
                    ax.imshow(sample.permute(1, 2, 0).clamp(0, 1).numpy())
                else:
                    ax.imshow(sample[0].numpy(), cmap="gray", vmin=lo, vmax=hi)
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                for c in range(sample.shape[0]):
                    ax.plot(sample[c].numpy(), lw=1)
                ax.tick_params(labelsize=6)
            ax.set_title(label(lab, i), fontsize=7)
        axes[row, 0].set_ylabel(title)
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path
