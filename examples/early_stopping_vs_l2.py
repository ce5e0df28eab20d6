"""Early stopping ~ L2 regularization (GBC §7.8, seed 001 "Early Stopping Theory").

On a quadratic J(w) = 1/2 (w - w*)^T H (w - w*) with H = Q Lambda Q^T, gradient descent from
w = 0 for tau steps of rate eps gives, per eigen-direction i,

    Q^T w(tau) = [1 - (1 - eps lambda_i)^tau] Q^T w*            (early stopping)

while the L2 penalty alpha/2 ||w||^2 gives

    Q^T w~     = lambda_i / (lambda_i + alpha) Q^T w*           (L2)

and the two agree, to first order in x_i = eps tau lambda_i, when alpha = 1 / (eps tau)
(GBC eq. 7.44; the slide's last line prints "alpha ~ eps tau", but its own derivation
I - eps tau Lambda ~ I - alpha^-1 Lambda gives alpha^-1 = eps tau). This script trains both with
goodfit (torch SGD for the early-stopped run, goodfit.regularize.l2 + LBFGS for the penalized one)
and prints the shrink factors per direction: they match while x_i << 1 and part ways for stiff
directions (x_i ~ 1), where early stopping has already converged and L2 still shrinks.

Run: python examples/early_stopping_vs_l2.py
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import goodfit.regularize as R


def main(eps: float = 0.01, tau: int = 50) -> None:
    lam = np.array([0.01, 0.05, 0.2, 0.5, 1.0, 4.0, 20.0])
    d = len(lam)
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(d, d)))
    H = torch.from_numpy(q @ np.diag(lam) @ q.T)
    w_star = torch.from_numpy(np.random.default_rng(1).normal(size=d))
    Q = torch.from_numpy(q)

    def quad(model: nn.Linear) -> torch.Tensor:
        r = model.weight[0] - w_star
        return 0.5 * r @ H @ r

    # early stopping: tau steps of gradient descent from 0
    es = nn.Linear(d, 1, bias=False).double()
    nn.init.zeros_(es.weight)
    opt = torch.optim.SGD(es.parameters(), lr=eps)
    for _ in range(tau):
        opt.zero_grad()
        quad(es).backward()
        opt.step()

    # L2 with alpha = 1 / (eps tau), minimized to convergence
    alpha = 1.0 / (eps * tau)
    l2net = nn.Linear(d, 1, bias=False).double()
    nn.init.zeros_(l2net.weight)
    pen = R.l2(alpha)
    lbfgs = torch.optim.LBFGS(
        l2net.parameters(),
        max_iter=500,
        tolerance_grad=1e-14,
        tolerance_change=1e-16,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        lbfgs.zero_grad()
        v = quad(l2net) + pen(l2net)
        v.backward()
        return v

    for _ in range(3):
        lbfgs.step(closure)

    base = Q.T @ w_star
    f = (Q.T @ es.weight.detach()[0]) / base
    g = (Q.T @ l2net.weight.detach()[0]) / base
    print(f"eps = {eps}, tau = {tau}, alpha = 1/(eps tau) = {alpha:g}\n")
    print(f"{'lambda_i':>9} {'x=eps*tau*lam':>14} {'ES factor':>10} {'L2 factor':>10} {'ratio':>7}")
    for i in range(d):
        x = eps * tau * lam[i]
        print(
            f"{lam[i]:9.3g} {x:14.3g} {float(f[i]):10.5f} {float(g[i]):10.5f} "
            f"{float(f[i] / g[i]):7.3f}"
        )
    print("\nES factor 1-(1-eps lam)^tau vs L2 factor lam/(lam+alpha): ratio ~ 1 + x/2 for x << 1.")


if __name__ == "__main__":
    main()
