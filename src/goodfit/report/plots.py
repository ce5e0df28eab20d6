"""Plots for the study report: learning curves, fold scores, learning-rate schedule.

Each function builds a :class:`matplotlib.figure.Figure` (no pyplot state; matplotlib is imported
lazily), returns the PNG bytes and also writes them to ``path`` when one is given. Inputs are the
plain lists/dicts of the study's ``results`` (see :mod:`goodfit.report.html`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from goodfit.atomic import figure_to_png

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["fold_scores", "learning_curves", "schedule_plot"]

TRAIN_COLOR = "#1f77b4"
VAL_COLOR = "#d62728"


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _curve(records: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for i, rec in enumerate(records):
        v = rec.get(key)
        if v is not None and isinstance(v, (int, float)) and math.isfinite(v):
            xs.append(rec.get("epoch", i + 1))
            ys.append(float(v))
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def _mean_curve(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean over folds at each epoch, over the folds that reached it (early stopping ends
    folds at different epochs)."""
    table: dict[float, list[float]] = {}
    for xs, ys in curves:
        for x, y in zip(xs, ys, strict=True):
            table.setdefault(float(x), []).append(float(y))
    xs = np.asarray(sorted(table))
    return xs, np.asarray([np.mean(table[x]) for x in xs])


def learning_curves(
    histories: Sequence[Sequence[Mapping[str, Any]]],
    *,
    title: str = "",
    onsets: Sequence[int | None] = (),
    path: str | Path | None = None,
) -> bytes:
    """Train vs validation loss (and accuracy when recorded) per epoch for one variant.

    ``histories`` holds one history (list of per-epoch records with ``train_loss``,
    ``val_loss``, optionally ``train_accuracy``/``val_accuracy``) per fold: thin lines per fold,
    a thick line for the mean over folds. ``onsets`` (overfitting onset epoch per fold, or
    ``None``) are drawn as dotted vertical lines on the loss panel.
    """
    has_acc = any("val_accuracy" in r or "train_accuracy" in r for h in histories for r in h)
    panels = [("loss", "train_loss", "val_loss")]
    if has_acc:
        panels.append(("accuracy", "train_accuracy", "val_accuracy"))
    fig = _figure(5.2 * len(panels), 3.3)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (label, tkey, vkey) in zip(axes, panels, strict=True):
        for key, color, name in ((tkey, TRAIN_COLOR, "train"), (vkey, VAL_COLOR, "validation")):
            curves = [_curve(h, key) for h in histories]
            curves = [c for c in curves if len(c[0])]
            for xs, ys in curves:
                ax.plot(xs, ys, color=color, lw=0.7, alpha=0.3)
            if curves:
                mx, my = _mean_curve(curves)
                ax.plot(mx, my, color=color, lw=2.0, label=f"{name} (mean of {len(curves)})")
        if label == "loss":
            for onset in onsets:
                if onset is not None:
                    ax.axvline(onset, color="0.4", ls=":", lw=1.0)
            if any(o is not None for o in onsets):
                ax.plot([], [], color="0.4", ls=":", label="overfitting onset")
            ys = [y for h in histories for k in (tkey, vkey) for y in _curve(h, k)[1]]
            if ys and min(ys) > 0 and max(ys) / min(ys) > 30:
                ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    return figure_to_png(fig, path)


def fold_scores(
    scores: Mapping[str, Sequence[float]],
    *,
    metric: str,
    baseline: str | None = None,
    best: str | None = None,
    seed: int = 0,
    path: str | Path | None = None,
) -> bytes:
    """Box plot plus strip plot (one jittered dot per fold) of each variant's fold scores.

    The baseline's box is grey, the best variant's green. Jitter uses a fixed ``seed`` so the
    picture is reproducible.
    """
    names = list(scores)
    fig = _figure(max(5.0, 1.1 * len(names) + 2.0), 3.8)
    ax = fig.add_subplot()
    data = [np.asarray(scores[n], dtype=float) for n in names]
    box = ax.boxplot(
        data, positions=range(1, len(names) + 1), widths=0.55, patch_artist=True, showfliers=False
    )
    for name, patch in zip(names, box["boxes"], strict=True):
        face = "#c8e6c9" if name == best else "#e0e0e0" if name == baseline else "#dbe8f5"
        patch.set_facecolor(face)
        patch.set_edgecolor("0.3")
    for med in box["medians"]:
        med.set_color("0.15")
    rng = np.random.default_rng(seed)
    for i, values in enumerate(data, start=1):
        jitter = rng.uniform(-0.12, 0.12, size=len(values))
        ax.scatter(i + jitter, values, s=18, color="#1f3b73", alpha=0.8, zorder=3, lw=0)
    ax.set_xticks(range(1, len(names) + 1))
    ax.set_xticklabels(
        names, rotation=20 if len(names) > 5 else 0, ha="right" if len(names) > 5 else "center"
    )
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per fold", fontsize=11)
    ax.grid(True, axis="y", alpha=0.3)
    return figure_to_png(fig, path)


def schedule_plot(
    steps: Sequence[float],
    lrs: Sequence[float],
    *,
    title: str = "learning-rate schedule",
    path: str | Path | None = None,
) -> bytes:
    """Learning rate against the optimizer step (linear axes)."""
    fig = _figure(6.0, 3.0)
    ax = fig.add_subplot()
    ax.plot(list(steps), list(lrs), color=TRAIN_COLOR, lw=1.6)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3)
    return figure_to_png(fig, path)
