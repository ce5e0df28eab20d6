"""The loop of :func:`goodfit.train.fit_many`'s vectorized path: K stacked members, one forward,
backward and optimizer step per batch for all of them.

Members may hold different numbers of rows as long as they make the same number of batches
(:func:`goodfit.train.vectorize_check.batch_sizes`): their data are stored padded to the longest
and each step is split into *parts*, one per distinct slice of the epoch's rows — a single part,
all members on the same slice, unless the batch sizes differ (5x2's halves of an odd pool: the
last batch). A part for some members gathers their parameters (the gradients flow back to the
stacked ones) and writes their batch-norm statistics back; the losses of all parts make one
backward and one optimizer step, so each member steps exactly as its own ``fit`` would.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from goodfit.errors import DivergenceError
from goodfit.train.early_stopping import EarlyStopping
from goodfit.train.history import History
from goodfit.train.loop import default_loss, infer_task
from goodfit.train.member_callbacks import GroupClock, MemberCallbacks, is_member_callback
from goodfit.train.member_losses import hard_labels_k, stacked_loss, weighted
from goodfit.train.stacked import StackedModel
from goodfit.train.vectorize_check import batch_sizes

__all__ = ["MemberGroup"]

Batch = tuple[Tensor, Tensor]
Part = tuple[Tensor | None, slice]  # (members or None for all, rows of the epoch's batch)


def _stack_padded(tensors: Sequence[Tensor]) -> Tensor:
    """``tensors`` (rows first) stacked along a new member axis, the shorter ones padded with
    zero rows to the longest (rows no batch reads)."""
    n = max(len(t) for t in tensors)
    return torch.stack(
        [
            t if len(t) == n else torch.cat([t, t.new_zeros((n - len(t), *t.shape[1:]))])
            for t in tensors
        ]
    )


def _rows(t: Tensor, members: Tensor | None, rows: slice) -> Tensor:
    """``t[:, rows]`` (a view) or, for some members, ``t[members, rows]``."""
    return t[:, rows] if members is None else t[members, rows]


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

    def __init__(self, group: MemberGroup, k: int) -> None:
        self.group, self.k = group, k
        self.model = _MemberModel(group.stacked, k)
        self.summary: dict[str, Any] = {}
        self.stop_reason: str | None = None

    def request_stop(self, reason: str = "stopped by a callback") -> None:
        if self.stop_reason is None:
            self.stop_reason = reason


class MemberGroup:
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
        # members may hold different numbers of rows (5x2's halves of an odd pool): stored
        # padded to the longest, a batch that differs in size runs per size (``_schedule``)
        self.sizes = [len(x) for x, _ in train]
        self.X = _stack_padded([x for x, _ in train]).to(device)
        self.y = _stack_padded([y for _, y in train]).to(device)
        self.val = val
        self.weights = None if weights is None else _stack_padded(list(weights)).to(device)
        self.epochs, self.batch_size, self.seeds = epochs, batch_size, list(seeds)
        self.schedule = self._schedule(device)
        self.schedule_rows = torch.tensor(self.sizes, device=device)
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
            torch.cat(
                [torch.randperm(m, generator=g) if on else torch.arange(m), torch.arange(m, n)]
            )
            for g, on, m in zip(self.order, self.active, self.sizes, strict=True)
        ]
        perm = torch.stack(perms).to(self.X.device)
        # each member's epoch in its order, gathered once; a batch is then a slice (a view)
        X, y = self._gather(self.X, perm), self._gather(self.y, perm)
        w = None if self.weights is None else torch.gather(self.weights, 1, perm)
        losses, correct = [], []
        self.penalties: list[Tensor] = []
        for i, (parts, size) in enumerate(self.schedule):
            self.batch_index = i
            loss, right = self._train_batch(X, y, w, parts)
            losses.append(loss * size)
            if right is not None:
                correct.append(right)
        self._end_epoch(torch.stack(losses).sum(0) / self.schedule_rows, correct, t0)

    def _schedule(self, device: torch.device) -> list[tuple[list[Part], Tensor]]:
        """The epoch's steps: per step its parts ``(members, rows)`` (one part ``(None, rows)``
        when all members' batches are the same slice; else one per slice, ``members`` an index
        tensor) and each member's batch size (K,)."""
        per = [batch_sizes(m, self.batch_size) for m in self.sizes]
        steps, starts = [], [0] * self.k
        for t in range(len(per[0])):
            slices: dict[tuple[int, int], list[int]] = {}
            for k in range(self.k):
                slices.setdefault((starts[k], per[k][t]), []).append(k)
                starts[k] += per[k][t]
            parts = [
                (None if len(slices) == 1 else torch.tensor(ks, device=device), slice(a, a + b))
                for (a, b), ks in slices.items()
            ]
            steps.append((parts, torch.tensor([p[t] for p in per], device=device)))
        return steps

    def _gather(self, t: Tensor, idx: Tensor) -> Tensor:
        """``t[k, idx[k]]`` for every member ``k``: one ``index_select`` of whole rows on the
        flattened ``(K*n, ...)`` (``gather`` with an index expanded over the trailing
        dimensions costs ~10x as much)."""
        k, n = t.shape[:2]
        flat = (idx + torch.arange(k, device=idx.device).unsqueeze(1) * n).reshape(-1)
        return t.reshape(k * n, *t.shape[2:]).index_select(0, flat).reshape(idx.shape + t.shape[2:])

    def _train_batch(
        self, X: Tensor, y: Tensor, w: Tensor | None, parts: list[Part]
    ) -> tuple[Tensor, Tensor | None]:
        """One step of all members on their batches ``X[members, rows]`` of the epoch's
        gathered ``X``; returns the batch losses (K,) and correct counts (K,) or None."""
        for cb in self.group_callbacks:
            cb.on_batch_start(self)
        loss = correct = None
        for members, rows in parts:
            xb, yb, wb = (None if t is None else _rows(t, members, rows) for t in (X, y, w))
            out, part, yb = self._member_batch(xb, yb, wb, members)
            right = None
            if self.task == "classification":
                right = (out.detach().argmax(dim=-1) == hard_labels_k(yb)).sum(dim=1)
            if members is None:
                loss, correct = part, right
                continue
            loss = part.new_zeros(self.k) if loss is None else loss
            loss = loss.index_copy(0, members, part)
            if right is not None:
                correct = right.new_zeros(self.k) if correct is None else correct
                correct = correct.index_copy(0, members, right)
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
        return loss.detach(), correct

    def _member_batch(
        self, xb: Tensor, yb: Tensor, wb: Tensor | None, members: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Outputs, losses and (augmented) targets of ``members`` (None: all) on their batch."""
        ks = range(self.k) if members is None else members.tolist()
        if self.augment is not None:
            xb, yb = self._augment(xb, yb, ks)
        gens = [self.dropout[k] if self.active[k] else None for k in ks]
        masks = self.stacked.draw_masks(xb, gens)
        out, loss = self._forward_loss(xb, yb, wb, masks, members)
        return out, loss, yb

    def _forward_loss(
        self,
        xb: Tensor,
        yb: Tensor,
        wb: Tensor | None,
        masks: Sequence[Tensor] = (),
        members: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """The members' outputs and batch losses (K,): a built-in loss on the stacked outputs,
        any other under ``vmap`` (sample-weighted when ``wb`` is given)."""
        if self.stacked_loss is not None:
            out = self.stacked.forward(xb, masks, members=members)
            return out, self.stacked_loss(out, yb, wb)
        extra, loss_fn = (yb,), self.loss_fn
        if wb is not None:
            extra, loss_fn = (yb, wb), weighted(self.loss_fn)
        return self.stacked.forward(xb, masks, loss=loss_fn, extra=extra, members=members)

    def _augment(self, xb: Tensor, yb: Tensor, ks: Sequence[int]) -> tuple[Tensor, Tensor]:
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
                pairs = [draw_as(k, self.augment, xb[i], yb[i]) for i, k in enumerate(ks)]
                return torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])
            self.augment.check_input(xb[0])
            x = xb.reshape(-1, *xb.shape[2:])
            with torch.no_grad():
                for op in (op for op in self.augment.ops if op.p != 0.0):
                    chunks = x.chunk(len(ks))
                    x = op.apply_drawn(
                        x, [draw_as(k, op.draw, c) for k, c in zip(ks, chunks, strict=True)]
                    )
            return x.reshape(len(ks), -1, *x.shape[1:]), yb
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
        """Each member's :func:`goodfit.evaluate` on its validation set, in one eval pass per
        validation size."""
        by_size: dict[int, list[int]] = {}
        for k, (x, _) in enumerate(k_val):
            by_size.setdefault(len(x), []).append(k)
        metrics: list[dict[str, float]] = [{} for _ in range(self.k)]
        self.stacked.train(False)
        try:
            for n, ks in by_size.items():
                members = None if len(by_size) == 1 else torch.tensor(ks, device=self.X.device)
                for k, m in zip(
                    ks, self._evaluate([k_val[k] for k in ks], n, members), strict=True
                ):
                    metrics[k] = m
        finally:
            self.stacked.train(True)
        return metrics

    def _evaluate(
        self, pairs: list[Batch], n: int, members: Tensor | None
    ) -> list[dict[str, float]]:
        xs = torch.stack([x for x, _ in pairs]).to(self.X.device)
        ys = torch.stack([y for _, y in pairs]).to(self.X.device)
        total = torch.zeros(len(pairs), dtype=torch.float64)
        correct = torch.zeros(len(pairs), dtype=torch.long)
        for s in range(0, n, self.eval_batch_size):
            xb, yb = xs[:, s : s + self.eval_batch_size], ys[:, s : s + self.eval_batch_size]
            out, loss = self._forward_loss(xb, yb, None, members=members)
            total += loss.double().cpu() * xb.shape[1]
            if self.task == "classification":
                correct += (out.argmax(dim=-1) == hard_labels_k(yb)).sum(1).cpu()
        metrics = [{"val_loss": float(t) / max(n, 1)} for t in total]
        if self.task == "classification":
            for m, c in zip(metrics, correct, strict=True):
                m["val_accuracy"] = int(c) / max(n, 1)
        return metrics

    def _end_epoch(self, train_loss: Tensor, correct: list[Tensor], t0: float) -> None:
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
                record["train_accuracy"] = int(acc[k]) / self.sizes[k]
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
