"""Forward+backward time of goodfit's dropout / normalization layers vs the nearest torch op.

Run: ``.venv/bin/python benchmarks/layers.py [--repeats 7] [--batch 128]``. One process, two
threads, float32 on CPU, input (N, 64, 16, 16) by default; each row times ``y = layer(x);
y.backward(g)`` (median over repeats of the mean of ``--inner`` calls, after a warm-up),
goodfit and torch interleaved so that machine noise hits both. Targets (issue 6): ratio <= 1.5
for the dropout kinds, <= 2 for Switchable Norm.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from goodfit.nn.dropout import (
    AdditiveGaussianNoise,
    AvgPoolDropout,
    ClassicDropout,
    DropConnectConv2d,
    DropConnectLinear,
    GaussianDropout,
    MaxDrop,
    MaxPoolDropout,
)
from goodfit.nn.norm import BiasedVarBatchNorm, SwitchableNorm, WSConv2d


def _step(layer: nn.Module, x: torch.Tensor, g: torch.Tensor) -> None:
    for p in layer.parameters():
        p.grad = None
    x.grad = None
    y = layer(x)
    y.backward(g)


def _time(layer, x, g, inner: int) -> float:
    t0 = time.perf_counter()
    for _ in range(inner):
        _step(layer, x, g)
    return (time.perf_counter() - t0) / inner


def bench(name, ours, ref, x, target, repeats, inner):
    x = x.clone().requires_grad_()
    with torch.no_grad():
        gy = ours(x)
        g = torch.randn_like(gy)
    for layer in (ours, ref):  # warm-up
        _step(layer, x, g)
        _step(layer, x, g)
    t_ours, t_ref = [], []
    for _ in range(repeats):
        t_ours.append(_time(ours, x, g, inner))
        t_ref.append(_time(ref, x, g, inner))
    a, b = statistics.median(t_ours), statistics.median(t_ref)
    ok = "" if target is None else ("ok" if a / b <= target else f"> {target}")
    print(f"{name:<34} {a * 1e3:9.2f} {b * 1e3:9.2f} {a / b:7.2f}  {ok}")
    return a / b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--inner", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    n, c, h, w = args.batch, 64, 16, 16
    x = torch.randn(n, c, h, w)
    p = 0.3
    drop_pool = nn.Sequential(nn.Dropout(p), nn.MaxPool2d(2))
    rows = [
        ("classic dropout", ClassicDropout(p), nn.Dropout(p), 1.5),
        ("classic spatial dropout", ClassicDropout(p, channelwise=True), nn.Dropout2d(p), 1.5),
        ("gaussian dropout (p/(1-p))", GaussianDropout(p), nn.Dropout(p), 1.5),
        (
            "gaussian dropout (seed000)",
            GaussianDropout(p, convention="seed000"),
            nn.Dropout(p),
            1.5,
        ),
        ("gaussian channelwise", GaussianDropout(p, channelwise=True), nn.Dropout2d(p), 1.5),
        ("additive gaussian noise", AdditiveGaussianNoise(0.1), nn.Dropout(p), 1.5),
        ("max-pool dropout vs drop+maxpool", MaxPoolDropout(p, 2), drop_pool, 1.5),
        ("max-pool dropout vs maxpool", MaxPoolDropout(p, 2), nn.MaxPool2d(2), None),
        (
            "avg-pool dropout vs drop+avgpool",
            AvgPoolDropout(p, 2),
            nn.Sequential(nn.Dropout(p), nn.AvgPool2d(2)),
            1.5,
        ),
        ("max-drop vs drop+maxpool", MaxDrop(2, mu=0.7, sigma=0.46), drop_pool, 1.5),
        (
            "dropconnect conv3x3 vs conv3x3",
            DropConnectConv2d(c, c, 3, padding=1, p=p),
            nn.Conv2d(c, c, 3, padding=1),
            1.5,
        ),
        ("switchable norm vs batchnorm", SwitchableNorm(c, dims=2), nn.BatchNorm2d(c), 2.0),
        (
            "biased-var batchnorm vs batchnorm",
            BiasedVarBatchNorm(c, dims=2),
            nn.BatchNorm2d(c),
            None,
        ),
        (
            "WS conv3x3 vs conv3x3",
            WSConv2d(c, c, 3, padding=1),
            nn.Conv2d(c, c, 3, padding=1),
            None,
        ),
    ]
    print(f"input {tuple(x.shape)} float32, {torch.get_num_threads()} threads, "
          f"median of {args.repeats} x {args.inner} fwd+bwd")  # fmt: skip
    print(f"{'layer':<34} {'ours ms':>9} {'torch ms':>9} {'ratio':>7}")
    for name, ours, ref, target in rows:
        bench(name, ours, ref, x, target, args.repeats, args.inner)
    xf = torch.randn(n, c * 16)
    bench("dropconnect linear vs linear", DropConnectLinear(c * 16, 512, p=p),
          nn.Linear(c * 16, 512), xf, 1.5, args.repeats, args.inner)  # fmt: skip
    # evaluation-mode rule of max-pool dropout (forward only would be fairer; fwd+bwd shown)
    bench("max-pool dropout eval (prob.)", MaxPoolDropout(p, 2, eval_rule="probabilistic").eval(),
          nn.MaxPool2d(2), x, None, args.repeats, args.inner)  # fmt: skip


if __name__ == "__main__":
    main()
