"""Levenberg-Marquardt on a small MLP (2-32-16-1, tanh: 641 parameters) against MINPACK.

A regression of ``sin(3 x1) cos(2 x2)`` on 1000 points (fixed seed), started from the same
PyTorch-default initialization, solved by goodfit's ``levenberg_marquardt`` and by MINPACK's
``lmder`` (scipy ``least_squares(method="lm")``) with the same residual function, the same
``torch.func.jacrev`` Jacobian and the same tolerances, for ``--trials`` trial steps each
(``max_iter`` / ``max_nfev``). Printed: the wall time per trial step (median of ``--repeats``,
timed in turn in one process), the Jacobians, the final cost.

With ``n = 641`` parameters the ``n x n`` linear algebra of each trial step (lmpar's
factorizations of ``[R; sqrt(par) D]``) is what this measures, not Python overhead.

Run: ``.venv/bin/python benchmarks/lm_mlp.py [--trials 30] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from scipy.optimize import least_squares
from torch import nn
from torch.func import jacrev

from goodfit.optim.second_order import levenberg_marquardt, module_residuals


def _problem() -> tuple:
    g = torch.Generator().manual_seed(0)
    X = torch.rand(1000, 2, generator=g, dtype=torch.float64) * 2 - 1
    y = (torch.sin(3 * X[:, 0]) * torch.cos(2 * X[:, 1])).unsqueeze(1)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 1))
    residuals, x0 = module_residuals(net, X, y)
    return residuals, x0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(2)
    residuals, x0 = _problem()
    jac = jacrev(residuals)

    def goodfit():
        return levenberg_marquardt(residuals, x0, max_iter=args.trials)

    def minpack():
        return least_squares(
            lambda b: residuals(torch.from_numpy(b)).numpy(),
            x0.numpy(),
            jac=lambda b: jac(torch.from_numpy(b)).numpy(),
            method="lm", ftol=1e-15, xtol=1e-15, gtol=1e-15, max_nfev=args.trials,
        )  # fmt: skip

    times: dict[str, list[float]] = {"goodfit": [], "MINPACK": []}
    out = {}
    for _ in range(args.repeats):
        for name, fn in (("goodfit", goodfit), ("MINPACK", minpack)):
            t = time.perf_counter()
            out[name] = fn()
            times[name].append(time.perf_counter() - t)
    gf, mp = out["goodfit"], out["MINPACK"]
    t_gf, t_mp = statistics.median(times["goodfit"]), statistics.median(times["MINPACK"])
    print(f"MLP 2-32-16-1: n = {x0.numel()} parameters, m = 1000 residuals")
    print(f"goodfit: {gf.n_iter} trials, {gf.n_jev} Jacobians, cost {gf.fun:.6g}, "
          f"{1e3 * t_gf / gf.n_iter:.1f} ms per trial")  # fmt: skip
    print(f"MINPACK: {mp.nfev} trials, {mp.njev} Jacobians, cost {mp.cost:.6g}, "
          f"{1e3 * t_mp / mp.nfev:.1f} ms per trial")  # fmt: skip
    print(f"per-trial wall-time ratio goodfit/MINPACK {(t_gf / gf.n_iter) / (t_mp / mp.nfev):.2f}")


if __name__ == "__main__":
    main()
