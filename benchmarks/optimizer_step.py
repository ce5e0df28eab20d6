"""Optimizer step time: goodfit (default and compiled path) vs torch.optim (single-tensor,
foreach, fused) on ~11.5M float32 parameters in 74 tensors (36 of 512x512, 36 of 512,
2 of 1024x1024), 2 threads, in one process.

Run:  .venv/bin/python benchmarks/optimizer_step.py [--steps 10] [--no-compile] [--only adam]
      [--device cuda]   (on a GPU: each step is timed between two device synchronizations)

Each variant gets identical parameters and the same (shared, read-only) gradients; after
warm-up (which includes torch.compile's compilation for the compiled path, reported
separately) the variants are timed in interleaved rounds, one step each per round, and the
median over rounds is reported with ratios and the effective bandwidth (bytes an ideal fused
kernel moves per parameter: Adam 28 = read p, g, m, v + write p, m, v; the others 20).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import goodfit.optim as go

SHAPES = [(512, 512)] * 36 + [(512,)] * 36 + [(1024, 1024)] * 2

# name: (torch class, torch kwargs, goodfit factory, goodfit kwargs, torch has fused, bytes/param)
CONFIGS = {
    "adam": (torch.optim.Adam, dict(lr=1e-3), go.adam, dict(lr=1e-3), True, 28),
    "sgd_momentum": (
        torch.optim.SGD,
        dict(lr=1e-2, momentum=0.9),
        go.sgd,
        dict(lr=1e-2, momentum=0.9),
        True,
        20,
    ),
    "adagrad": (torch.optim.Adagrad, dict(lr=1e-2), go.adagrad, dict(lr=1e-2), True, 20),
    "rmsprop": (torch.optim.RMSprop, dict(lr=1e-2), go.rmsprop, dict(lr=1e-2), False, 20),
}


def make_params(init):
    return [torch.nn.Parameter(x.clone()) for x in init]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=10, help="timed rounds (median reported)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--no-compile", action="store_true", help="skip goodfit's compiled path")
    ap.add_argument("--only", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--device", default="cpu", help="cpu (2 threads) or cuda")
    args = ap.parse_args()
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if dev.type == "cpu":
        torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(0)
    init = [(torch.randn(s, generator=gen) * 0.1).to(dev) for s in SHAPES]
    grads = [(torch.randn(s, generator=gen) * 0.01).to(dev) for s in SHAPES]
    n = sum(x.numel() for x in init)
    where = f"{torch.get_num_threads()} threads" if dev.type == "cpu" else str(dev)
    print(f"{n / 1e6:.2f}M float32 parameters in {len(init)} tensors, {where}")
    print(f"torch {torch.__version__}")
    header = f"{'optimizer':<13} {'implementation':<22} {'median ms':>10} {'vs torch single':>16} "
    header += f"{'vs torch fused':>15} {'GB/s':>7}"
    for name in args.only:
        cls, tkw, fac, gkw, has_fused, nbytes = CONFIGS[name]
        variants = {
            "torch single-tensor": (cls, dict(tkw, foreach=False)),
            "torch foreach": (cls, dict(tkw, foreach=True)),
        }
        if has_fused:
            variants["torch fused"] = (cls, dict(tkw, fused=True))
        variants["goodfit default"] = (fac, gkw)
        if not args.no_compile:
            variants["goodfit compiled"] = (fac, dict(gkw, compiled=True))
        opts = {}
        for label, (make, kw) in variants.items():
            ps = make_params(init)
            for p, g in zip(ps, grads, strict=True):
                p.grad = g
            opt = make(ps, **kw)
            sync()
            t0 = time.perf_counter()
            opt.step()
            sync()
            first = time.perf_counter() - t0
            for _ in range(args.warmup):
                opt.step()
            opts[label] = opt
            if first > 1.0:
                print(f"  [{name}] {label}: first step (incl. compilation) {first:.1f} s")
        times = {label: [] for label in opts}
        for _ in range(args.steps):
            for label, opt in opts.items():
                sync()
                t0 = time.perf_counter()
                opt.step()
                sync()
                times[label].append(time.perf_counter() - t0)
        med = {label: statistics.median(ts) for label, ts in times.items()}
        print()
        print(header)
        for label, m in med.items():
            vs_single = m / med["torch single-tensor"]
            vs_fused = f"{m / med['torch fused']:.2f}x" if "torch fused" in med else "-"
            gbs = nbytes * n / m / 1e9
            row = f"{name:<13} {label:<22} {m * 1e3:>10.2f} {vs_single:>15.2f}x"
            print(f"{row} {vs_fused:>15} {gbs:>7.1f}")
        del opts


if __name__ == "__main__":
    main()
