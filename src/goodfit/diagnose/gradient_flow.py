"""Gradient flow: per-layer gradient norms during training, with vanishing / exploding flags.

Seed 000 §1.1.1: "gradient explosion and vanishing ... can lead to under-fitting"; seed 001
("Optimization Challenges"): repeated multiplication by ``W = V diag(λ) V⁻¹`` makes gradients
vanish (``λᵢ < 1``) or explode (``λᵢ > 1``), the latter as a *cliff*: one step where the gradient
norm jumps by orders of magnitude.

A *layer* is a module owning parameters directly (``module.parameters(recurse=False)``); its
gradient norm is ``sqrt(Σ_p ||∇p||²)`` over those parameters.

Flags, computed once per epoch from the sampled steps of that epoch:

* **vanishing**: the layer's mean norm over the epoch is at most ``vanish_threshold`` (default
  ``1e-7``) times the largest layer's mean norm (the gradient does not reach that layer), or all
  layers' norms are zero;
* **exploding**: some sampled norm is non-finite, or above ``explode_factor`` (default 100) times
  the layer's median norm over the first epoch (a cliff / sustained growth), or above
  ``max_norm`` when given.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from goodfit.atomic import figure_to_png
from goodfit.hooks import Callback

if TYPE_CHECKING:  # pragma: no cover
    from goodfit.train.loop import Trainer

__all__ = ["GradientFlowCallback", "layer_parameters", "plot_gradient_flow"]


def layer_parameters(model: torch.nn.Module) -> list[tuple[str, list[torch.nn.Parameter]]]:
    """``[(layer_name, [params])]`` for every module that owns trainable parameters directly,
    in ``named_modules`` order (input to output for ``nn.Sequential``)."""
    layers = []
    for name, module in model.named_modules():
        params = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if params:
            layers.append((name or type(module).__name__, params))
    return layers


class GradientFlowCallback(Callback):
    """Record per-layer gradient norms every ``every`` optimizer steps (hook
    ``on_after_backward``) and flag vanishing / exploding gradients (see the module docstring).

    Cost per sampled step: one ``torch._foreach_norm`` over the gradients, one ``stack`` and one
    ``index_add_`` — all on the gradients' device, no host sync. The values are moved to the host
    once per epoch (``on_epoch_end``), where the callback logs into the epoch record
    ``grad_norm/<layer>`` (mean norm over the epoch's sampled steps), ``grad_norm_max`` (largest
    sampled layer norm), and ``grad_vanishing`` / ``grad_exploding`` (number of flagged layers).

    After training: ``layers`` (names), ``steps`` (sampled step numbers), ``norms`` (one list of
    per-layer norms per sampled step), ``flags`` (dicts with ``epoch``, ``step``, ``layer``,
    ``kind``, ``value``); :meth:`to_dict` gives them as one JSON-ready dict for the report and
    :func:`plot_gradient_flow` draws them.

    Parameters
    ----------
    every
        Sample every ``every``-th optimizer step (>= 1).
    vanish_threshold
        Relative threshold for vanishing gradients (> 0).
    explode_factor
        Growth over the first epoch's median that counts as exploding (> 1).
    max_norm
        Optional absolute norm above which a layer is flagged as exploding.
    """

    def __init__(
        self,
        every: int = 1,
        *,
        vanish_threshold: float = 1e-7,
        explode_factor: float = 100.0,
        max_norm: float | None = None,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an integer >= 1, got {every!r}")
        if not vanish_threshold > 0:
            raise ValueError(f"vanish_threshold must be > 0, got {vanish_threshold}")
        if not explode_factor > 1:
            raise ValueError(f"explode_factor must be > 1, got {explode_factor}")
        if max_norm is not None and not max_norm > 0:
            raise ValueError(f"max_norm must be None or > 0, got {max_norm}")
        self.every = every
        self.vanish_threshold = float(vanish_threshold)
        self.explode_factor = float(explode_factor)
        self.max_norm = None if max_norm is None else float(max_norm)
        self.layers: list[str] = []
        self.steps: list[int] = []
        self.norms: list[list[float]] = []
        self.flags: list[dict[str, Any]] = []
        self.reference: list[float] | None = None  # per-layer median norm of the first epoch
        self._params: list[torch.nn.Parameter] = []
        self._index: torch.Tensor | None = None
        self._pending: list[torch.Tensor] = []
        self._pending_steps: list[int] = []
        self._last_step = -1

    def __repr__(self) -> str:
        return (
            f"GradientFlowCallback(every={self.every}, vanish_threshold={self.vanish_threshold}, "
            f"explode_factor={self.explode_factor}, max_norm={self.max_norm})"
        )

    #: ``fit_many`` keeps one copy per member and hands each copy its member's per-layer
    #: norms (:meth:`record_norms`), computed for all members at once on the stacked gradients.
    per_member_layer_norms = True

    # -- hooks ---------------------------------------------------------------------------------
    def on_fit_start(self, trainer: Trainer) -> None:
        layers = layer_parameters(trainer.model)
        names = [name for name, _ in layers]
        if self.layers and names != self.layers:
            raise ValueError(
                f"GradientFlowCallback was used with layers {self.layers}, now sees {names}"
            )
        self.layers = names
        self._params = [p for _, params in layers for p in params]
        index = [i for i, (_, params) in enumerate(layers) for _ in params]
        device = self._params[0].device if self._params else torch.device("cpu")
        self._index = torch.tensor(index, dtype=torch.long, device=device)
        self._pending, self._pending_steps, self._last_step = [], [], -1

    def samples(self, step: int) -> bool:
        """Whether the norms of optimizer step ``step`` are recorded (every ``every``-th, the
        first call of a step only)."""
        return step % self.every == 0 and step != self._last_step and self._index is not None

    def on_after_backward(self, trainer: Trainer) -> None:
        step = trainer.step
        # closures (LBFGS) call this hook several times per step: record the first call only
        if not self.samples(step):
            return
        grads = [p.grad for p in self._params]
        index = self._index
        if any(g is None for g in grads):  # unused / frozen parameters this step
            keep = [i for i, g in enumerate(grads) if g is not None]
            if not keep:
                return
            grads = [grads[i] for i in keep]
            index = index[torch.tensor(keep, device=index.device)]
        norms = torch._foreach_norm(grads)
        sq = torch.stack([n.to(torch.float32) for n in norms]).square()
        layer = torch.zeros(len(self.layers), dtype=sq.dtype, device=sq.device)
        self.record_norms(step, layer.index_add_(0, index.to(sq.device), sq).sqrt_())

    @staticmethod
    def parameter_layers(model: torch.nn.Module) -> list[list[str]]:
        """The names of each layer's parameters (``named_parameters`` names, layers as
        :func:`layer_parameters` finds them): what ``fit_many`` sums per member."""
        names = {id(p): n for n, p in model.named_parameters()}
        return [[names[id(p)] for p in params] for _, params in layer_parameters(model)]

    def record_norms(self, step: int, norms: torch.Tensor) -> None:
        """Record step ``step``'s per-layer gradient norms (float32, one per layer, in
        :attr:`layers` order), as :meth:`on_after_backward` does from the model's gradients;
        ``fit_many`` calls it with a stacked member's norms. Steps not sampled are ignored."""
        if not self.samples(step):
            return
        self._last_step = step
        self._pending.append(norms)
        self._pending_steps.append(step)

    def on_epoch_end(self, trainer: Trainer) -> None:
        if not self._pending:
            return
        block = torch.stack(self._pending).cpu()  # the one host sync per epoch
        steps = self._pending_steps
        self._pending, self._pending_steps = [], []
        self.steps.extend(steps)
        self.norms.extend(block.tolist())
        finite = torch.isfinite(block)
        clean = torch.where(finite, block, torch.zeros_like(block))
        mean = clean.sum(0) / finite.sum(0).clamp(min=1)
        if self.reference is None:
            self.reference = clean.median(dim=0).values.tolist()
        epoch = int(getattr(trainer, "epoch", 0)) + 1  # 1-based, as the history's "epoch"
        last = steps[-1]
        n_vanish = n_explode = 0
        top = float(mean.max())
        peak, arg = torch.where(finite, block, torch.full_like(block, math.inf)).max(dim=0)
        for i, name in enumerate(self.layers):
            trainer.log(f"grad_norm/{name}", float(mean[i]))
            m = float(mean[i])
            if top == 0.0 or m <= self.vanish_threshold * top:
                n_vanish += 1
                self.flags.append(
                    {"epoch": epoch, "step": last, "layer": name, "kind": "vanishing", "value": m}
                )
            p = float(peak[i])
            ref = self.reference[i]
            limits = [self.max_norm] if self.max_norm is not None else []
            if ref > 0:
                limits.append(self.explode_factor * ref)
            if not math.isfinite(p) or any(p > lim for lim in limits):
                n_explode += 1
                value = p if math.isfinite(p) else None
                self.flags.append(
                    {
                        "epoch": epoch,
                        "step": steps[int(arg[i])],
                        "layer": name,
                        "kind": "exploding",
                        "value": value,
                    }
                )
        trainer.log("grad_norm_max", float(peak.max()) if torch.isfinite(peak).all() else math.inf)
        trainer.log("grad_vanishing", n_vanish)
        trainer.log("grad_exploding", n_explode)

    def on_fit_end(self, trainer: Trainer) -> None:
        if self._pending:  # steps after the last epoch end (a stop requested mid-epoch)
            self.on_epoch_end(trainer)

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "layers": list(self.layers),
            "steps": torch.tensor(self.steps, dtype=torch.long),
            "norms": torch.tensor(self.norms, dtype=torch.float32).reshape(
                len(self.norms), len(self.layers)
            ),
            "reference": None if self.reference is None else torch.tensor(self.reference),
            "flags": [dict(f) for f in self.flags],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.layers = list(state["layers"])
        self.steps = [int(s) for s in state["steps"].tolist()]
        self.norms = state["norms"].tolist()
        ref = state["reference"]
        self.reference = None if ref is None else ref.tolist()
        self.flags = [dict(f) for f in state["flags"]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record: ``{"layers", "steps", "norms", "flags", "every",
        "vanish_threshold", "explode_factor", "max_norm"}`` (non-finite norms become ``None``)."""

        def clean(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "layers": list(self.layers),
            "steps": list(self.steps),
            "norms": [[clean(v) for v in row] for row in self.norms],
            "flags": [dict(f) for f in self.flags],
            "every": self.every,
            "vanish_threshold": self.vanish_threshold,
            "explode_factor": self.explode_factor,
            "max_norm": self.max_norm,
        }


def plot_gradient_flow(
    data: dict[str, Any] | GradientFlowCallback,
    path: str | Path | None = None,
    *,
    title: str = "Gradient flow: per-layer gradient norm",
) -> bytes:
    """Plot per-layer gradient norms over training steps on a log scale; exploding flags are
    marked with red crosses at the step of their peak.

    ``data`` is a :class:`GradientFlowCallback` or its :meth:`~GradientFlowCallback.to_dict`.
    Returns the PNG bytes (and writes them to ``path`` when given).
    """
    from matplotlib.figure import Figure

    if isinstance(data, GradientFlowCallback):
        data = data.to_dict()
    layers, steps, norms = data["layers"], data["steps"], data["norms"]
    fig = Figure(figsize=(8, 4.2), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    tiny = 1e-30  # zero norms would vanish from a log axis; show them at the floor
    for i, name in enumerate(layers):
        ys = [max(row[i], tiny) if row[i] is not None else float("nan") for row in norms]
        ax.plot(steps, ys, lw=1.2, label=name)
    for flag in data.get("flags", []):
        if flag["kind"] == "exploding" and flag.get("value") is not None:
            ax.plot([flag["step"]], [flag["value"]], "x", color="red", ms=8)
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("gradient L2 norm")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    if layers:
        ax.legend(fontsize=7, ncol=min(4, len(layers)), loc="best")
    return figure_to_png(fig, path)
