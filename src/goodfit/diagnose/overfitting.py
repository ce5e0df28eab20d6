"""Overfitting onset: the epoch where the validation loss turns up while the training loss still
falls (seed 001, "Regularization - Early Stopping": the U-shaped validation error curve; seed 000
§1.1.1 "avoid overfitting").

Rule (robust to epoch-to-epoch noise):

1. Keep the epochs whose record has finite ``train_loss`` and ``val_loss``.
2. Smooth both curves with a centred moving median of ``window`` epochs (odd, shrinking at the
   ends): a median ignores single-epoch spikes that a mean would spread around.
3. ``e*`` = the first epoch where the smoothed validation loss reaches its minimum.
4. ``e*`` is the onset when, after it, (a) at least ``patience`` epochs were recorded, (b) the
   smoothed validation loss ends more than ``min_rise`` (relative) above its minimum, and
   (c) the smoothed training loss at the last epoch is below its value at ``e*`` (training
   still falls). Otherwise there is no onset: ``None``.

The onset is the epoch early stopping (GBC Algorithm 7.1) would return as ``i*`` on the same
curve with a large enough patience.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["overfitting_onset", "smooth_median"]


def smooth_median(values: Sequence[float], window: int) -> np.ndarray:
    """Centred moving median with an odd ``window``; the window shrinks symmetrically at the
    ends (the first and last points are kept as they are), so the smoothed curve has no lag."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd int >= 1, got {window}")
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    half = window // 2
    out = np.empty(n)
    for i in range(n):  # per epoch (tens to hundreds), not per element of a tensor
        h = min(half, i, n - 1 - i)
        out[i] = np.median(x[i - h : i + h + 1])
    return out


def overfitting_onset(
    history: Sequence[Mapping[str, Any]],
    *,
    window: int = 5,
    patience: int = 3,
    min_rise: float = 0.01,
    train_key: str = "train_loss",
    val_key: str = "val_loss",
) -> int | None:
    """Epoch of overfitting onset in a training history, or ``None`` if it never overfits.

    Parameters
    ----------
    history
        Per-epoch records (dicts) holding ``train_key`` and ``val_key``; the epoch number is the
        record's ``"epoch"`` when present, else its position.
    window
        Width of the centred moving median (odd).
    patience
        Epochs that must follow the validation minimum.
    min_rise
        Relative rise of the smoothed validation loss above its minimum at the last epoch
        required to call it a turn-up (0.01 = 1%).

    See the module docstring for the rule.

    Examples
    --------
    >>> val = [1.0, 0.6, 0.4, 0.35, 0.38, 0.45, 0.55, 0.7]
    >>> hist = [{"epoch": i, "train_loss": 1.0 / (i + 1), "val_loss": v} for i, v in enumerate(val)]
    >>> overfitting_onset(hist, window=1)
    3
    """
    if patience < 1:
        raise ValueError(f"patience must be >= 1, got {patience}")
    if min_rise < 0:
        raise ValueError(f"min_rise must be >= 0, got {min_rise}")
    epochs, train, val = [], [], []
    for i, rec in enumerate(history):
        t, v = rec.get(train_key), rec.get(val_key)
        if t is None or v is None or not (math.isfinite(t) and math.isfinite(v)):
            continue
        epochs.append(int(rec.get("epoch", i)))
        train.append(float(t))
        val.append(float(v))
    if len(val) < patience + 1:
        return None
    s_train = smooth_median(train, window)
    s_val = smooth_median(val, window)
    k = int(np.argmin(s_val))
    after = s_val[k + 1 :]
    if len(after) < patience:
        return None
    vmin = s_val[k]
    rises = after[-1] > vmin + min_rise * abs(vmin)
    train_falls = s_train[-1] < s_train[k]
    return epochs[k] if rises and train_falls else None
