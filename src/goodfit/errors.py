"""Exceptions that mean "the user's input is wrong", as opposed to a bug in goodfit.

The command line turns a :class:`GoodfitError` into one clear message and exit status 2;
any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["CheckpointError", "ConfigError", "DataError", "DivergenceError", "GoodfitError"]


class GoodfitError(Exception):
    """Base class of user-facing errors (bad config, bad data, divergence)."""


class ConfigError(GoodfitError, ValueError):
    """A configuration key or value is invalid; the message names the key and what is allowed."""


class DataError(GoodfitError, ValueError):
    """A data file or array is missing or malformed (NaN features, labels out of range, ...)."""


class DivergenceError(GoodfitError, FloatingPointError):
    """Training produced a non-finite loss; the message names the epoch/step and the last good
    checkpoint."""


class CheckpointError(GoodfitError):
    """A checkpoint or weights file is missing, truncated, damaged or not goodfit's."""
