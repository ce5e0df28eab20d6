"""``[augment]`` -> an :class:`goodfit.data.augment.AugmentPipeline`.

Each op is a name of :data:`goodfit.data.augment.AUGMENTATIONS` with the factory's keyword
hyperparameters; an unknown op, an unknown or bad hyperparameter, or a 2-D op on 1-D data (or
the reverse) raises :class:`goodfit.errors.ConfigError` naming ``augment.ops[i]``.
"""

from __future__ import annotations

from collections.abc import Sequence

from goodfit.app.sections import AugmentConfig
from goodfit.data.augment import AUGMENTATIONS, Augmentation, AugmentPipeline
from goodfit.errors import ConfigError

__all__ = ["pipeline_from_config"]

_KIND = {2: "images (C, H, W)", 1: "signals (C, L)"}


def _op(name: str, kwargs: dict, sdim: int, shape: tuple[int, ...], where: str) -> Augmentation:
    factory = AUGMENTATIONS.get(name)
    if factory is None:
        raise ConfigError(
            f"{where}: unknown augmentation {name!r}; allowed: {sorted(AUGMENTATIONS)}"
        )
    try:
        op = factory(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where} ({name}): {e}") from None
    if sdim not in op.dims:
        allowed = " or ".join(_KIND[d] for d in op.dims)
        raise ConfigError(
            f"{where}: name = {name!r} works on {allowed}, but the data are {_KIND[sdim]} "
            f"of shape {shape}"
        )
    return op


def pipeline_from_config(
    cfg: AugmentConfig, *, input_shape: Sequence[int], num_classes: int | None
) -> AugmentPipeline:
    """The pipeline of ``cfg.ops`` for samples of ``input_shape`` (``(C, H, W)`` images or
    ``(C, L)`` signals; ``num_classes`` is needed by mixup/cutmix)."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) not in (2, 3):
        raise ConfigError(
            f"augment: input shape must be (C, L) for signals or (C, H, W) for images, got "
            f"{shape}; augmentation does not apply to flat feature vectors"
        )
    ops = [
        _op(op.name, op.kwargs(), len(shape) - 1, shape, f"augment.ops[{i}]")
        for i, op in enumerate(cfg.ops)
    ]
    try:
        return AugmentPipeline(ops, num_classes=num_classes)
    except ValueError as e:
        raise ConfigError(f"augment: {e}") from None
