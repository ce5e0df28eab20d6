"""The confusion matrix as a picture, and the study report's section of them.

A cell ``(i, j)`` counts the samples of true class ``i`` predicted as ``j``; the colour is the
row-normalized share (the recall on the diagonal), so a minority class is as visible as a
majority one. The study sums each variant's held-out confusion matrices over its folds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from goodfit.atomic import figure_to_png

__all__ = ["confusion_png", "confusion_section"]


def confusion_png(
    matrix: Sequence[Sequence[int]], classes: Sequence[Any] | None = None, title: str = ""
) -> bytes:
    """PNG of a confusion matrix (rows: true class, columns: predicted), counts written in the
    cells, colour = share of the row."""
    from matplotlib.figure import Figure

    cm = np.asarray(matrix, dtype=float)
    k = len(cm)
    names = [str(c) for c in (classes if classes is not None else range(k))]
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = min(9.0, 2.0 + 0.45 * k)
    fig = Figure(figsize=(size + 1, size), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                color = "white" if share[i, j] > 0.6 else "black"
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", color=color,
                        fontsize=8)  # fmt: skip
    ax.set_xticks(range(k), names, rotation=90 if k > 10 else 0)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="share of the true class")
    return figure_to_png(fig)


def confusion_section(
    results: Mapping[str, Any], img: Callable[[bytes, str], str], esc: Callable[[Any], str]
) -> str:
    """The report's "Confusion matrices" section: per variant, the held-out confusion matrices
    summed over its folds, with balanced accuracy; empty for a study without them."""
    parts = []
    for name, v in results.get("variants", {}).items():
        mats = [f["confusion_matrix"] for f in v.get("folds", []) if f.get("confusion_matrix")]
        if not mats:
            continue
        cm = np.sum(np.asarray(mats, dtype=float), axis=0)
        support = cm.sum(axis=1)
        recall = np.diag(cm)[support > 0] / support[support > 0]
        title = f"{name}: balanced accuracy {recall.mean():.3f} (held-out folds, summed)"
        parts.append(
            f"<div>{img(confusion_png(cm, results.get('classes'), title), esc(title))}</div>"
        )
    if not parts:
        return ""
    return (
        '<h2>Confusion matrices</h2><div class="note">Rows: true class; columns: predicted '
        "class; colour: share of the row (the diagonal is each class's recall).</div>"
        f'<div class="grid2">{"".join(parts)}</div>'
    )
