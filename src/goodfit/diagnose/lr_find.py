"""The learning-rate range test: :func:`lr_find` and the ``goodfit lr-find`` command.

An exponential sweep of the learning rate over a few hundred minibatch steps, recording the
training loss at each rate, smoothing it, and stopping once it diverges. The curve is read the
way seed 000 §1.2.3.2 describes the choice of the initial learning rate:

* too small a rate — "the loss will almost not change" (a flat region at low rates);
* a suitable rate — "the loss will decrease confidently";
* too high a rate — "the loss will change with large spikes" (and finally diverge).

Two rates are suggested: the one at the steepest descent of the smoothed loss and the one at
its minimum divided by 10. The model, the optimizer and every RNG are restored afterwards, so
the call has no side effect.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from goodfit.atomic import atomic_savefig
from goodfit.checks import check_int, check_real
from goodfit.train.checkpoint import capture_rng_state, restore_rng_state
from goodfit.train.loop import default_loss, infer_task, seed_everything

__all__ = ["LRFindResult", "check_lr_find_args", "lr_find"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


@dataclasses.dataclass
class LRFindResult:
    """The outcome of :func:`lr_find`.

    Attributes
    ----------
    lrs : list of float
        The learning rate of each step done (``lr_i = min_lr (max_lr/min_lr)^(i/(steps-1))``).
    losses : list of float
        The raw minibatch loss at each step (before that step's update).
    smoothed : list of float
        Bias-corrected exponential moving average of ``losses``.
    suggestion_steepest : float or None
        The rate of most negative ``d smoothed / d log(lr)`` on the descending part of the curve.
    suggestion_min_div10 : float or None
        The rate at the minimum of the smoothed loss, divided by 10.
    diverged_at : float or None
        The rate at which the sweep stopped because the loss diverged (None: it ran to the end).
    reading : str
        The curve read as seed 000 §1.2.3.2 does: flat (too low), confident decrease (good),
        spikes / divergence (too high).
    regions : dict
        The numbers behind ``reading``: ``flat_until``, ``decrease_from``, ``decrease_to``,
        ``relative_decrease``, ``spikes_from`` (rates or None).
    settings : dict
        The arguments of the sweep (``min_lr``, ``max_lr``, ``steps``, ``batch_size``, ...).
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion_steepest: float | None
    suggestion_min_div10: float | None
    diverged_at: float | None
    reading: str
    regions: dict[str, Any] = dataclasses.field(default_factory=dict)
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def suggestion(self) -> float | None:
        """The recommended rate: the steepest-descent one, else the minimum / 10.

        The steepest descent lies in the middle of the "confident decrease" that seed 000 calls
        a suitable rate, where one step lowers the loss the most per decade of rate; the minimum
        divided by 10 is a more conservative rule (the minimum itself sits at the edge of
        divergence) and is used when the curve has no descending part to measure.
        """
        if self.suggestion_steepest is not None:
            return self.suggestion_steepest
        return self.suggestion_min_div10

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite numbers become ``None``)."""
        return {
            "suggestion": _finite_or_none(self.suggestion),
            "suggestion_steepest": _finite_or_none(self.suggestion_steepest),
            "suggestion_min_div10": _finite_or_none(self.suggestion_min_div10),
            "diverged_at": _finite_or_none(self.diverged_at),
            "reading": self.reading,
            "regions": {
                k: (_finite_or_none(v) if isinstance(v, float) else v)
                for k, v in self.regions.items()
            },
            "settings": dict(self.settings),
            "lrs": [_finite_or_none(v) for v in self.lrs],
            "losses": [_finite_or_none(v) for v in self.losses],
            "smoothed": [_finite_or_none(v) for v in self.smoothed],
        }

    def plot(self, path: str | Path | None = None, ax: Any = None) -> Any:
        """Loss against learning rate (log x axis): raw and smoothed loss, both suggestions
        marked; saved to ``path`` if given. Returns the ``matplotlib.figure.Figure``."""
        from matplotlib.figure import Figure

        if ax is None:
            fig = Figure(figsize=(6.5, 4.0), layout="constrained")
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        ax.plot(self.lrs, self.losses, lw=0.8, alpha=0.35, color="C0", label="loss (raw)")
        ax.plot(self.lrs, self.smoothed, lw=1.8, color="C0", label="loss (smoothed)")
        ax.set_xscale("log")
        marks = [
            (self.suggestion_steepest, "C2", "steepest"),
            (self.suggestion_min_div10, "C1", "min / 10"),
        ]
        for lr, color, name in marks:
            if lr is not None:
                default = " (suggested)" if lr == self.suggestion else ""
                ax.axvline(lr, color=color, ls="--", lw=1.2, label=f"{name}: {lr:.3g}{default}")
        if self.diverged_at is not None:
            ax.axvline(
                self.diverged_at,
                color="C3",
                ls=":",
                lw=1.2,
                label=f"diverged: {self.diverged_at:.3g}",
            )
        finite = [v for v in self.smoothed if math.isfinite(v)]
        if finite:  # top from the smoothed curve, so raw spikes don't squash the plot
            lo = min(finite + [v for v in self.losses if math.isfinite(v)])
            hi = max(finite)
            pad = 0.1 * (hi - lo) + 1e-12
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        ax.set_title("learning-rate range test")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        if path is not None:
            atomic_savefig(fig, path, dpi=120)
        return fig


def check_lr_find_args(
    min_lr: float, max_lr: float, steps: int, batch_size: int, smoothing: float, factor: float
) -> None:
    """Validate the range test's arguments: ``ValueError`` naming the bad one."""
    check_real("min_lr", min_lr, low=0.0, low_open=True)
    check_real("max_lr", max_lr, low=0.0, low_open=True)
    if not min_lr < max_lr:
        raise ValueError(f"min_lr must be < max_lr, got min_lr={min_lr!r}, max_lr={max_lr!r}")
    check_int("steps", steps, low=10)
    check_int("batch_size", batch_size, low=1)
    check_real("smoothing", smoothing, low=0.0, high=1.0, high_open=True)
    check_real("diverge_factor", factor, low=1.0, low_open=True)


def _batches(n: int, batch_size: int, generator: torch.Generator) -> Any:
    """Endless minibatch indices: a fresh permutation per pass, full batches only (all of the
    data when it holds fewer than ``batch_size`` samples)."""
    bs = min(batch_size, n)
    while True:
        perm = torch.randperm(n, generator=generator)
        for start in range(0, n - bs + 1, bs):
            yield perm[start : start + bs]


def lr_find(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor] | Sequence[torch.Tensor],
    *,
    optimizer: torch.optim.Optimizer,
    loss: LossFn | None = None,
    min_lr: float = 1e-6,
    max_lr: float = 10.0,
    steps: int = 200,
    batch_size: int = 32,
    smoothing: float = 0.98,
    diverge_factor: float = 4.0,
    seed: int = 0,
    penalty: Callable[[nn.Module], torch.Tensor] | None = None,
    augment: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    | None = None,
) -> LRFindResult:
    """Learning-rate range test: train with an exponentially increasing rate and record the loss.

    Step ``i`` (of ``steps``) sets every param group's ``lr`` to
    ``lr_i = min_lr * (max_lr / min_lr) ** (i / (steps - 1))``, takes one minibatch (cycling
    through freshly shuffled passes over ``train``), records the loss, and does one optimizer
    step. The loss is smoothed by a bias-corrected exponential moving average,
    ``a_i = beta a_{i-1} + (1 - beta) L_i``, ``s_i = a_i / (1 - beta^(i+1))`` with
    ``beta = smoothing``; the sweep stops when ``s_i > diverge_factor * min_{j<=i} s_j`` or the
    loss is not finite. The curve is read as seed 000 §1.2.3.2 says: too low a rate leaves the
    loss flat, a good one decreases it confidently, too high a one makes it spike.

    Suggestions: the rate of steepest descent of the smoothed loss (most negative
    ``d s / d log lr``, by ``np.gradient`` on the log-rate axis, over the descending part from
    after the first 10% of the points to the minimum), and the rate at the minimum / 10.
    The model's and optimizer's ``state_dict`` s (deep copies), the model's train/eval mode and
    the RNG states of torch, NumPy and Python are restored afterwards.

    Parameters
    ----------
    model, train, optimizer
        The model, the training data ``(X, y)`` and its (configured) optimizer.
    loss : callable or None
        ``loss(output, target)``; default cross-entropy for integer targets, MSE otherwise.
    min_lr, max_lr, steps
        The sweep (``0 < min_lr < max_lr``, ``steps >= 10``).
    batch_size : int
        Minibatch size.
    smoothing : float
        ``beta`` of the moving average, in ``[0, 1)``.
    diverge_factor : float
        Stop when the smoothed loss exceeds ``diverge_factor`` times its best value (``> 1``).
    seed : int
        Seeds the shuffling and the global RNGs during the sweep (restored afterwards).
    penalty, augment
        Optional, as in :func:`goodfit.fit`: the recorded loss is the data loss plus penalty
        (the objective the optimizer descends), augmentation applies to the batches.

    Returns
    -------
    LRFindResult

    Examples
    --------
    >>> import torch, goodfit as gf
    >>> from goodfit.diagnose.lr_find import lr_find
    >>> X, y = torch.randn(256, 5), torch.randint(0, 3, (256,))
    >>> net = torch.nn.Linear(5, 3)
    >>> res = lr_find(net, (X, y), optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
    ...               min_lr=1e-4, max_lr=10.0, steps=50)
    >>> res.suggestion is not None
    True
    """
    check_lr_find_args(min_lr, max_lr, steps, batch_size, smoothing, diverge_factor)
    X, y = tuple(train)
    if len(X) != len(y):
        raise ValueError(f"train has {len(X)} inputs but {len(y)} targets")
    if len(X) == 0:
        raise ValueError("train is empty")
    params = list(model.parameters())
    device = params[0].device if params else X.device
    X, y = X.to(device), y.to(device)
    loss_fn = loss or default_loss(infer_task(y))
    needs_closure = isinstance(optimizer, torch.optim.LBFGS) or getattr(
        optimizer, "requires_closure", False
    )

    model_state = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(optimizer.state_dict())
    rng_state = capture_rng_state()
    was_training = model.training

    try:
        seed_everything(seed)
        model.train()
        sweep = _sweep(
            model,
            optimizer,
            loss_fn,
            penalty,
            augment,
            X,
            y,
            needs_closure,
            min_lr,
            max_lr,
            steps,
            batch_size,
            seed,
            smoothing,
            diverge_factor,
        )
    finally:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(opt_state)
        model.train(was_training)
        restore_rng_state(rng_state)
        for p in params:
            p.grad = None
    lrs, losses, smoothed, diverged_at = sweep

    steepest, min_div10 = _suggestions(lrs, smoothed)
    reading, regions = _read_curve(lrs, losses, smoothed, diverged_at)
    return LRFindResult(
        lrs=lrs,
        losses=losses,
        smoothed=smoothed,
        suggestion_steepest=steepest,
        suggestion_min_div10=min_div10,
        diverged_at=diverged_at,
        reading=reading,
        regions=regions,
        settings={
            "min_lr": float(min_lr),
            "max_lr": float(max_lr),
            "steps": int(steps),
            "steps_done": len(lrs),
            "batch_size": int(batch_size),
            "smoothing": float(smoothing),
            "diverge_factor": float(diverge_factor),
            "seed": int(seed),
        },
    )


def _sweep(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    penalty: Callable[[nn.Module], torch.Tensor] | None,
    augment: Any,
    X: torch.Tensor,
    y: torch.Tensor,
    needs_closure: bool,
    min_lr: float,
    max_lr: float,
    steps: int,
    batch_size: int,
    seed: int,
    smoothing: float,
    diverge_factor: float,
) -> tuple[list[float], list[float], list[float], float | None]:
    """The exponential sweep ``lr_i = min_lr (max_lr/min_lr)^(i/(steps-1))``, one step each,
    with the bias-corrected moving average of the loss; stops at divergence."""
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    batches = _batches(len(X), batch_size, torch.Generator().manual_seed(seed))
    ratio = max_lr / min_lr
    avg, best = 0.0, math.inf
    for i in range(steps):
        lr = min_lr * ratio ** (i / (steps - 1))
        for group in optimizer.param_groups:
            group["lr"] = lr
        idx = next(batches)
        if X.device.type != "cpu":
            idx = idx.to(X.device)
        xb, yb = X[idx], y[idx]
        if augment is not None:
            xb, yb = augment(xb, yb)
        value = _step(model, optimizer, loss_fn, penalty, xb, yb, needs_closure)
        if not math.isfinite(value):
            return lrs, losses, smoothed, lr
        avg = smoothing * avg + (1.0 - smoothing) * value
        smooth = avg / (1.0 - smoothing ** (i + 1))
        lrs.append(lr)
        losses.append(value)
        smoothed.append(smooth)
        best = min(best, smooth)
        if i > 0 and smooth > diverge_factor * best:
            return lrs, losses, smoothed, lr
    return lrs, losses, smoothed, None


def _step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    penalty: Callable[[nn.Module], torch.Tensor] | None,
    xb: torch.Tensor,
    yb: torch.Tensor,
    needs_closure: bool,
) -> float:
    """One optimizer step on a batch; returns the objective before the step."""
    seen: list[torch.Tensor] = []

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        total = loss_fn(model(xb), yb)
        if penalty is not None:
            total = total + penalty(model)
        total.backward()
        if not seen:
            seen.append(total.detach())
        return total

    if needs_closure:
        optimizer.step(closure)
    else:
        closure()
        value = float(seen[0])
        if not math.isfinite(value):  # don't step into NaN weights; the sweep ends here
            return value
        optimizer.step()
    return float(seen[0])


def _start_index(n: int) -> int:
    """Points ignored at the very start of the curve (the moving average is still settling)."""
    return min(max(1, n // 10), max(n - 2, 0))


def _suggestions(lrs: list[float], smoothed: list[float]) -> tuple[float | None, float | None]:
    n = len(smoothed)
    if n < 3:
        return None, (lrs[int(np.argmin(smoothed))] / 10.0 if n else None)
    s = np.asarray(smoothed, dtype=float)
    i_min = int(np.argmin(s))
    min_div10 = lrs[i_min] / 10.0
    start = _start_index(n)
    if i_min - start < 1:  # no descending part after the start: nothing to measure
        return None, min_div10
    grad = np.gradient(s, np.log(np.asarray(lrs, dtype=float)))
    window = grad[start : i_min + 1]
    j = int(np.argmin(window))
    if window[j] >= 0:
        return None, min_div10
    return lrs[start + j], min_div10


def _read_curve(
    lrs: list[float], losses: list[float], smoothed: list[float], diverged_at: float | None
) -> tuple[str, dict[str, Any]]:
    """Seed 000 §1.2.3.2: too low — flat; good — confident decrease; too high — spikes."""
    regions: dict[str, Any] = {
        "flat_until": None,
        "decrease_from": None,
        "decrease_to": None,
        "relative_decrease": None,
        "spikes_from": None,
    }
    n = len(smoothed)
    if n < 3:
        text = "too few steps before the loss diverged to read the curve"
        if diverged_at is not None:
            text += f"; it diverged at lr={diverged_at:.3g}: lower min_lr"
        return text, regions
    s = np.asarray(smoothed, dtype=float)
    raw = np.asarray(losses, dtype=float)
    start = _start_index(n)
    s0 = float(s[start])
    i_min = int(np.argmin(s))
    s_min = float(s[i_min])
    drop = s0 - s_min
    rel = drop / abs(s0) if s0 != 0 else 0.0
    regions["relative_decrease"] = rel
    parts: list[str] = []
    if rel >= 0.1 and i_min > start:
        # flat: the smoothed loss is still within 10% of the whole drop from its starting value
        i_flat = start + int(np.argmax(s[start : i_min + 1] < s0 - 0.1 * drop))
        # confident decrease: from 10% to 90% of the drop
        i_hi = start + int(np.argmax(s[start : i_min + 1] <= s0 - 0.9 * drop))
        if lrs[i_flat] / lrs[0] >= 10:  # flat over at least a decade
            regions["flat_until"] = lrs[i_flat]
            parts.append(
                f"flat from lr={lrs[0]:.3g} to {lrs[i_flat]:.3g} (too low: the loss barely moves)"
            )
        else:
            parts.append(f"no flat region: the loss already decreases at lr={lrs[0]:.3g}")
        regions["decrease_from"], regions["decrease_to"] = lrs[i_flat], lrs[i_hi]
        parts.append(
            f"confident decrease from lr={lrs[i_flat]:.3g} to {lrs[i_hi]:.3g} "
            f"(smoothed loss {s0:.3g} -> {s_min:.3g}, -{100 * rel:.0f}%; good rates)"
        )
    else:
        parts.append(
            f"no confident decrease (smoothed loss {s0:.3g} -> min {s_min:.3g}, "
            f"-{100 * max(rel, 0.0):.0f}%): the whole range looks too low, or the model/data "
            "cannot be fitted at any rate; widen the range or check the setup"
        )
    # spikes: after the minimum, a raw loss more than twice the minimum of the smoothed loss
    after = np.nonzero(raw[i_min:] > 2.0 * s_min)[0] if s_min > 0 else np.array([], dtype=int)
    if after.size:
        regions["spikes_from"] = lrs[i_min + int(after[0])]
    if diverged_at is not None:
        spikes = regions["spikes_from"] or diverged_at
        parts.append(
            f"spikes from lr={spikes:.3g} and divergence at lr={diverged_at:.3g} (too high)"
        )
    elif regions["spikes_from"] is not None:
        parts.append(f"spikes from lr={regions['spikes_from']:.3g} (too high)")
    else:
        parts.append(
            f"no spikes or divergence up to lr={lrs[-1]:.3g}: the range may stop below the "
            "highest usable rate"
        )
    return "; ".join(parts) + ".", regions
