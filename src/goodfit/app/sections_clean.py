"""``[clean]``: suspect labels by confident learning (:mod:`goodfit.app.clean`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from goodfit.app.sections import _Strict

__all__ = ["CleanConfig"]


class CleanConfig(_Strict):
    """``[clean]``: ``k`` folds for the out-of-fold probabilities of ``goodfit clean``, ``top``
    suspects pictured in its report; ``exclude = true`` drops the suspects listed in
    ``suspects`` (a ``clean.json`` written by ``goodfit clean``) from the part the model trains
    on — in ``goodfit train`` and in every fold of a study (a variant ``set = {"clean.exclude" =
    true}`` compares "as given" with "cleaned")."""

    k: int = Field(5, ge=2, le=100)
    top: int = Field(24, ge=0, le=400)
    exclude: Annotated[bool, Field(strict=True)] = False
    suspects: str | None = None
