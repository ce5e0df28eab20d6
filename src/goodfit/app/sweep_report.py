"""``report.html`` of a sweep: one self-contained file (figures inlined as PNG, no scripts).

- train and test error against the swept value (log axis for widths and sizes spanning a
  decade or more), the interpolation threshold marked, the under-, critically- and
  over-parameterized regimes of seed 003's EMC hypothesis shaded;
- for a ``model.*`` sweep, heat maps of the test and training error over value x epoch
  (Nakkiran et al. 2019, Fig. 2: model-wise double descent along a row, epoch-wise along a
  column);
- a table of the points, and the EMC for a ``data.train_size`` sweep.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import numpy as np

from goodfit.atomic import atomic_write_text, figure_to_png

__all__ = ["render_sweep_report", "write_sweep_report"]

_COLORS = {"under": "#dbe9f6", "critical": "#f9d9d3", "over": "#dcefdc"}
_NAMES = {
    "under": "under-parameterized",
    "critical": "critically parameterized",
    "over": "over-parameterized",
}
_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:0 auto;padding:20px;"
    "color:#1d2330}table{border-collapse:collapse}td,th{border:1px solid #d5d9e0;"
    "padding:3px 8px;text-align:right}img{max-width:100%}.note{color:#5b6475;font-size:.85rem}"
)


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _log_axis(xs: list[float]) -> bool:
    return min(xs) > 0 and max(xs) / min(xs) >= 10


def _error_plot(result: dict[str, Any]) -> bytes:
    from matplotlib.figure import Figure

    pts = sorted(result["points"], key=lambda p: p["x"])
    xs = [p["x"] for p in pts]
    fig = Figure(figsize=(8.0, 4.4), layout="constrained")
    ax = fig.add_subplot()
    for r in result.get("regimes", []):
        ax.axvspan(r["from"], r["to"], color=_COLORS[r["regime"]], alpha=0.8, lw=0,
                   label=_NAMES[r["regime"]])  # fmt: skip
    ax.plot(xs, [p["train_error"] for p in pts], "o--", color="#4c72b0", label="train error")
    ax.plot(xs, [p["test_error"] for p in pts], "o-", color="#c44e52", label="test error")
    t = result.get("interpolation_threshold")
    if t is not None:
        tx = next(p["x"] for p in pts if p["value"] == t)
        ax.axvline(tx, color="k", ls=":", label=f"interpolation threshold ({t})")
    if _log_axis(xs):
        ax.set_xscale("log")
    ax.set(xlabel=result["param"], ylabel="error", title=result.get("title", "sweep"))
    ax.legend(fontsize=8)
    return figure_to_png(fig)


def _heat_maps(result: dict[str, Any]) -> bytes | None:
    """Value x epoch maps of the test and training error (points without per-epoch records
    or with different epoch grids are left out)."""
    from matplotlib.figure import Figure

    pts = sorted(result["points"], key=lambda p: p["x"])
    pts = [p for p in pts if p.get("epochs")]
    if len(pts) < 2:
        return None
    epochs = pts[0]["epochs"]
    pts = [p for p in pts if p["epochs"] == epochs]
    if len(pts) < 2 or len(epochs) < 2:
        return None
    fig = Figure(figsize=(11.0, 4.4), layout="constrained")
    for j, key in enumerate(("test_error_by_epoch", "train_error_by_epoch")):
        ax = fig.add_subplot(1, 2, j + 1)
        z = np.array([p[key] for p in pts], dtype=float).T  # rows: epochs, columns: values
        mesh = ax.pcolormesh(np.arange(len(pts) + 1), _edges(epochs), z, cmap="viridis",
                             shading="flat")  # fmt: skip
        ax.set_xticks(np.arange(len(pts)) + 0.5, [f"{p['x']:g}" for p in pts], fontsize=7)
        ax.set(xlabel=result["param"], ylabel="epoch", title=key.replace("_by_epoch", "")
               .replace("_", " "))  # fmt: skip
        if epochs[0] > 0 and epochs[-1] / epochs[0] >= 10:
            ax.set_yscale("log")
        fig.colorbar(mesh, ax=ax)
    return figure_to_png(fig)


def _edges(epochs: list[int]) -> np.ndarray:
    e = np.asarray(epochs, dtype=float)
    mid = (e[1:] + e[:-1]) / 2
    return np.concatenate([[max(e[0] - (mid[0] - e[0]), 0.5)], mid, [e[-1] + (e[-1] - mid[-1])]])


def _table(result: dict[str, Any]) -> str:
    head = ("value", "parameters", "train samples", "train error", "test error", "train loss",
            "test loss", "epochs", "seconds")  # fmt: skip
    rows = []
    for p in result["points"]:
        cells = (p["value"], p["n_params"], p["n_train"], f"{p['train_error']:.4f}",
                 f"{p['test_error']:.4f}", f"{p['train_loss']:.4f}", f"{p['test_loss']:.4f}",
                 p.get("epochs_run"), f"{p.get('wall_seconds') or 0:.1f}")  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    header = "".join(f"<th>{h}</th>" for h in head)
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"


def render_sweep_report(result: dict[str, Any]) -> str:
    """The report as one HTML string."""
    title = result.get("title") or "goodfit sweep"
    t = result.get("interpolation_threshold")
    eps = result.get("interpolation_eps")
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>",
        f"<p>Swept <code>{_e(result['param'])}</code> over {len(result['points'])} values. "
        f"Interpolation threshold (first value with training error &le; {eps}): "
        f"<b>{_e(t if t is not None else 'not reached')}</b>.</p>",
    ]
    if "emc" in result:
        parts.append(f"<p>Effective model complexity (largest n with training error &le; "
                     f"{eps}): <b>{_e(result['emc'])}</b>.</p>")  # fmt: skip
    parts.append(_img(_error_plot(result), "train and test error against the swept value"))
    parts.append(
        "<p class='note'>Shading: seed 003's EMC hypothesis (Nakkiran et al. 2019). "
        "Critically parameterized where EMC &asymp; n, read here as within a factor of 2 of the "
        "interpolation threshold (of the EMC for a sample-size sweep); under-parameterized "
        "where the training error stays above &epsilon; (EMC &lt; n), over-parameterized "
        "beyond.</p>"
    )
    if result["param"].startswith("model.") and (maps := _heat_maps(result)) is not None:
        parts.append("<h2>Error over model size and training time</h2>")
        parts.append(_img(maps, "test and training error, value x epoch"))
        parts.append(
            "<p class='note'>Nakkiran et al. 2019, Fig. 2: along a row (fixed epoch), "
            "model-wise double descent; along a column (fixed size), epoch-wise.</p>"
        )
    parts.append("<h2>Points</h2>" + _table(result))
    parts.append("<p class='note'>Generated by goodfit; self-contained.</p></body></html>")
    return "\n".join(parts)


def write_sweep_report(result: dict[str, Any], path: str | Path) -> Path:
    """Write :func:`render_sweep_report` to ``path`` atomically."""
    atomic_write_text(Path(path), render_sweep_report(result))
    return Path(path)
