"""Data: built-in datasets, user files, leak-free standardization.

``goodfit.data.augment`` and ``goodfit.data.splits`` are submodules imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from goodfit.data.datasets import (
    DATASETS,
    Dataset,
    DatasetInfo,
    Standardizer,
    apply_standardizer,
    cache_dir,
    describe_datasets,
    fit_standardizer,
    load_dataset,
)

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
