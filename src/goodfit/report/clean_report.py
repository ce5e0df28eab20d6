"""The report of ``goodfit clean``: the top suspect labels pictured, per-class difficulty.

Each suspect is drawn as what it is — a thumbnail for an image ``(C, H, W)``, the traces of a
signal ``(C, L)``, the feature values of a tabular row — titled with its index, the given label,
the suggested label and its self-confidence. Per-class out-of-fold error (seed 000's "check that
all classes have the same complexity of classification") is a bar chart; the confident joint is
a table. One self-contained HTML file.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from goodfit.atomic import atomic_write_text, figure_to_png

__all__ = ["render_clean_report", "write_clean_report"]


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _draw(ax: Any, x: np.ndarray) -> None:
    if x.ndim == 3 and x.shape[0] in (1, 3):  # an image
        img = x[0] if x.shape[0] == 1 else np.clip(x.transpose(1, 2, 0), 0, 1)
        ax.imshow(img, cmap="gray" if x.shape[0] == 1 else None)
        ax.set_xticks([])
        ax.set_yticks([])
    elif x.ndim == 2:  # a signal: one trace per channel
        for channel in x:
            ax.plot(channel, lw=0.8)
        ax.set_yticks([])
    else:  # a tabular row
        ax.bar(range(x.size), x.reshape(-1), width=0.8)
        ax.set_yticks([])


def suspects_png(result: Mapping[str, Any], X_top: np.ndarray) -> bytes:
    """A grid of the top suspects, each titled ``#index given -> suggested (score)``."""
    from matplotlib.figure import Figure

    n = len(X_top)
    cols = min(8, max(n, 1))
    rows = max(1, math.ceil(n / cols))
    fig = Figure(figsize=(1.6 * cols, 1.8 * rows), dpi=100, layout="constrained")
    for i, s in enumerate(result["suspects"][:n]):
        ax = fig.add_subplot(rows, cols, i + 1)
        _draw(ax, np.asarray(X_top[i]))
        ax.set_title(f"#{s['index']} {s['given']}→{s['suggested']}\n{s['score']:.2f}", fontsize=7)
    return figure_to_png(fig)


def per_class_png(result: Mapping[str, Any]) -> bytes:
    """Per-class out-of-fold error as bars."""
    from matplotlib.figure import Figure

    err = result["per_class_error"]
    names = [str(c) for c in result["classes"]]
    fig = Figure(figsize=(min(10, 2 + 0.5 * len(err)), 3), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.bar(names, err, color="#d62728")
    ax.axhline(1 - result["out_of_fold_accuracy"], color="k", lw=1, ls="--", label="overall")
    ax.set_ylabel("out-of-fold error")
    ax.set_xlabel("given class")
    ax.legend()
    return figure_to_png(fig)


def _joint_table(result: Mapping[str, Any]) -> str:
    names = [html.escape(str(c)) for c in result["classes"]]
    head = "".join(f"<th>{n}</th>" for n in names)
    rows = "".join(
        f"<tr><th>{names[i]}</th>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>"
        for i, row in enumerate(result["confident_joint"])
    )
    return f"<table><tr><th>given \\ suggested</th>{head}</tr>{rows}</table>"


def render_clean_report(result: Mapping[str, Any], X_top: np.ndarray) -> str:
    """The report as one HTML string."""
    n = result["n_issues"]
    out = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>goodfit clean</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}td,th{padding:2px 6px;"
        "border:1px solid #ccc;text-align:right}table{border-collapse:collapse}</style></head>"
        "<body>",
        f"<h1>Suspect labels: {html.escape(str(result['dataset']))}</h1>",
        f"<p>{n} of {result['n_train']} training labels flagged by confident learning "
        f"(Northcutt, Jiang &amp; Chuang 2021) on {result['k']}-fold out-of-fold probabilities; "
        f"estimated noise rate {result['estimated_noise_rate']:.3f}; out-of-fold accuracy "
        f"{result['out_of_fold_accuracy']:.4f}.</p>",
    ]
    if len(X_top):
        out.append(f"<h2>Top {len(X_top)} suspects (most suspect first)</h2>")
        out.append("<p>#index given→suggested, and the self-confidence p̂(given; x).</p>")
        out.append(_img(suspects_png(result, X_top), "top suspects"))
    out.append("<h2>Per-class difficulty</h2>")
    out.append(_img(per_class_png(result), "per-class out-of-fold error"))
    out.append("<h2>Confident joint</h2>" + _joint_table(result))
    out.append("</body></html>")
    return "\n".join(out)


def write_clean_report(result: Mapping[str, Any], X_top: np.ndarray, path: str | Path) -> Path:
    """Write :func:`render_clean_report` to ``path`` atomically."""
    return atomic_write_text(path, render_clean_report(result, X_top))
