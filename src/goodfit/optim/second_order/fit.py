"""The solvers by name (:data:`SECOND_ORDER`) and :func:`fit_least_squares`, which trains an
``nn.Module`` full-batch with one of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from goodfit.optim.second_order.gauss_newton_solver import gauss_newton
from goodfit.optim.second_order.hessian_free_solver import hessian_free
from goodfit.optim.second_order.levenberg_marquardt_solver import levenberg_marquardt
from goodfit.optim.second_order.levenberg_solver import levenberg
from goodfit.optim.second_order.module_bridge import _write_back, module_residuals
from goodfit.optim.second_order.newton_solver import newton
from goodfit.optim.second_order.result import SecondOrderResult

__all__ = ["SECOND_ORDER", "fit_least_squares"]


SECOND_ORDER: dict[str, Callable[..., SecondOrderResult]] = {
    "newton": newton,
    "gauss_newton": gauss_newton,
    "levenberg_marquardt": levenberg_marquardt,
    "levenberg": levenberg,
    "hessian_free": hessian_free,
}


def fit_least_squares(
    model: nn.Module,
    X: Tensor,
    y: Tensor,
    method: str = "levenberg_marquardt",
    *,
    dtype: torch.dtype | None = torch.float64,
    **opts: Any,
) -> SecondOrderResult:
    """Train a regression model full-batch by a second-order method, in place.

    Minimizes ``0.5 ||model(X) - y||^2`` over the trainable parameters with ``method`` from
    :data:`SECOND_ORDER` (``"levenberg_marquardt"``, ``"levenberg"``, ``"gauss_newton"``,
    ``"newton"``, ``"hessian_free"``), computing in ``dtype`` (float64 by default; ``None``
    keeps the model's), then writes the solution back into the model. The model is evaluated in eval
    mode (no dropout randomness, no batch-norm statistics updates) and its mode restored.
    Each entry of ``result.records`` gains ``train_loss``, the mean squared error.

    Example
    -------
    >>> net = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1))   # doctest: +SKIP
    >>> res = fit_least_squares(net, X, y, "levenberg_marquardt", max_iter=200)  # doctest: +SKIP
    """
    if method not in SECOND_ORDER:
        raise ValueError(f"method must be one of {sorted(SECOND_ORDER)}, got {method!r}")
    was_training = model.training
    model.eval()
    try:
        residuals, x0 = module_residuals(model, X, y, dtype=dtype)
        if method in ("newton", "hessian_free"):

            def objective(x: Tensor) -> Tensor:
                r = residuals(x)
                return 0.5 * torch.dot(r, r)

            res = SECOND_ORDER[method](objective, x0, **opts)
        else:
            res = SECOND_ORDER[method](residuals, x0, **opts)
        _write_back(model, res.x)
    finally:
        model.train(was_training)
    m = y.numel()
    for rec in res.records:
        rec["train_loss"] = 2.0 * rec["loss"] / m
    return res
