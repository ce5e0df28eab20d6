"""Parameter checks shared by every part: one style of message, naming the parameter, the value
and what is allowed (scikit-learn's convention).

Each check returns the value converted (``float``/``int``/``str``) or raises ``ValueError``
(``TypeError`` never: a config value of the wrong type is a bad *value* for the user).

>>> check_real("lr", 0.1, low=0.0)
0.1
>>> check_int("k", 5, low=2)
5
>>> check_probability("p", 0.3, high_open=True)
0.3
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

__all__ = [
    "SEED_MAX",
    "check_bool",
    "check_choice",
    "check_int",
    "check_probability",
    "check_real",
    "check_seed",
]

#: Largest seed every consumer accepts: scikit-learn's ``random_state`` and NumPy's
#: ``RandomState`` take ``[0, 2**32 - 1]`` (torch and ``numpy.random.default_rng`` take more).
SEED_MAX = 2**32 - 1


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, (str, bytes))


def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    return " and ".join(parts)


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``float(value)`` if it is a finite real number within the bounds, else ``ValueError``.

    ``low``/``high`` are inclusive unless ``low_open``/``high_open``.
    """
    bounds = _bounds(low, high, low_open, high_open)
    wanted = f"a finite number{' ' + bounds if bounds else ''}"
    if not _is_number(value) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    v = float(value)
    if low is not None and (v <= low if low_open else v < low):
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    if high is not None and (v >= high if high_open else v > high):
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return v


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """``int(value)`` if it is an integer (not a bool) in ``[low, high]``, else ``ValueError``."""
    bounds = _bounds(low, high, False, False)
    wanted = f"an integer{' ' + bounds if bounds else ''}"
    if isinstance(value, bool):
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be {wanted}, got {value!r}") from None
    if (low is not None and v < low) or (high is not None and v > high):
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return int(v)


def check_probability(name: str, value: Any, *, high_open: bool = False) -> float:
    """A probability: a number in ``[0, 1]`` (``[0, 1)`` with ``high_open``).

    The message says so: ``"p must be a probability in [0, 1), got 1.5"``.
    """
    try:
        return check_real(name, value, low=0.0, high=1.0, high_open=high_open)
    except ValueError:
        interval = "[0, 1)" if high_open else "[0, 1]"
        raise ValueError(f"{name} must be a probability in {interval}, got {value!r}") from None


def check_choice(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    """``value`` if it is one of ``allowed``, else ``ValueError`` listing them."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False`` (not 0/1), else ``ValueError``."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def check_seed(name: str, value: Any) -> int:
    """A random seed: an integer (not a bool) in ``[0, 2**32 - 1]`` (:data:`SEED_MAX`), the
    range scikit-learn and NumPy accept, else ``ValueError`` saying so."""
    try:
        return check_int(name, value, low=0, high=SEED_MAX)
    except ValueError:
        raise ValueError(f"{name} must be an integer in [0, 2**32 - 1], got {value!r}") from None
