"""Curvature of the training loss: Hessian spectrum, trace, conditioning, stable learning rate.

All quantities come from Hessian-vector products ``Hv`` (reverse-over-reverse:
``torch.func.vjp`` of ``torch.func.grad``), so no ``n x n`` matrix is formed:

* extreme eigenvalues by Lanczos (``scipy.sparse.linalg.eigsh`` on a ``LinearOperator``), or
  by :func:`power_iteration`;
* the smallest eigenvalue tells a minimum (all eigenvalues >= 0) from a saddle point (some
  negative, some positive) — GBC "optimization challenges" (seed 001): in high dimensions
  saddle points are far more common than local minima;
* the trace by Hutchinson's estimator ``E[v^T H v]`` with Rademacher ``v`` (Hutch++
  variance reduction by default);
* the condition number ``lambda_max / lambda_min`` (ill-conditioning, seed 001);
* the largest stable gradient-descent learning rate ``2 / lambda_max``: seed 000's bound
  ``eta <= 2/M`` with ``M`` the Lipschitz constant of the gradient, which the note calls
  impractical because ``M`` is unknown — locally ``M = lambda_max``, which Lanczos estimates.

Example
-------
>>> report = curvature_report(net, nn.functional.mse_loss, X, y, k=5)  # doctest: +SKIP
>>> report.verdict, report.max_stable_lr                              # doctest: +SKIP
>>> plot_spectrum(report, "spectrum.png")                             # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import grad, vjp, vmap

from goodfit.atomic import atomic_savefig
from goodfit.optim.second_order import module_loss

__all__ = [
    "CurvatureReport",
    "analyze_curvature",
    "curvature_report",
    "eigenvalues",
    "hutchinson_trace",
    "hvp_function",
    "max_stable_lr",
    "plot_spectrum",
    "power_iteration",
]

#: Below this many parameters the spectrum is computed exactly from the dense Hessian.
DENSE_LIMIT = 64


def hvp_function(loss: Callable[[Tensor], Tensor], x: Tensor) -> Callable[[Tensor], Tensor]:
    """Hessian-vector product ``v -> H(x) v`` of a scalar ``loss`` of a flat vector.

    Reverse-over-reverse: ``vjp(grad(loss), x)`` gives ``v -> v^T H = H v`` (H symmetric);
    the gradient graph is built once and each product costs one backward pass.
    Accepts a batch ``V`` of shape ``(k, n)`` too (``vmap`` over the rows). The product is
    computed on ``x``'s device and returned on ``v``'s (CPU probe vectors for a CUDA model).
    """
    x = x.detach()
    g = grad(lambda z: loss(z).reshape(()))
    # reverse-over-reverse: the graph of grad is built once, each product is one backward
    # pass (forward-over-reverse jvp hits "ZeroTensors are immutable" on some modules)
    _, vjp_fn = vjp(g, x)

    def hvp(v: Tensor) -> Tensor:
        return vjp_fn(v)[0]

    batched = vmap(hvp)

    def apply(v: Tensor) -> Tensor:
        home = v.device
        v = v.to(device=x.device, dtype=x.dtype)
        return (hvp(v) if v.ndim == 1 else batched(v)).detach().to(home)

    return apply


def power_iteration(
    hvp: Callable[[Tensor], Tensor],
    n: int,
    *,
    max_iter: int = 1000,
    tol: float = 1e-8,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
) -> float:
    """Eigenvalue of largest magnitude by power iteration ``v <- Hv / ||Hv||``.

    Returns the Rayleigh quotient ``v^T H v`` once it changes by less than ``tol`` (relative).
    """
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(n, generator=gen, dtype=dtype)
    v /= torch.linalg.vector_norm(v)
    lam = 0.0
    for _ in range(max_iter):
        w = hvp(v)
        lam_new = float(torch.dot(v, w))
        nw = torch.linalg.vector_norm(w)
        if nw == 0:
            return 0.0
        v = w / nw
        if abs(lam_new - lam) <= tol * max(abs(lam_new), 1e-300):
            return lam_new
        lam = lam_new
    return lam


def eigenvalues(
    hvp: Callable[[Tensor], Tensor],
    n: int,
    *,
    k: int = 1,
    which: str = "LA",
    tol: float = 1e-10,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
) -> np.ndarray:
    """``k`` extreme Hessian eigenvalues by Lanczos (ARPACK ``eigsh`` on a LinearOperator).

    ``which="LA"``: largest (algebraic), ``"SA"``: smallest. Returned sorted in descending
    order for "LA" and ascending for "SA". With fewer than :data:`DENSE_LIMIT` parameters
    the dense Hessian is built from ``n`` products and ``eigvalsh`` used (exact).
    """
    if which not in ("LA", "SA"):
        raise ValueError(f"which must be 'LA' or 'SA', got {which!r}")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    k = min(k, n)
    if n <= DENSE_LIMIT or k >= n - 1:
        H = hvp(torch.eye(n, dtype=dtype))
        w = torch.linalg.eigvalsh(0.5 * (H + H.T)).numpy()
    else:
        from scipy.sparse.linalg import LinearOperator, eigsh

        def mv(v: np.ndarray) -> np.ndarray:
            return hvp(torch.from_numpy(np.ascontiguousarray(v.reshape(-1))).to(dtype)).numpy()

        op = LinearOperator((n, n), matvec=mv, dtype=np.float64)
        v0 = np.random.default_rng(seed).standard_normal(n)
        w = eigsh(op, k=k, which=which, tol=tol, v0=v0, return_eigenvectors=False)
    w = np.sort(np.asarray(w, dtype=np.float64))
    return w[::-1][:k].copy() if which == "LA" else w[:k].copy()


def hutchinson_trace(
    hvp: Callable[[Tensor], Tensor],
    n: int,
    *,
    n_samples: int = 100,
    method: str = "hutch++",
    batch_size: int = 50,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
) -> tuple[float, float]:
    """Trace of the Hessian from ``n_samples`` Hessian-vector products.

    ``method="hutchinson"``: Hutchinson's estimator ``tr(H) ~ mean_i v_i^T H v_i`` with
    Rademacher ``v_i`` (unbiased, variance ``2 (||H||_F^2 - sum_i H_ii^2)`` per sample).
    ``method="hutch++"`` (default; Meyer, Musco, Musco & Woodruff 2021): a third of the budget
    sketches the dominant range ``Q = orth(H S)``, whose trace ``tr(Q^T H Q)`` is exact, and
    Hutchinson's estimator is applied to the deflated ``(I - QQ^T) H (I - QQ^T)`` only —
    unbiased, with much lower variance when a few eigenvalues dominate (neural-net Hessians).
    Returns ``(estimate, standard error)``; the error is that of the Hutchinson part.
    """
    if not isinstance(n_samples, int) or n_samples < 2:
        raise ValueError(f"n_samples must be an integer >= 2, got {n_samples!r}")
    if method not in ("hutchinson", "hutch++"):
        raise ValueError(f"method must be 'hutchinson' or 'hutch++', got {method!r}")
    gen = torch.Generator().manual_seed(seed)

    def rademacher(b: int) -> Tensor:
        return torch.randint(0, 2, (b, n), generator=gen).to(dtype) * 2 - 1

    def apply(V: Tensor) -> Tensor:  # rows of V -> rows of H V, in batches
        return torch.cat([hvp(V[i : i + batch_size]) for i in range(0, V.shape[0], batch_size)])

    exact = 0.0
    m = n_samples
    Q = None
    if method == "hutch++" and n_samples >= 6:
        k = min(n_samples // 3, n)
        Q = torch.linalg.qr(apply(rademacher(k)).T).Q  # (n, k) orthonormal
        exact = float((Q * apply(Q.T).T).sum())  # tr(Q^T H Q)
        m = n_samples - 2 * k
    G = rademacher(m)
    if Q is not None:
        G = G - (G @ Q) @ Q.T  # (I - QQ^T) g
    s = (G * apply(G)).sum(1)
    return exact + float(s.mean()), float(s.std() / math.sqrt(m))


def max_stable_lr(lambda_max: float) -> float:
    """Largest stable gradient-descent step, ``eta < 2 / lambda_max`` (seed 000 ``eta <= 2/M``).

    On a quadratic with top Hessian eigenvalue ``lambda_max``, GD's error along that eigenvector
    is multiplied by ``1 - eta lambda_max`` per step: it shrinks iff ``eta < 2/lambda_max``.
    Returns ``inf`` when ``lambda_max <= 0`` (no positive curvature to bound the step).
    """
    return 2.0 / lambda_max if lambda_max > 0 else math.inf


@dataclass
class CurvatureReport:
    """Curvature summary of a loss at a point (see :func:`curvature_report`)."""

    n_params: int
    loss: float
    grad_norm: float
    top_eigenvalues: list[float]
    bottom_eigenvalues: list[float]
    lambda_max: float
    lambda_min: float
    trace: float
    trace_stderr: float
    condition_number: float
    max_stable_lr: float
    verdict: str
    n_hvp: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (``inf`` kept as float; json writes it as Infinity)."""
        return asdict(self)


def _verdict(lmax: float, lmin: float, rtol: float) -> str:
    scale = max(abs(lmax), abs(lmin), 1e-300)
    neg = lmin < -rtol * scale
    pos = lmax > rtol * scale
    if neg and pos:
        return "saddle"
    if neg:
        return "maximum"
    if pos:
        return "minimum"
    return "flat"


def analyze_curvature(
    loss: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    k: int = 5,
    n_trace_samples: int = 100,
    rtol: float = 1e-6,
    seed: int = 0,
) -> CurvatureReport:
    """Curvature report of a scalar ``loss`` of a flat parameter vector at ``x``.

    ``verdict``: "minimum" when ``lambda_min >= -rtol * max|lambda|`` (GBC, seed 001: at a
    minimum the Hessian's eigenvalues are all positive), "saddle" when it has eigenvalues of
    both signs, "maximum" when all are negative, "flat" when all are ~0. It describes the
    local curvature; ``grad_norm`` says whether ``x`` is a critical point.
    ``condition_number = lambda_max / lambda_min`` when ``lambda_min > 0``, else ``inf``.
    """
    x = x.detach()
    if not x.is_floating_point():
        x = x.to(torch.float64)
    n = x.numel()
    count = {"n": 0}
    raw = hvp_function(loss, x)

    def hvp(v: Tensor) -> Tensor:
        count["n"] += 1 if v.ndim == 1 else v.shape[0]
        return raw(v.to(x.dtype)).to(device="cpu", dtype=torch.float64)

    with torch.enable_grad():
        xg = x.clone().requires_grad_(True)
        val = loss(xg).reshape(())
        (g,) = torch.autograd.grad(val, xg)
    kk = min(k, n)
    top = eigenvalues(hvp, n, k=kk, which="LA", seed=seed)
    bottom = eigenvalues(hvp, n, k=kk, which="SA", seed=seed + 1)
    lmax, lmin = float(top[0]), float(bottom[0])
    tr, se = hutchinson_trace(hvp, n, n_samples=n_trace_samples, seed=seed)
    cond = lmax / lmin if lmin > 0 else math.inf
    verdict = _verdict(lmax, lmin, rtol)
    notes = []
    if verdict == "saddle":
        notes.append("negative curvature: a saddle point (GBC 8.2.3); Newton's method is "
                     "attracted to it, damped Newton / first-order methods escape")  # fmt: skip
    if math.isinf(cond):
        notes.append("Hessian not positive definite: condition number infinite")
    elif cond > 1e6:
        notes.append(f"ill-conditioned (kappa = {cond:.3g}): gradient descent is slow (GBC 8.2.1)")
    return CurvatureReport(
        n_params=n,
        loss=float(val.detach()),
        grad_norm=float(torch.linalg.vector_norm(g)),
        top_eigenvalues=[float(v) for v in top],
        bottom_eigenvalues=[float(v) for v in bottom],
        lambda_max=lmax,
        lambda_min=lmin,
        trace=tr,
        trace_stderr=se,
        condition_number=cond,
        max_stable_lr=max_stable_lr(lmax),
        verdict=verdict,
        n_hvp=count["n"],
        notes=notes,
    )


def curvature_report(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    X: Tensor,
    y: Tensor,
    *,
    k: int = 5,
    n_trace_samples: int = 100,
    rtol: float = 1e-6,
    dtype: torch.dtype | None = torch.float64,
    seed: int = 0,
) -> CurvatureReport:
    """Curvature of the training loss ``loss_fn(model(X), y)`` at the model's parameters.

    Full-batch, in ``dtype`` (float64 by default, for accurate eigenvalues), with the model in
    eval mode (mode restored). See :func:`analyze_curvature` for the fields.
    """
    was_training = model.training
    model.eval()
    try:
        loss, x0 = module_loss(model, loss_fn, X, y, dtype=dtype)
        return analyze_curvature(
            loss, x0, k=k, n_trace_samples=n_trace_samples, rtol=rtol, seed=seed
        )
    finally:
        model.train(was_training)


def plot_spectrum(report: CurvatureReport, path: str | os.PathLike[str]) -> Any:
    """Plot the estimated extreme eigenvalues (Ritz values) and save to ``path``.

    Left: the top-k and bottom-k eigenvalues on a symmetric-log axis, the zero line (a saddle
    has points on both sides) and the text summary; returns the matplotlib Figure.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    top, bot = report.top_eigenvalues, report.bottom_eigenvalues
    ax.plot(range(1, len(top) + 1), top, "o", color="C0", label="largest (Lanczos)")
    ax.plot(range(1, len(bot) + 1), bot, "s", color="C3", label="smallest (Lanczos)")
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_yscale("symlog", linthresh=max(1e-6, 1e-4 * max(abs(report.lambda_max), 1e-12)))
    ax.set_xlabel("rank")
    ax.set_ylabel("Hessian eigenvalue")
    ax.set_title(
        f"{report.verdict}: λmax={report.lambda_max:.4g}, λmin={report.lambda_min:.4g}, "
        f"tr≈{report.trace:.4g}, 2/λmax={report.max_stable_lr:.3g}",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, os.fspath(path))
    return fig
