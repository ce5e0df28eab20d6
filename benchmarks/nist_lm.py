"""goodfit's Levenberg-Marquardt solvers vs MINPACK (scipy.optimize.least_squares(method="lm")) on
NIST StRD: ``levenberg_marquardt`` (Moré's trust region, the default) and ``levenberg`` (the
seed's mu-adaptive form).

For every problem in the NIST folder (``$GOODFIT_NIST_DIR`` or ``<repo>/../shared/data/nist-strd``)
and both NIST starting points: digits reached (NIST's log relative error, min over parameters),
residual and Jacobian evaluations, and wall time (median of ``--repeats`` runs after a warm-up;
the three solvers timed in turn within each repeat, in one process, so that changes of machine
load fall on all three alike; ``--threads``, default 1, torch's intra-op threads for both: the
Jacobians here are too small to gain from more, and on a loaded machine a second thread's
barrier waits add noise that swamps the solvers' own cost).
Both solvers get the same residual function and an exact Jacobian: goodfit builds its own in
reverse mode from the autograd record of the accepted trial point (no second forward pass);
MINPACK (``lmder``) gets a numpy callable evaluating J from scratch at x, ``--minpack-jac
autograd`` (the default: one recorded forward and ``vmap`` over ``torch.autograd.grad`` with the
rows of I_m, the cheapest from-scratch Jacobian, bit-identical to ``jacrev``) or ``jacrev``
(``torch.func.jacrev``, whose ``vjp`` wrapping of the forward costs more) and the same tolerances
(ftol = xtol = gtol = 1e-15, goodfit's defaults) and the same budget of residual evaluations
(``--max-nfev``, default 1000 = goodfit's ``max_iter``; scipy's own default for ``lm`` is
``100 n``, with which MINPACK stops short on MGH17 start 1). "Solved" means >= 6 certified
digits.

Run: ``.venv/bin/python benchmarks/nist_lm.py [--repeats 5] [--tol 1e-15] [--max-nfev 1000]
[--threads 1] [--minpack-jac autograd|jacrev]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from scipy.optimize import least_squares
from torch.func import jacrev

from goodfit.data.nist import load_nist_dir
from goodfit.optim.second_order import levenberg, levenberg_marquardt

METHODS = {"levenberg_marquardt": levenberg_marquardt, "levenberg": levenberg}


def _interleaved_times(fns: dict[str, Callable[[], object]], repeats: int):
    """Median wall time and last result of each callable, timed in turn within each repeat
    (after one warm-up round), so a change of machine load falls on all of them alike."""
    out = {name: fn() for name, fn in fns.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            out[name] = fn()
            times[name].append(time.perf_counter() - t)
    return {name: (statistics.median(times[name]), out[name]) for name in fns}


def _row(p, s, res, t, lre, ref, t_mp, lre_mp) -> str:
    return (
        f"{p.name:10s} {s + 1:>2d} | {lre:6.2f} {res.n_fev:5d} {res.n_jev:5d} {1e3 * t:8.1f} | "
        f"{lre_mp:6.2f} {ref.nfev:5d} {ref.njev:5d} {1e3 * t_mp:8.1f} | "
        f"{res.n_jev / ref.njev:9.2f} {t / t_mp:10.2f}"
    )


def autograd_jacobian(fn: Callable[[torch.Tensor], torch.Tensor]):
    """J(x) from scratch: one forward recorded by autograd, then ``vmap`` over
    ``torch.autograd.grad`` with the rows of the identity as cotangents (``jacrev``'s
    construction without ``torch.func.vjp``'s wrapping of the forward)."""

    def jac(x: torch.Tensor) -> torch.Tensor:
        x = x.detach().requires_grad_()
        with torch.enable_grad():
            out = fn(x)
        basis = torch.eye(out.shape[0], dtype=out.dtype)

        def row(v: torch.Tensor) -> torch.Tensor:
            return torch.autograd.grad(out, x, v, retain_graph=True, materialize_grads=True)[0]

        return torch.func.vmap(row)(basis)

    return jac


def _summary(name: str, a: np.ndarray) -> None:
    """a: rows (lre_gf, lre_mp, njev_gf, njev_mp, t_gf, t_mp)."""
    solved_gf, solved_mp = int((a[:, 0] >= 6).sum()), int((a[:, 1] >= 6).sum())
    lost = int(((a[:, 1] >= 6) & (a[:, 0] < 6)).sum())
    print(
        f"{name}: solved (>= 6 digits) {solved_gf}/{len(a)}, MINPACK {solved_mp}/{len(a)}; "
        f"solved by MINPACK but not by {name}: {lost}"
    )
    print(
        f"  Jacobian evaluations: median ratio {name}/MINPACK {np.median(a[:, 2] / a[:, 3]):.3f} "
        f"(medians {np.median(a[:, 2]):.1f} vs {np.median(a[:, 3]):.1f}); "
        f"median wall-time ratio {np.median(a[:, 4] / a[:, 5]):.2f} "
        f"(total {a[:, 4].sum():.3f} s vs {a[:, 5].sum():.3f} s)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--tol", type=float, default=1e-15)
    ap.add_argument("--max-nfev", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (both)")
    ap.add_argument("--minpack-jac", choices=("autograd", "jacrev"), default="autograd")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tol, budget = args.tol, args.max_nfev
    print(
        f"tolerances {tol:g}, at most {budget} residual evaluations (trial steps for goodfit), "
        f"{args.threads} torch thread(s), median of {args.repeats}; MINPACK's Jacobian: "
        f"{args.minpack_jac}"
    )
    hdr = (
        f"{'problem':10s} {'st':>2s} | {'gf LRE':>6s} {'nfev':>5s} {'njev':>5s} {'ms':>8s} | "
        f"{'MP LRE':>6s} {'nfev':>5s} {'njev':>5s} {'ms':>8s} | "
        f"{'jev ratio':>9s} {'time ratio':>10s}"
    )
    rows: dict[str, list[tuple[float, ...]]] = {name: [] for name in METHODS}
    lines: dict[str, list[str]] = {name: [] for name in METHODS}
    for p in load_nist_dir():
        jac = (
            jacrev(p.residuals) if args.minpack_jac == "jacrev" else autograd_jacobian(p.residuals)
        )

        def f_np(b, p=p):
            return p.residuals(torch.from_numpy(b)).numpy()

        def j_np(b, jac=jac):
            return jac(torch.from_numpy(b)).numpy()

        for s, x0 in enumerate(p.starts):
            fns = {
                "MINPACK": lambda x0=x0, f_np=f_np, j_np=j_np: least_squares(
                    f_np, x0.numpy(), jac=j_np, method="lm", ftol=tol, xtol=tol, gtol=tol,
                    max_nfev=budget,
                ),
            }  # fmt: skip
            for name, solver in METHODS.items():
                fns[name] = lambda p=p, x0=x0, solver=solver: solver(
                    p.residuals, x0, ftol=tol, xtol=tol, gtol=tol, max_iter=budget
                )
            timed = _interleaved_times(fns, args.repeats)
            t_mp, ref = timed["MINPACK"]
            lre_mp = float(p.lre(torch.from_numpy(ref.x)).min())
            for name in METHODS:
                t_gf, res = timed[name]
                lre_gf = float(p.lre(res.x).min())
                rows[name].append((lre_gf, lre_mp, res.n_jev, ref.njev, t_gf, t_mp))
                lines[name].append(_row(p, s, res, t_gf, lre_gf, ref, t_mp, lre_mp))
    for name in METHODS:
        print(f"\n{name} vs MINPACK lmder")
        print(hdr)
        print("-" * len(hdr))
        print("\n".join(lines[name]))
    print("-" * len(hdr))
    for name in METHODS:
        _summary(name, np.array(rows[name]))


if __name__ == "__main__":
    main()
