"""A shared trunk with one head per task (seed 001: multitask learning, "a layer of shared
parameters"; Caruana 1997's hard parameter sharing).

:func:`multihead` takes a builder's model (:mod:`goodfit.nn.models`, built for the summed width
of every head) and splits its last linear layer into one head per task: a linear head starts
from exactly the builder's initialization of its rows (the concatenation of linear heads *is*
that layer, so nothing changes but the names: ``trunk.*``, ``heads.<task>.*``); a head with
hidden widths is ``Linear -> activation -> ... -> Linear`` with torch's default initialization.
The forward pass returns the heads' outputs concatenated in task order, ``(N, sum of widths)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

__all__ = ["MultiHead", "multihead"]


class MultiHead(nn.Module):
    """``trunk`` then every head of ``heads`` (in order) on its output, concatenated."""

    def __init__(self, trunk: nn.Module, heads: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.trunk = trunk
        self.heads = nn.ModuleDict(dict(heads))

    def forward(self, x: Tensor) -> Tensor:
        z = self.trunk(x)
        return torch.cat([head(z) for head in self.heads.values()], dim=1)


def multihead(
    model: nn.Sequential,
    widths: Mapping[str, int],
    hidden: Mapping[str, Sequence[int]] | None = None,
    activation: Callable[[], nn.Module] = nn.ReLU,
) -> MultiHead:
    """Split ``model``'s last ``nn.Linear`` (of ``sum(widths)`` outputs) into one head per task
    (``widths``: task -> output width, in order; ``hidden``: task -> hidden widths of its head)."""
    last = model[-1]
    total = sum(widths.values())
    if not isinstance(last, nn.Linear) or last.out_features != total:
        raise ValueError(
            f"multihead needs a model ending in a Linear layer of {total} outputs, got {last!r}"
        )
    hidden = dict(hidden or {})
    unknown = sorted(set(hidden) - set(widths))
    if unknown:
        raise ValueError(f"heads {unknown} are not tasks of the data; tasks: {list(widths)}")
    heads: dict[str, nn.Module] = {}
    start = 0
    for name, width in widths.items():
        sizes = list(hidden.get(name, []))
        if not sizes:
            head = nn.Linear(last.in_features, width, bias=last.bias is not None)
            with torch.no_grad():
                head.weight.copy_(last.weight[start : start + width])
                if last.bias is not None:
                    head.bias.copy_(last.bias[start : start + width])
        else:
            layers: list[nn.Module] = []
            n_in = last.in_features
            for size in sizes:
                layers += [nn.Linear(n_in, size), activation()]
                n_in = size
            head = nn.Sequential(*layers, nn.Linear(n_in, width))
        heads[name] = head
        start += width
    return MultiHead(nn.Sequential(*list(model)[:-1]), heads)
