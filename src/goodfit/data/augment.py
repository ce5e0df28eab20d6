"""Data augmentation: batched, on the data's device, for images (N, C, H, W) and signals (N, C, L).

"Increase the dataset or augment it" (seed 000 §1.1, §1.1.2; GBC ch. 7 "Dataset Augmentation",
seed 001; seed 004). The ops live in :mod:`goodfit.data.augment_image` (images, through
kornia), :mod:`goodfit.data.augment_signal` (1-D ops, batched versions of ``mnist1d``'s
transforms) and :mod:`goodfit.data.augment_both` (written here for images and signals alike:
multiplicative noise, mixup, cutmix, crop), all on the protocol of
:mod:`goodfit.data.augment_base`; this module is the public entry: :class:`AugmentPipeline`,
the registry :data:`AUGMENTATIONS` and :func:`preview` (the ``[augment]`` config section is
read by :mod:`goodfit.app.augment_spec`).

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

from goodfit.atomic import atomic_savefig
from goodfit.data.augment_base import Augmentation
from goodfit.data.augment_both import CutMix, MixUp, MultiplicativeNoise, crop
from goodfit.data.augment_image import (
    KorniaOp,
    affine,
    blur,
    brightness,
    channel_shuffle,
    color_jitter,
    contrast,
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
    shadow,
    snow,
    thin_plate_spline,
    vflip,
)
from goodfit.data.augment_signal import (
    AmplitudeScale,
    CorrelatedNoise,
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

    def drawable(self, x: Tensor) -> bool:
        """Whether every op that acts draws its parameters before transforming (none blends):
        then parts of a batch may draw from their own RNG states and be transformed at once
        (:meth:`Augmentation.apply_drawn`)."""
        return all(op.drawable(x) and not op.blends for op in self.ops if op.p != 0.0)

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
    atomic_savefig(fig, path, dpi=100)
    return path
