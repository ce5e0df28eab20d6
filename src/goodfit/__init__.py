"""goodfit: train neural networks well.

Composable initialization, first- and second-order optimization, learning-rate schedules and
regularization for PyTorch, and ``goodfit study``, which answers "which of these makes my model
fit well, and why?" with cross-validated numbers, a bias/variance diagnosis and a report.

>>> import goodfit as gf
>>> opt = gf.optim.adam(model.parameters(), lr=1e-3)            # doctest: +SKIP
>>> history = gf.fit(model, (X, y), val=(Xv, yv), optimizer=opt, epochs=20)  # doctest: +SKIP

Submodules are imported on first use, so ``import goodfit`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from goodfit._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from goodfit import (
        callbacks,
        data,
        diagnose,
        ensemble,
        init,
        nn,
        optim,
        regularize,
        report,
        schedules,
        select,
    )
    from goodfit.train.fit_many import fit_many
    from goodfit.train.loop import evaluate, fit

__all__ = [
    "__version__",
    "callbacks",
    "data",
    "diagnose",
    "ensemble",
    "evaluate",
    "fit",
    "fit_many",
    "init",
    "nn",
    "optim",
    "regularize",
    "report",
    "schedules",
    "select",
]

_SUBMODULES = {
    "data", "diagnose", "ensemble", "init", "nn", "optim", "regularize", "report", "schedules",
    "select",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"goodfit.{name}")
    if name == "callbacks":
        return importlib.import_module("goodfit.callbacks")
    if name == "fit_many":
        return importlib.import_module("goodfit.train.fit_many").fit_many
    if name in ("fit", "evaluate"):
        return getattr(importlib.import_module("goodfit.train.loop"), name)
    raise AttributeError(f"module 'goodfit' has no attribute {name!r}")
