"""``[optimizer]`` -> an optimizer: the names a config may use for goodfit's optimizers
(:data:`OPTIMIZERS`) and transforms (:data:`TRANSFORMS`), and :func:`chain_from_spec` for an
explicit ``chain = [...]`` of transforms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from goodfit import optim
from goodfit.optim import GradientTransformation, Optimizer, chain

__all__ = ["OPTIMIZERS", "TRANSFORMS", "chain_from_spec"]

OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {
    "sgd": optim.sgd,
    "gd": optim.gd,
    "heavy_ball": optim.heavy_ball,
    "adagrad": optim.adagrad,
    "rmsprop": optim.rmsprop,
    "adadelta": optim.adadelta,
    "adam": optim.adam,
    "adamw": optim.adamw,
    "amsgrad": optim.amsgrad,
    "adamax": optim.adamax,
    "nadam": optim.nadam,
}

TRANSFORMS: dict[str, Callable[..., GradientTransformation]] = {
    "identity": optim.identity,
    "scale": optim.scale,
    "scale_by_lr": optim.scale_by_lr,
    "trace": optim.trace,
    "velocity": optim.velocity,
    "heavy_ball_momentum": optim.heavy_ball_momentum,
    "scale_by_adagrad": optim.scale_by_adagrad,
    "scale_by_rms": optim.scale_by_rms,
    "scale_by_adadelta": optim.scale_by_adadelta,
    "scale_by_adam": optim.scale_by_adam,
    "scale_by_adamax": optim.scale_by_adamax,
    "scale_by_nadam": optim.scale_by_nadam,
    "clip_by_value": optim.clip_by_value,
    "clip_by_global_norm": optim.clip_by_global_norm,
    "add_noise": optim.add_noise,
    "add_decayed_weights": optim.add_decayed_weights,
    "add_l2": optim.add_l2,
    "add_l1": optim.add_l1,
    "add_l1_step": optim.add_l1_step,
    "add_proximal_l1": optim.add_proximal_l1,
}


def chain_from_spec(spec: list[dict[str, Any]]) -> GradientTransformation:
    """Build a chain from a config list, e.g. ``[{"name": "scale_by_adam", "b1": 0.9},
    {"name": "scale_by_lr", "lr": 1e-3}]``.

    Unknown names raise ``ValueError`` listing the allowed ones; unknown keywords ``TypeError``;
    bad values ``ValueError``.
    """
    if not isinstance(spec, (list, tuple)) or not spec:
        raise ValueError(
            f"chain spec must be a non-empty list of {{'name': ...}} tables, got {spec!r}"
        )
    parts = []
    for i, item in enumerate(spec):
        if not isinstance(item, dict) or "name" not in item:
            raise ValueError(f"chain[{i}] must be a table with a 'name' key, got {item!r}")
        kw = dict(item)
        name = kw.pop("name")
        if name not in TRANSFORMS:
            raise ValueError(
                f"chain[{i}]: unknown transform {name!r}; allowed: {', '.join(sorted(TRANSFORMS))}"
            )
        parts.append(TRANSFORMS[name](**kw))
    return chain(*parts)
