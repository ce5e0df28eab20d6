"""Data: built-in datasets, user files, leak-free standardization.

:func:`load_dataset` loads a built-in set by name (:mod:`goodfit.data.builtin`) or a user
``.npz``/``.csv`` file by path (:mod:`goodfit.data.files`) into a :class:`Dataset`
(:mod:`goodfit.data.datasets`); :mod:`goodfit.data.standardize` fits standardization on training
data only. ``goodfit.data.augment`` and ``goodfit.data.splits`` are submodules imported on first
use.
"""

from __future__ import annotations

import importlib
from typing import Any

from goodfit.data.builtin import DATASETS, DatasetInfo, cache_dir, describe_datasets
from goodfit.data.datasets import Dataset, load_dataset
from goodfit.data.standardize import Standardizer, apply_standardizer, fit_standardizer

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetInfo",
    "Standardizer",
    "apply_standardizer",
    "cache_dir",
    "describe_datasets",
    "fit_standardizer",
    "load_dataset",
]

_LAZY_SUBMODULES = ("augment", "splits")


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
