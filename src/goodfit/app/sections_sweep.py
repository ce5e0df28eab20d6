"""The ``[sweep]`` table of ``goodfit sweep`` (:mod:`goodfit.app.sweep`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from goodfit.app.sections import _Strict

__all__ = ["SweepConfig"]

#: Sections a sweep may not vary: they describe the sweep (or another command), not a run.
NOT_SWEEPABLE = ("sweep", "study", "search")


class SweepConfig(_Strict):
    """``[sweep]``: one dotted config key (``param``) and the ``values`` it takes, every point a
    full ``goodfit train`` run; ``interpolation_eps`` is the training error at or below which a
    point interpolates its training set (Nakkiran et al. 2019's epsilon, seed 003); the train
    and test errors are recorded every ``eval_every`` epochs (and at the last); ``workers``
    points at a time."""

    title: str = "goodfit sweep"
    param: str
    values: list[Any] = Field(min_length=1)
    interpolation_eps: float = Field(0.005, ge=0.0, lt=1.0, allow_inf_nan=False)
    eval_every: int = Field(1, ge=1, le=10**6)
    workers: int = Field(1, ge=1, le=1024)

    @field_validator("param")
    @classmethod
    def _param(cls, v: str) -> str:
        parts = v.split(".")
        if len(parts) < 2 or any(not p for p in parts):
            raise ValueError(
                f"param must be a dotted config key such as model.widths or train.epochs, got {v!r}"
            )
        if parts[0] in NOT_SWEEPABLE:
            raise ValueError(f"param {v!r}: the [{parts[0]}] table cannot be swept")
        return v
