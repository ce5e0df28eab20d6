"""``[ensemble]``: train an ensemble instead of one network (:mod:`goodfit.ensemble`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from goodfit.app.sections import _Strict

__all__ = ["ENSEMBLE_METHODS", "EnsembleConfig"]

ENSEMBLE_METHODS = ("bagging", "samme", "adaboost_r2", "stacking", "snapshot", "swa", "ema")


class EnsembleConfig(_Strict):
    """``[ensemble]``: the ``method``, the number of ``members`` (bagging, boosting rounds,
    stacking base networks, snapshot cycles; unused by swa/ema), bagging's ``aggregation``,
    stacking's ``meta`` learner, ``folds`` and ``split`` (only "kfold": the meta-learner needs an
    out-of-fold prediction for every training row), AdaBoost.R2's ``r2_loss``, SWA's
    ``start_epoch`` (0-based; default: the last quarter of the epochs), EMA's ``decay``, and
    ``vectorize`` (train the members as one vectorized group when possible)."""

    method: Literal["bagging", "samme", "adaboost_r2", "stacking", "snapshot", "swa", "ema"]
    members: int = Field(8, ge=2, le=1024)
    aggregation: Literal["mean", "geometric", "vote"] = "mean"
    meta: Literal["logistic", "ridge"] | None = None
    folds: int = Field(5, ge=2, le=100)
    split: Literal["kfold", "holdout"] = "kfold"
    r2_loss: Literal["linear", "square", "exponential"] = "linear"
    start_epoch: int | None = Field(None, ge=0)
    decay: float = Field(0.999, gt=0.0, lt=1.0)
    vectorize: bool = True
