"""``train.class_weights`` and ``train.sampler`` -> the loss's per-class weights and the epoch
sampler (:mod:`goodfit.data.imbalance`), from the labels of the part the model trains on."""

from __future__ import annotations

from typing import Any

from goodfit.app.build import call_with_config
from goodfit.app.config import Config
from goodfit.data.prepare import PreparedData
from goodfit.errors import ConfigError

__all__ = ["imbalance_parts"]


def imbalance_parts(cfg: Config, prepared: PreparedData) -> dict[str, Any]:
    """``train.class_weights`` as per-class loss weights (``class_weight``) and ``train.sampler =
    "balanced"`` as a :class:`goodfit.data.imbalance.BalancedSampler` (``sampler``), both from the
    labels of the part the model trains on."""
    from goodfit.data import imbalance

    t, ds = cfg.train, prepared.dataset
    if (t.class_weights is not None or t.sampler != "random") and ds.task != "classification":
        raise ConfigError(
            "[train] class_weights and sampler = 'balanced' are for classification; this "
            f"dataset is a {ds.task} task"
        )
    es = cfg.early_stopping
    meta = es is not None and es.enabled and es.algorithm != "7.1"
    if meta and (t.class_weights is not None or t.sampler != "random"):
        raise ConfigError(
            f"[early_stopping] algorithm = {es.algorithm!r} trains with the plain loss and order; "
            "train.class_weights / train.sampler = 'balanced' need algorithm = '7.1'"
        )
    y = prepared.train[1]
    out: dict[str, Any] = {}
    if t.class_weights is not None:
        weights = call_with_config(
            "train.class_weights", imbalance.class_weights, y, ds.num_classes, t.class_weights,
            ds.classes,
        )  # fmt: skip
        out["class_weight"] = weights
    if t.sampler == "balanced":
        out["sampler"] = imbalance.BalancedSampler(y, ds.num_classes)
    return out
