"""An ``nn.Module`` as a function of one flat parameter vector (``torch.func.functional_call``):
the residuals and the loss the solvers minimize, and the write-back of their solution."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call

__all__ = ["module_loss", "module_residuals"]


def _trainable(model: nn.Module) -> tuple[list[str], list[Tensor]]:
    names, params = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            names.append(name)
            params.append(p)
    if not params:
        raise ValueError("the model has no trainable parameters (requires_grad=True)")
    return names, params


def _module_caller(
    model: nn.Module, dtype: torch.dtype | None
) -> tuple[Tensor, Callable[[Tensor, Tensor], Tensor]]:
    names, params = _trainable(model)
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]
    x0 = torch.cat([p.detach().reshape(-1) for p in params])
    if dtype is not None:
        x0 = x0.to(dtype)
    frozen = {k: v.detach() for k, v in model.named_parameters() if k not in set(names)}
    frozen.update({k: v for k, v in model.named_buffers()})
    if dtype is not None:
        frozen = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in frozen.items()}

    def call(x: Tensor, inputs: Tensor) -> Tensor:
        chunks = torch.split(x, sizes)
        state = {n: c.view(s) for n, c, s in zip(names, chunks, shapes, strict=True)}
        state.update(frozen)
        return functional_call(model, state, (inputs,))

    return x0, call


def module_residuals(
    model: nn.Module, X: Tensor, y: Tensor, *, dtype: torch.dtype | None = torch.float64
) -> tuple[Callable[[Tensor], Tensor], Tensor]:
    """Residual function ``r(x) = (model_x(X) - y).reshape(-1)`` of a flat parameter vector.

    Uses ``torch.func.functional_call``; returns ``(residuals, x0)`` with ``x0`` the model's
    current trainable parameters flattened (cast to ``dtype``; data too). Raises ValueError
    when the prediction and ``y`` shapes differ (broadcasting would silently build an
    ``N x N`` residual).
    """
    x0, call = _module_caller(model, dtype)
    X, y = X.to(x0.device), y.to(x0.device)  # data may sit on the CPU beside a CUDA model
    if dtype is not None:
        X = X.to(dtype) if X.is_floating_point() else X
        y = y.to(dtype)
    with torch.no_grad():
        pred = call(x0, X)
    if pred.shape != y.shape:
        raise ValueError(
            f"residual shape mismatch: model output has shape {tuple(pred.shape)} but y has "
            f"shape {tuple(y.shape)}; reshape y (e.g. y.reshape{tuple(pred.shape)}) so they match"
        )

    def residuals(x: Tensor) -> Tensor:
        return (call(x, X) - y).reshape(-1)

    return residuals, x0


def module_loss(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    X: Tensor,
    y: Tensor,
    *,
    dtype: torch.dtype | None = None,
) -> tuple[Callable[[Tensor], Tensor], Tensor]:
    """Scalar training loss ``L(x) = loss_fn(model_x(X), y)`` of a flat parameter vector.

    Returns ``(loss, x0)``; see :func:`module_residuals` for ``dtype``.
    """
    x0, call = _module_caller(model, dtype)
    X, y = X.to(x0.device), y.to(x0.device)
    if dtype is not None:
        X = X.to(dtype) if X.is_floating_point() else X
        y = y.to(dtype) if y.is_floating_point() else y

    def loss(x: Tensor) -> Tensor:
        return loss_fn(call(x, X), y)

    return loss, x0


def _write_back(model: nn.Module, x: Tensor) -> None:
    _, params = _trainable(model)
    with torch.no_grad():
        offset = 0
        for p in params:
            k = p.numel()
            p.copy_(x[offset : offset + k].view_as(p).to(p.dtype))
            offset += k
