"""Wall time of a 2-D 25x25 filter-normalized loss landscape: goodfit (``torch.func``
``functional_call`` + ``vmap`` over grid points) vs the ``loss-landscapes`` package
(``random_plane(..., normalization="filter")``: the model's parameters are moved in place and
the metric evaluated point by point).

Both evaluate the same model, in eval mode, on the same samples (the full-batch mean
cross-entropy), 625 grid points each; the grids' scales differ (loss-landscapes rescales its
directions to the model's norm over ``distance``), the work does not. loss-landscapes'
filter normalization divides by every bias element's magnitude, so zero biases (BatchNorm's
shift at initialization) are replaced by small random values in both models. One process, torch
threads fixed (``--threads``, default 1: the machine is shared), warm-up, median of
``--repeats`` interleaved runs, goodfit/peer ratio printed per model.

Run: ``.venv/bin/python benchmarks/landscape.py [--repeats 5] [--samples 1000]``. Needs the
benchmark-only package ``loss-landscapes`` (3.0.6; ``pip install --no-deps loss-landscapes``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from goodfit.data import load_dataset
from goodfit.diagnose import landscape as L
from goodfit.nn import models, resnet


def _models(samples: int) -> dict[str, tuple[torch.nn.Module, torch.Tensor, torch.Tensor]]:
    torch.manual_seed(0)
    m1d = load_dataset("mnist1d")
    digits = load_dataset("digits")
    X1, y1 = m1d.X_train[:samples], m1d.y_train[:samples]
    X2, y2 = digits.X_train[:samples], digits.y_train[:samples]
    return {
        "mlp 40-100-100-10, mnist1d": (models.mlp((1, 40), (100, 100), 10), X1, y1),
        "cnn2d (16, 32) + 64, digits": (
            models.cnn2d((1, 8, 8), (16, 32), 10, hidden=(64,)),
            X2,
            y2,
        ),
        "resnet depth 1 width 8 (BN), digits": (
            resnet.resnet((1, 8, 8), 10, depth=1, width=8, norm="batch"),
            X2,
            y2,
        ),
    }


def time_goodfit(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    t0 = time.perf_counter()
    L.random_landscape(model, X, y, dims=2, steps=25, distance=1.0, seed=0)
    return time.perf_counter() - t0


def time_peer(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    import loss_landscapes
    import loss_landscapes.metrics

    metric = loss_landscapes.metrics.Loss(F.cross_entropy, X, y)
    t0 = time.perf_counter()
    with torch.no_grad():
        loss_landscapes.random_plane(
            model, metric, distance=1.0, steps=25, normalization="filter", deepcopy_model=True
        )
    return time.perf_counter() - t0


def median_times(a: Callable[[], float], b: Callable[[], float], repeats: int) -> tuple:
    """Medians of interleaved runs (a, b, a, b, ...) after one warm-up each, so a change in
    the machine's load hits both sides alike."""
    a(), b()
    runs = [(a(), b()) for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"2-D 25x25 filter-normalized landscape, {args.samples} samples, "
          f"{args.threads} thread(s), median of {args.repeats}")  # fmt: skip
    for name, (model, X, y) in _models(args.samples).items():
        model.eval()
        with torch.no_grad():  # loss-landscapes divides by each bias element: none may be 0
            for p in model.parameters():
                p.add_((p == 0) * 0.01 * torch.randn_like(p))
        ours, peer = median_times(
            lambda m=model, a=X, b=y: time_goodfit(m, a, b),
            lambda m=model, a=X, b=y: time_peer(m, a, b),
            args.repeats,
        )
        n = sum(p.numel() for p in model.parameters())
        print(f"{name:<38} {n:>7} params  goodfit {ours:7.3f} s  loss-landscapes "
              f"{peer:7.3f} s  ratio {ours / peer:.3f}x", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
