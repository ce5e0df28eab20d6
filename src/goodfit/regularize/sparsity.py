"""Sparsity report: the fraction of exactly-zero weights per layer (e.g. after proximal L1)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from goodfit.hooks import Callback
from goodfit.regularize.selection import select_parameters

__all__ = ["SparsityCallback", "sparsity_report"]


def sparsity_report(model: nn.Module, *, include_bias_and_norm: bool = False) -> dict[str, float]:
    """Fraction of exact zeros among each layer's weights: ``{layer_name: zeros / numel}``.

    A layer is a module owning parameters; by default only the parameters a penalty would act on
    are counted (biases and normalization parameters excluded, see
    :func:`goodfit.regularize.selection.is_bias_or_norm`). Parameters of the root module are
    reported under ``"<root>"``. L1 shrinks weights to *exact* zeros only with a proximal
    (soft-threshold) step (GBC §7.1.2, seed 001), which is what this measures.

    Examples
    --------
    >>> net = nn.Linear(4, 2)
    >>> with torch.no_grad():
    ...     _ = net.weight.zero_()
    >>> sparsity_report(net)
    {'<root>': 1.0}
    """
    counts = _zero_counts(model, include_bias_and_norm)
    return {k: z / n for k, (z, n) in counts.items()}


def _zero_counts(model: nn.Module, include_bias_and_norm: bool) -> dict[str, tuple[int, int]]:
    sel = select_parameters(model, include_bias_and_norm=include_bias_and_norm, allow_empty=True)
    if not sel:
        return {}
    with torch.no_grad():
        zeros = torch.stack([(p == 0).sum() for _, p in sel]).tolist()  # one device sync
    count: dict[str, tuple[int, int]] = {}
    for (name, p), z in zip(sel, zeros, strict=True):
        layer = name.rpartition(".")[0] or "<root>"
        z0, n0 = count.get(layer, (0, 0))
        count[layer] = (z0 + int(z), n0 + p.numel())
    return count


class SparsityCallback(Callback):
    """Logs :func:`sparsity_report` into each epoch's history record, as
    ``"{prefix}{layer}"`` keys (default ``"sparsity/0"``, ``"sparsity/2"``, ...) plus
    ``"{prefix}total"``, the fraction of zeros over all counted weights."""

    def __init__(self, *, prefix: str = "sparsity/", include_bias_and_norm: bool = False) -> None:
        if not isinstance(prefix, str):
            raise ValueError(f"prefix must be a string, got {prefix!r}")
        self.prefix = prefix
        self.include_bias_and_norm = include_bias_and_norm

    def on_epoch_end(self, trainer: Any) -> None:
        counts = _zero_counts(trainer.model, self.include_bias_and_norm)
        for layer, (z, n) in counts.items():
            trainer.log(f"{self.prefix}{layer}", z / n)
        if counts:
            z_all = sum(z for z, _ in counts.values())
            n_all = sum(n for _, n in counts.values())
            trainer.log(f"{self.prefix}total", z_all / n_all)
