""":func:`fit_many`: K models of one architecture trained as one vectorized group.

Each member is trained as ``fit(models[k], train_k, val_k, seed=seeds[k])`` would train it —
its own data (a bootstrap sample, a fold, sample weights), its own epoch permutations (a
generator seeded with its seed, the draw :class:`goodfit.train.sampling.RandomOrder` makes), its
own dropout masks (see :mod:`goodfit.train.stacked`), its own batch-norm statistics, its own
early stopping (GBC Algorithm 7.1, seed 001: a stopped member is frozen, its best parameters
restored) — but the K forward/backward passes are one ``vmap`` (an ``nn.Sequential`` MLP: one
batched matmul per layer, :class:`~goodfit.train.stacked.StackedModel`) and the K optimizer
steps one step on the stacked tensors. That is exact for element-wise optimizers (the
``torch.optim`` first-order rules in :data:`goodfit.train.vectorize_check.ELEMENTWISE` and
goodfit's chains whose transforms are all element-wise, ``transform.chunkable``); global-norm
clipping is per member (``clip_norm``).

Equality is to rounding: the batched matmuls add in another order (~1e-16 in float64). Rules
linear in the gradient keep it there; Adam divides by ``sqrt(v)``, so a parameter whose true
gradient is zero (a bias right before batch norm) turns rounding noise into full-size steps and
differs by up to ``lr`` per step — without batch norm Adam stays at ~1e-16 too.

A weight penalty with a per-member form (``Penalty.per_member``: every p-norm term is a sum over
elements, so member k's value is the sum over its slice) is added member by member; an
:class:`~goodfit.data.augment.AugmentPipeline` runs on each member's batch with the global RNG
put in that member's state, since ``fit`` draws augmentations and dropout masks from one stream
(on the CPU: the pipeline draws from the global CPU generator). The built-in losses are computed
on the stacked outputs (:mod:`goodfit.train.member_losses`), any other loss under ``vmap``.

What is not vectorized falls back to K sequential ``fit`` calls with a one-line notice: models of
different architectures, training sets whose batch schedules differ, optimizers with a
cross-parameter reduction or their own randomness (goodfit's ``clip_by_global_norm`` and
``add_noise``, L-BFGS, closures), a penalty without a per-member form (weight tying), an
augmentation that is not an ``AugmentPipeline`` or not on the CPU, a custom sampler, callbacks
other than early stopping, learning-rate schedules and per-member ones (gradient flow:
:mod:`goodfit.train.member_callbacks`), random operations other than ``nn.Dropout*``.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from goodfit.errors import DivergenceError
from goodfit.hooks import Callback
from goodfit.train.early_stopping import EarlyStopping
from goodfit.train.history import History
from goodfit.train.loop import default_loss, fit, infer_task
from goodfit.train.member_callbacks import GroupClock, MemberCallbacks, is_member_callback
from goodfit.train.member_losses import hard_labels_k, stacked_loss, weighted
from goodfit.train.stacked import StackedModel
from goodfit.train.vectorize_check import batch_sizes, vectorize_obstacle

__all__ = ["FitManyResult", "fit_many", "vectorize_obstacle"]

Batch = tuple[Tensor, Tensor]
OptimizerFactory = Callable[[nn.Module], torch.optim.Optimizer]


@dataclass
class FitManyResult:
    """What :func:`fit_many` returns: the trained ``models`` (the objects passed in, trained in
    place), one :class:`History` per member, whether the group was ``vectorized`` and, if not,
    the ``notice`` saying why."""

    models: list[nn.Module]
    histories: list[History]
    vectorized: bool
    notice: str | None = None
    wall_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    #: each member's copies of the per-member callbacks (``goodfit.train.member_callbacks``)
    member_callbacks: list[list[Any]] = field(default_factory=list)


def _per_member(data: Any, k: int, name: str) -> list[Batch] | None:
    """``data`` as K ``(X, y)`` pairs: one pair shared by all, or a sequence of K pairs."""
    if data is None:
        return None
    if isinstance(data, tuple | list) and len(data) == 2 and isinstance(data[0], Tensor):
        return [(data[0], data[1])] * k
    pairs = [tuple(p) for p in data]
    if len(pairs) != k:
        raise ValueError(f"{name} has {len(pairs)} (X, y) pairs for {k} members")
    return pairs  # type: ignore[return-value]


class _MemberModel:
    """Member ``k`` of a :class:`StackedModel` as far as :class:`EarlyStopping` needs a model."""

    def __init__(self, stacked: StackedModel, k: int) -> None:
        self.stacked, self.k = stacked, k

    def state_dict(self) -> dict[str, Tensor]:
        return self.stacked.member_state(self.k)

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.stacked.load_member(self.k, state)


class _MemberView(GroupClock):
    """What a member's early-stopping callback sees: its model, the group's step and epoch, its
    own summary and stop request."""

    def __init__(self, group: _Group, k: int) -> None:
        self.group, self.k = group, k
        self.model = _MemberModel(group.stacked, k)
        self.summary: dict[str, Any] = {}
        self.stop_reason: str | None = None

    def request_stop(self, reason: str = "stopped by a callback") -> None:
        if self.stop_reason is None:
            self.stop_reason = reason


class _Group:
    """The vectorized loop; what group-level callbacks (schedules) see as ``trainer``."""

    def __init__(
        self,
        models,
        optimizer_factory,
        train,
        val,
        *,
        seeds,
        epochs,
        batch_size,
        loss,
        task,
        weights,
        callbacks,
        clip_norm,
        eval_batch_size,
        penalty=None,
        augment=None,
    ):
        self.models, self.k = list(models), len(models)
        self.penalty, self.augment = penalty, augment
        self.stacked = StackedModel(self.models)
        self.model = self.stacked.shell
        self.optimizer = optimizer_factory(self.stacked.shell)
        device = next(self.stacked.shell.parameters()).device
        self.X = torch.stack([x for x, _ in train]).to(device)
        self.y = torch.stack([y for _, y in train]).to(device)
        self.val = val
        self.weights = None if weights is None else torch.stack(list(weights)).to(device)
        self.epochs, self.batch_size, self.seeds = epochs, batch_size, list(seeds)
        self.task = task or infer_task(self.y)
        self.loss_fn = loss or default_loss(self.task)
        self.stacked_loss = stacked_loss(self.loss_fn)
        self.clip_norm, self.eval_batch_size = clip_norm, eval_batch_size
        self.stoppers = [cb for cb in callbacks if isinstance(cb, EarlyStopping)]
        self.group_callbacks = [
            cb for cb in callbacks if not (isinstance(cb, EarlyStopping) or is_member_callback(cb))
        ]
        self.member_cbs = MemberCallbacks(callbacks, self, self.models)
        self.views = [_MemberView(self, k) for k in range(self.k)]
        self.member_stoppers = [[copy.deepcopy(s) for s in self.stoppers] for _ in range(self.k)]
        self.order = [torch.Generator().manual_seed(s) for s in self.seeds]
        self.dropout = [torch.Generator(device=device).manual_seed(s) for s in self.seeds]
        self.histories = [History() for _ in range(self.k)]
        self.active = [True] * self.k
        self.frozen: dict[int, dict[str, Tensor]] = {}
        self.epoch = self.step = self.batch_index = 0
        self.stop_reason: str | None = None
        self._logs: dict[str, Any] = {}

    # -- the Trainer API that group callbacks use ----------------------------------------------
    def log(self, key: str, value: Any) -> None:
        self._logs[key] = value

    def request_stop(self, reason: str = "stopped by a callback") -> None:
        if self.stop_reason is None:
            self.stop_reason = reason

    def _call(self, hook: str) -> None:
        for cb in self.group_callbacks:
            getattr(cb, hook)(self)

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> None:
        self.stacked.train(True)
        self._call("on_fit_start")
        self.member_cbs.call("on_fit_start", [True] * self.k)
        for k in range(self.k):
            for s in self.member_stoppers[k]:
                s.on_fit_start(self.views[k])
        try:
            for epoch in range(self.epochs):
                self.epoch = epoch
                if self.stop_reason is not None or not any(self.active):
                    break
                self._run_epoch()
        finally:
            for k in range(self.k):
                view = self.views[k]
                view.summary.update(
                    epochs_run=len(self.histories[k]),
                    steps=self.histories[k].last.get("step", 0),
                    stop_reason=view.stop_reason or self.stop_reason or "max_epochs",
                )
                for s in self.member_stoppers[k]:
                    s.on_fit_end(view)
                self.histories[k].summary = view.summary
            self._call("on_fit_end")
            self.member_cbs.call("on_fit_end", [True] * self.k)
            for k, model in enumerate(self.models):
                model.load_state_dict(self.stacked.member_state(k))

    def _run_epoch(self) -> None:
        t0 = time.perf_counter()
        self._logs = {}
        self._call("on_epoch_start")
        n = self.X.shape[1]
        perms = [
            torch.randperm(n, generator=g) if on else torch.arange(n)
            for g, on in zip(self.order, self.active, strict=True)
        ]
        perm = torch.stack(perms).to(self.X.device)
        # each member's epoch in its order, gathered once; a batch is then a slice (a view)
        X, y = self._gather(self.X, perm), self._gather(self.y, perm)
        w = None if self.weights is None else torch.gather(self.weights, 1, perm)
        losses, correct, start = [], [], 0
        self.penalties: list[Tensor] = []
        sizes = batch_sizes(n, self.batch_size)
        for self.batch_index, size in enumerate(sizes):
            rows = slice(start, start + size)
            start += size
            wb = None if w is None else w[:, rows]
            loss, out, yb = self._train_batch(X[:, rows], y[:, rows], wb)
            losses.append(loss * size)
            if self.task == "classification":
                correct.append((out.argmax(dim=-1) == hard_labels_k(yb)).sum(dim=1))
        self._end_epoch(torch.stack(losses).sum(0) / n, correct, n, t0)

    def _gather(self, t: Tensor, idx: Tensor) -> Tensor:
        """``t[k, idx[k]]`` for every member ``k``: one ``index_select`` of whole rows on the
        flattened ``(K*n, ...)`` (``gather`` with an index expanded over the trailing
        dimensions costs ~10x as much)."""
        k, n = t.shape[:2]
        flat = (idx + torch.arange(k, device=idx.device).unsqueeze(1) * n).reshape(-1)
        return t.reshape(k * n, *t.shape[2:]).index_select(0, flat).reshape(idx.shape + t.shape[2:])

    def _train_batch(
        self, xb: Tensor, yb: Tensor, wb: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        for cb in self.group_callbacks:
            cb.on_batch_start(self)
        if self.augment is not None:
            xb, yb = self._augment(xb, yb)
        gens = [g if on else None for g, on in zip(self.dropout, self.active, strict=True)]
        masks = self.stacked.draw_masks(xb, gens)
        out, loss = self._forward_loss(xb, yb, wb, masks)
        total = loss
        if self.penalty is not None:  # each member's own penalty: the gradients stay apart
            pen = self.penalty.per_member(self.stacked.shell, self.k)
            self.penalties.append(pen.detach())
            total = loss + pen
        self.optimizer.zero_grad(set_to_none=True)
        if all(self.active):
            total.sum().backward()
        else:  # a stopped member gets no gradient (its parameters are frozen)
            active = torch.tensor(self.active, device=loss.device)
            torch.where(active, total, torch.zeros_like(total)).sum().backward()
        for cb in self.group_callbacks:
            cb.on_after_backward(self)
        if self.member_cbs:
            self.member_cbs.after_backward(self.step, self.stacked.params, self.active)
        if self.clip_norm is not None:
            self._clip()
        self.optimizer.step()
        self._refreeze()
        self.step += 1
        for cb in self.group_callbacks:
            cb.on_after_step(self)
            cb.on_batch_end(self)
        return loss.detach(), out.detach(), yb

    def _forward_loss(
        self, xb: Tensor, yb: Tensor, wb: Tensor | None, masks: Sequence[Tensor] = ()
    ) -> tuple[Tensor, Tensor]:
        """All members' outputs and batch losses (K,): a built-in loss on the stacked outputs,
        any other under ``vmap`` (sample-weighted when ``wb`` is given)."""
        if self.stacked_loss is not None:
            out = self.stacked.forward(xb, masks)
            return out, self.stacked_loss(out, yb, wb)
        extra, loss_fn = (yb,), self.loss_fn
        if wb is not None:
            extra, loss_fn = (yb, wb), weighted(self.loss_fn)
        return self.stacked.forward(xb, masks, loss=loss_fn, extra=extra)

    def _augment(self, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
        """Member k's batch through the pipeline with the global RNG in member k's state (its
        generator's), as ``fit`` draws augmentations and dropout masks from one stream. Ops
        that draw before transforming (kornia's) draw per member and transform all K batches
        in one call."""
        saved = torch.get_rng_state()

        def draw_as(k: int, fn: Callable[..., Any], *args: Any) -> Any:
            torch.set_rng_state(self.dropout[k].get_state())
            out = fn(*args)
            self.dropout[k].set_state(torch.get_rng_state())
            return out

        try:
            if not self.augment.drawable(xb[0]):
                pairs = [draw_as(k, self.augment, xb[k], yb[k]) for k in range(self.k)]
                return torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])
            self.augment.check_input(xb[0])
            x = xb.reshape(-1, *xb.shape[2:])
            with torch.no_grad():
                for op in (op for op in self.augment.ops if op.p != 0.0):
                    parts = [draw_as(k, op.draw, xk) for k, xk in enumerate(x.chunk(self.k))]
                    x = op.apply_drawn(x, parts)
            return x.reshape(self.k, -1, *x.shape[1:]), yb
        finally:
            torch.set_rng_state(saved)

    @torch.no_grad()
    def _clip(self) -> None:
        """Per-member global-norm clipping (seed 001, GBC ch. 8): ``g_k <- g_k min(1, a/||g_k||)``
        with ``||g_k||`` over all of member k's tensors — goodfit's ``clip_by_global_norm``
        applied to each member alone."""
        grads = [p.grad for p in self.stacked.params.values() if p.grad is not None]
        sq = torch.stack([g.reshape(self.k, -1).pow(2).sum(1) for g in grads]).sum(0)
        factor = torch.clamp(self.clip_norm / sq.sqrt(), max=1.0)
        for g in grads:
            g.mul_(factor.reshape((self.k,) + (1,) * (g.ndim - 1)))

    @torch.no_grad()
    def _refreeze(self) -> None:
        for k, state in self.frozen.items():
            self.stacked.load_member(k, state)

    @torch.no_grad()
    def _validate(self, k_val: list[Batch]) -> list[dict[str, float]]:
        """Each member's :func:`goodfit.evaluate` on its validation set, in one eval pass."""
        self.stacked.train(False)
        try:
            xs = torch.stack([x for x, _ in k_val]).to(self.X.device)
            ys = torch.stack([y for _, y in k_val]).to(self.X.device)
            total = torch.zeros(self.k, dtype=torch.float64)
            correct = torch.zeros(self.k, dtype=torch.long)
            n = xs.shape[1]
            for s in range(0, n, self.eval_batch_size):
                xb, yb = xs[:, s : s + self.eval_batch_size], ys[:, s : s + self.eval_batch_size]
                out, loss = self._forward_loss(xb, yb, None)
                total += loss.double().cpu() * xb.shape[1]
                if self.task == "classification":
                    correct += (out.argmax(dim=-1) == hard_labels_k(yb)).sum(1).cpu()
        finally:
            self.stacked.train(True)
        metrics = [{"val_loss": float(total[k]) / max(n, 1)} for k in range(self.k)]
        if self.task == "classification":
            for k in range(self.k):
                metrics[k]["val_accuracy"] = int(correct[k]) / max(n, 1)
        return metrics

    def _end_epoch(self, train_loss: Tensor, correct: list[Tensor], n: int, t0: float) -> None:
        if not bool(torch.isfinite(train_loss[torch.tensor(self.active)]).all()):
            bad = [k for k in range(self.k) if self.active[k] and not math.isfinite(train_loss[k])]
            raise DivergenceError(
                f"training diverged: non-finite loss of member(s) {bad} at epoch "
                f"{self.epoch + 1}; try a smaller learning rate or gradient clipping"
            )
        val = self._validate(self.val) if self.val is not None else [{}] * self.k
        self._call("on_epoch_end")
        self.member_cbs.call("on_epoch_end", self.active)
        lr = float(self.optimizer.param_groups[0]["lr"])
        acc = torch.stack(correct).sum(0) if correct else None
        for k in range(self.k):
            if not self.active[k]:
                continue
            record: dict[str, Any] = {
                "epoch": self.epoch + 1,
                "step": self.step,
                "train_loss": float(train_loss[k]),
            }
            if self.penalties:
                record["penalty"] = float(torch.stack(self.penalties)[:, k].mean())
            if acc is not None:
                record["train_accuracy"] = int(acc[k]) / n
            record.update(val[k])
            record["lr"] = lr
            record.update(self._logs)
            record.update(self.member_cbs.pop_logs(k))
            record["epoch_seconds"] = time.perf_counter() - t0
            self.histories[k].append(record)
            if val[k]:
                for s in self.member_stoppers[k]:
                    s.on_validation_end(self.views[k], val[k])
            if self.views[k].stop_reason is not None:
                self.active[k] = False
                self.frozen[k] = {n_: t.clone() for n_, t in self.stacked.member_state(k).items()}


def _sequential(models, optimizer_factory, train, val, *, seeds, callbacks, weights, **kw):
    if weights is not None:
        raise ValueError("sample_weights need the vectorized path; " + kw.pop("_why"))
    kw.pop("_why")
    histories, member_cbs = [], []
    for k, model in enumerate(models):
        cbs = [copy.deepcopy(cb) for cb in callbacks]
        member_cbs.append([cb for cb in cbs if is_member_callback(cb)])
        vk = val[k] if val is not None else None
        histories.append(
            fit(
                model,
                train[k],
                vk,
                optimizer=optimizer_factory(model),
                seed=seeds[k],
                callbacks=cbs,
                **kw,
            )
        )
    return histories, member_cbs


def _check_options(vectorize: Any, clip_norm: Any) -> None:
    if vectorize not in (True, False, "auto"):
        raise ValueError(f"vectorize must be True, False or 'auto', got {vectorize!r}")
    if clip_norm is not None and not clip_norm > 0:
        raise ValueError(f"clip_norm must be > 0, got {clip_norm!r}")


def _member_inputs(k, train, val, seeds, indices, sample_weights):
    """Each member's seed, training pairs (indexed by its bootstrap sample) and validation."""
    seeds = list(seeds) if seeds is not None else list(range(k))
    if len(seeds) != k:
        raise ValueError(f"{len(seeds)} seeds for {k} models")
    pairs = _per_member(train, k, "train")
    assert pairs is not None
    if indices is not None:
        if len(indices) != k:
            raise ValueError(f"{len(indices)} index sets for {k} models")
        pairs = [(x[i], y[i]) for (x, y), i in zip(pairs, indices, strict=True)]
    if sample_weights is not None:
        if len(sample_weights) != k:
            raise ValueError(f"{len(sample_weights)} weight vectors for {k} models")
        for (x, _), w in zip(pairs, sample_weights, strict=True):
            if w.shape != (len(x),) or not bool((w >= 0).all()) or not float(w.sum()) > 0:
                raise ValueError(
                    "each sample_weights vector needs one weight >= 0 per row, sum > 0"
                )
    return seeds, pairs, _per_member(val, k, "val")


def fit_many(
    models: Sequence[nn.Module],
    train: Batch | Sequence[Batch],
    val: Batch | Sequence[Batch] | None = None,
    *,
    optimizer: OptimizerFactory,
    epochs: int,
    batch_size: int = 32,
    seeds: Sequence[int] | None = None,
    indices: Sequence[Tensor] | None = None,
    sample_weights: Sequence[Tensor] | None = None,
    loss: Callable[..., Tensor] | None = None,
    task: str | None = None,
    callbacks: Sequence[Callback] = (),
    clip_norm: float | None = None,
    vectorize: bool | str = "auto",
    penalty: Any = None,
    augment: Any = None,
    sampler: Any = None,
    eval_batch_size: int = 2048,
    progress: Any = False,
) -> FitManyResult:
    """Train K models of one architecture, member ``k`` as ``fit(models[k], train_k, val_k,
    seed=seeds[k])`` would, as one vectorized group (see the module docstring).

    ``train`` / ``val``: one ``(X, y)`` for all members or K pairs. ``indices``: K index tensors
    into the training rows (a bootstrap sample each); ``sample_weights``: K weight vectors over a
    member's training rows (the loss is ``sum w_i l_i / sum w_i`` per batch). ``optimizer`` is a
    factory ``module -> optimizer`` (called on the stacked shell, or on each model when
    sequential). ``callbacks``: :class:`EarlyStopping` (copied per member) and learning-rate
    schedules (shared). ``clip_norm``: global-norm clipping per member. ``vectorize``: ``"auto"``
    falls back to sequential ``fit`` calls with a one-line notice on stderr, ``True`` raises
    instead, ``False`` always runs sequentially. Models are trained in place.
    """
    k = len(models)
    if k < 1:
        raise ValueError("fit_many needs at least one model")
    _check_options(vectorize, clip_norm)
    seeds, pairs, vals = _member_inputs(k, train, val, seeds, indices, sample_weights)
    t0 = time.perf_counter()
    why = "vectorize=False" if vectorize is False else None
    if why is None:
        probe_opt = optimizer(copy.deepcopy(models[0]))
        why = vectorize_obstacle(
            models,
            probe_opt,
            callbacks,
            [len(x) for x, _ in pairs],
            batch_size,
            penalty=penalty,
            augment=augment,
            sampler=sampler,
        )
    if why is None and vals is not None and len({len(x) for x, _ in vals}) > 1:
        why = "the members' validation sets differ in size"
    group = None
    if why is None:
        group = _Group(
            models,
            optimizer,
            pairs,
            vals,
            seeds=seeds,
            epochs=epochs,
            batch_size=batch_size,
            loss=loss,
            task=task,
            weights=sample_weights,
            callbacks=callbacks,
            clip_norm=clip_norm,
            eval_batch_size=eval_batch_size,
            penalty=penalty,
            augment=augment,
        )
        try:
            group.stacked.dropout_shapes(group.X[:, :batch_size])
        except RuntimeError as err:  # a random op under randomness="error", an op vmap lacks
            why, group = f"the forward pass does not vectorize ({str(err).splitlines()[0]})", None
    if group is not None:
        group.run()
        result = FitManyResult(list(models), group.histories, True)
        result.member_callbacks = group.member_cbs.copies
    else:
        if vectorize is True:
            raise ValueError(f"fit_many cannot vectorize: {why}")
        if vectorize == "auto":
            print(
                f"goodfit: fit_many trains the {k} members one after another: {why}",
                file=sys.stderr,
            )
        if clip_norm is not None:
            raise ValueError("clip_norm is per member only when vectorized; " + str(why))
        kw = dict(epochs=epochs, batch_size=batch_size, loss=loss, task=task, penalty=penalty,
                  augment=augment, sampler=sampler, progress=progress)  # fmt: skip
        histories, member_cbs = _sequential(
            models, optimizer, pairs, vals, seeds=seeds, callbacks=callbacks,
            weights=sample_weights, _why=why, **kw,
        )  # fmt: skip
        result = FitManyResult(list(models), histories, False, why, member_callbacks=member_cbs)
    result.wall_seconds = time.perf_counter() - t0
    for h in result.histories:
        h.summary.setdefault("wall_seconds", result.wall_seconds)
    return result
