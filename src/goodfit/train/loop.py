"""The training loop: :func:`fit`.

Minibatch SGD as seed 003 describes it: every epoch draws a fresh random permutation of the
training set and splits it into minibatches; each minibatch does forward, loss (+ penalty),
backward and one optimizer step, with callbacks around the step. Validation runs every epoch (or
every ``val_every`` steps); the history gets one record per epoch.

The hot path holds nothing extra: per-batch losses and outputs are kept as tensors and reduced
once per epoch (no host synchronisation per batch), and only the callback hooks that are
overridden are called.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from goodfit.errors import DivergenceError
from goodfit.hooks import HOOKS, Callback
from goodfit.train.checkpoint import (
    CHECKPOINT_NAME,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from goodfit.train.evaluation import default_loss, evaluate, hard_labels, infer_task
from goodfit.train.history import History
from goodfit.train.progress import EpochReporter
from goodfit.train.sampling import EpochSampler, RandomOrder

if TYPE_CHECKING:
    from goodfit.train.distributed import DataParallel

__all__ = ["Trainer", "evaluate", "fit", "infer_task", "seed_everything"]

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def seed_everything(seed: int) -> None:
    """Seed torch, NumPy and Python's ``random`` from one integer."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


class Trainer:
    """Runs the loop of :func:`fit` and is what callbacks see.

    Attributes callbacks may read: ``model``, ``optimizer``, ``epoch`` (0-based, current),
    ``step`` (optimizer steps done), ``batch_index``, ``loss`` (last batch's data loss, detached),
    ``history`` (:class:`History`), ``summary`` (dict written at the end), ``task``.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        epochs: int,
        batch_size: int = 32,
        loss: LossFn | None = None,
        task: str | None = None,
        penalty: Callable[[nn.Module], torch.Tensor] | None = None,
        augment: Callable[[torch.Tensor, torch.Tensor], Batch] | None = None,
        callbacks: Iterable[Callback] = (),
        seed: int = 0,
        val_every: int | None = None,
        eval_batch_size: int = 2048,
        progress: Any = None,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int = 1,
        resume: bool = False,
        device: str | torch.device | None = None,
        description: str = "train",
        max_steps: int | None = None,
        sampler: EpochSampler | None = None,
        parallel: DataParallel | None = None,
        class_metrics: bool = False,
    ) -> None:
        if not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if val_every is not None and (not isinstance(val_every, int) or val_every < 1):
            raise ValueError(f"val_every must be None or an integer >= 1, got {val_every!r}")
        if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 1):
            raise ValueError(f"max_steps must be None or an integer >= 1, got {max_steps!r}")
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every!r}")
        self.model, self.optimizer = model, optimizer
        self.epochs, self.batch_size = epochs, batch_size
        self.task, self.loss_fn = task, loss
        self.penalty, self.augment = penalty, augment
        self.callbacks = list(callbacks)
        self.seed, self.val_every, self.eval_batch_size = seed, val_every, eval_batch_size
        self.progress = progress
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.checkpoint_every, self.resume = checkpoint_every, resume
        self.device = torch.device(device) if device is not None else None
        self.description = description
        self.max_steps = max_steps
        self.sampler = sampler if sampler is not None else RandomOrder()
        self.parallel, self._net = parallel, model  # _net: the training forward (DDP's wrapper)
        self.class_metrics = class_metrics
        self.history = History()
        self.summary: dict[str, Any] = {}
        self.epoch = 0
        self.step = 0
        self.batch_index = 0
        self.loss: torch.Tensor | None = None
        self.stop_reason: str | None = None
        self._epoch_logs: dict[str, Any] = {}
        self._last_val: dict[str, float] = {}
        self._hooks = {h: [cb for cb in self.callbacks if cb.overrides(h)] for h in HOOKS}
        self._needs_closure = isinstance(optimizer, torch.optim.LBFGS) or getattr(
            optimizer, "requires_closure", False
        )
        self.loader_generator = torch.Generator().manual_seed(seed)

    # -- API for callbacks -------------------------------------------------------------------
    def log(self, key: str, value: Any) -> None:
        """Add ``key: value`` to the current epoch's history record."""
        self._epoch_logs[key] = value

    def request_stop(self, reason: str = "stopped by a callback") -> None:
        """Finish the current step/epoch, then end training (the first reason is kept)."""
        if self.stop_reason is None:
            self.stop_reason = reason

    @property
    def should_stop(self) -> bool:
        return self.stop_reason is not None

    # -- the loop ------------------------------------------------------------------------------
    def _call(self, hook: str, *args: Any) -> None:
        for cb in self._hooks[hook]:
            getattr(cb, hook)(self, *args)

    def _validate(self, val: Batch | None) -> dict[str, float]:
        if val is None:
            return {}
        metrics = (evaluate if self.parallel is None else self.parallel.evaluate)(
            self.model,
            *val,
            task=self.task,
            loss_fn=self.loss_fn,
            batch_size=self.eval_batch_size,
            prefix="val_",
            class_metrics=self.class_metrics,
        )
        self._last_val = metrics
        self._call("on_validation_end", metrics)
        if self.parallel is not None:
            self.parallel.agree(self)
        return metrics

    def _checkpoint_state(self) -> dict[str, Any]:
        return {
            "format": 1,
            "epoch": self.epoch + 1,
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "callbacks": [cb.state_dict() for cb in self.callbacks],
            "rng": capture_rng_state(self.loader_generator),
            "history": self.history.records,
            "stop_reason": self.stop_reason,
            "sampler": self.sampler.state_dict() if hasattr(self.sampler, "state_dict") else None,
        }

    def _restore(self, state: dict[str, Any]) -> int:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if len(state["callbacks"]) != len(self.callbacks):
            raise ValueError(
                f"checkpoint has {len(state['callbacks'])} callback states but this run has "
                f"{len(self.callbacks)} callbacks; resume with the same configuration"
            )
        for cb, cb_state in zip(self.callbacks, state["callbacks"], strict=True):
            cb.load_state_dict(cb_state)
        restore_rng_state(state["rng"], self.loader_generator)
        self.history = History(state["history"])
        self.step = state["step"]
        self.stop_reason = state.get("stop_reason")
        if state.get("sampler") is not None and hasattr(self.sampler, "load_state_dict"):
            self.sampler.load_state_dict(state["sampler"])
        return state["epoch"]

    def _last_good_checkpoint(self) -> str:
        if self.checkpoint_dir is not None and (self.checkpoint_dir / CHECKPOINT_NAME).exists():
            return f"the last good checkpoint is {self.checkpoint_dir / CHECKPOINT_NAME}"
        return "no checkpoint was written"

    def _params_finite(self) -> bool:
        params = [p.detach() for p in self.model.parameters()]
        if not params:
            return True
        return bool(torch.stack([torch.isfinite(p).all() for p in params]).all())

    def fit(self, train: Batch, val: Batch | None = None) -> History:
        """Run the loop on ``train`` (validating on ``val``); see :func:`fit`."""
        X, y = train
        if len(X) != len(y):
            raise ValueError(f"train has {len(X)} inputs but {len(y)} targets")
        if len(X) == 0:
            raise ValueError("train is empty")
        if self.device is not None:
            self.model.to(self.device)
            X, y = X.to(self.device), y.to(self.device)
            if val is not None:
                val = (val[0].to(self.device), val[1].to(self.device))
        self.task = self.task or infer_task(y)
        self.loss_fn = self.loss_fn or default_loss(self.task)
        start_epoch = 0
        ckpt = self.checkpoint_dir / CHECKPOINT_NAME if self.checkpoint_dir else None
        state = None
        if self.parallel is not None:  # rank 0 reads, every rank restores
            state = self.parallel.resume_state(ckpt if self.resume else None)
        elif self.resume and ckpt is not None and ckpt.exists():
            state = load_checkpoint(ckpt)
        if state is not None:
            start_epoch = self._restore(state)
        else:
            seed_everything(self.seed)
            self.loader_generator.manual_seed(self.seed)
        if self.parallel is not None:
            self._net = self.parallel.setup(self, state)
        self.model.train()
        t0 = time.perf_counter()
        reporter = EpochReporter(self.progress, self.epochs, start_epoch, self.description)
        self._call("on_fit_start")
        try:
            for epoch in range(start_epoch, self.epochs):
                self.epoch = epoch
                if self.should_stop:
                    break
                self._run_epoch(X, y, val, reporter)
                if not self._params_finite():
                    raise DivergenceError(
                        f"training diverged: non-finite parameters after epoch {self.epoch + 1} "
                        f"(step {self.step}); {self._last_good_checkpoint()}. Try a smaller "
                        "learning rate or gradient clipping."
                    )
                due = (
                    (self.epoch + 1) % self.checkpoint_every == 0
                    or self.epoch + 1 == self.epochs
                    or self.should_stop
                )
                if due and self.parallel is not None:
                    self.parallel.save_checkpoint(self)  # rank 0 writes every rank's state
                elif due and self.checkpoint_dir is not None:
                    save_checkpoint(self._checkpoint_state(), self.checkpoint_dir)
        except DivergenceError:
            self.request_stop("diverged")
            raise
        finally:
            reporter.close()
            self.summary["wall_seconds"] = time.perf_counter() - t0
            self.summary["epochs_run"] = len(self.history)
            self.summary["steps"] = self.step
            self.summary["stop_reason"] = self.stop_reason or "max_epochs"
            self._call("on_fit_end")
            self.history.summary = self.summary
        return self.history

    def _run_epoch(
        self, X: torch.Tensor, y: torch.Tensor, val: Batch | None, reporter: Any
    ) -> None:
        """One epoch: the minibatches of a fresh permutation, then one history record."""
        t_epoch = time.perf_counter()
        self._epoch_logs = {}
        self._call("on_epoch_start")
        perm, n_batches = self._epoch_order(len(X), X.device)
        losses, penalties, outputs, targets, last_size = self._train_batches(
            X, y, val, perm, n_batches
        )
        record = self._epoch_record(losses, penalties, outputs, targets, last_size)
        if self.val_every is None:
            record.update(self._validate(val))
        else:
            record.update(self._last_val)
        record["lr"] = float(self.optimizer.param_groups[0]["lr"])
        self._call("on_epoch_end")
        if self.parallel is not None:
            self.parallel.agree(self)
        record.update(self._epoch_logs)
        record["epoch_seconds"] = time.perf_counter() - t_epoch
        self.history.append(record)
        reporter.update(record)

    def _epoch_order(self, n: int, device: torch.device) -> tuple[torch.Tensor, int]:
        """The sampler's indices for this epoch (by default a fresh random permutation of the
        ``n`` samples, seed 003) and the number of minibatches they make."""
        bs = self.batch_size
        perm = self.sampler.epoch_indices(self, n, self.loader_generator)
        if perm.ndim != 1 or len(perm) == 0:
            raise ValueError(
                f"{self.sampler!r} returned indices of shape {tuple(perm.shape)}; need 1-D, >= 1"
            )
        if device.type != "cpu":
            perm = perm.to(device)
        m = len(perm)
        n_batches = math.ceil(m / bs)
        if m > bs and m % bs == 1:  # a lone last sample would break batch statistics:
            n_batches -= 1  # it joins the previous batch (every sample is used each epoch)
        return perm, n_batches

    def _train_batches(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        val: Batch | None,
        perm: torch.Tensor,
        n_batches: int,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], int]:
        """The hot path: forward, loss (+ penalty), backward, step per minibatch, with the hooks.

        Returns the detached per-batch losses and penalties, the outputs and targets kept for the
        training accuracy (classification), and the size of the last batch; nothing is moved to
        the host here.
        """
        bs, last = self.batch_size, n_batches - 1
        model, optimizer, loss_fn, penalty = self.model, self.optimizer, self.loss_fn, self.penalty
        net, parallel, weight = self._net, self.parallel, 1.0
        after_backward, after_step = self._hooks["on_after_backward"], self._hooks["on_after_step"]
        batch_start, batch_end = self._hooks["on_batch_start"], self._hooks["on_batch_end"]
        losses: list[torch.Tensor] = []
        penalties: list[torch.Tensor] = []
        outputs: list[torch.Tensor] = []
        targets: list[torch.Tensor] = []
        classification = self.task == "classification"
        for self.batch_index in range(n_batches):
            start = self.batch_index * bs
            idx = perm[start : start + bs] if self.batch_index < last else perm[start:]
            size = len(idx)
            if parallel is not None:  # this rank's piece, its loss weighted n_r N / B
                idx, weight = parallel.share(idx)
            xb, yb = X[idx], y[idx]
            for cb in batch_start:
                cb.on_batch_start(self)
            if self.augment is not None:
                xb, yb = self.augment(xb, yb)
            if self._needs_closure:
                out, loss, pen = self._closure_step(xb, yb)
            else:
                out = net(xb)
                loss = loss_fn(out, yb)
                total = loss if weight == 1.0 else loss * weight
                if penalty is not None:
                    pen = penalty(model)
                    total = total + pen
                else:
                    pen = None
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                for cb in after_backward:
                    cb.on_after_backward(self)
                optimizer.step()
            self.step += 1
            self.loss = loss = loss.detach()
            for cb in after_step:
                cb.on_after_step(self)
            losses.append(loss)
            if pen is not None:
                penalties.append(pen.detach())
            if classification:
                outputs.append(out.detach())
                targets.append(yb)
            for cb in batch_end:
                cb.on_batch_end(self)
            if self.val_every is not None and self.step % self.val_every == 0:
                self._validate(val)
            if self.max_steps is not None and self.step >= self.max_steps:
                self.request_stop(f"reached max_steps={self.max_steps}")
                break
            if self.should_stop and self.val_every is not None:
                break
        return losses, penalties, outputs, targets, size

    def _epoch_record(
        self,
        losses: list[torch.Tensor],
        penalties: list[torch.Tensor],
        outputs: list[torch.Tensor],
        targets: list[torch.Tensor],
        last_size: int,
    ) -> dict[str, Any]:
        """The epoch's training metrics, reduced once: the sample-weighted mean loss, the mean
        penalty and the training accuracy; a non-finite batch loss raises DivergenceError."""
        batch_losses, accuracy = torch.stack(losses), None
        if self.parallel is not None:  # the global batch means, identical on every rank
            batch_losses, accuracy = self.parallel.reduce_epoch(batch_losses, outputs, targets)
        if not bool(torch.isfinite(batch_losses).all()):
            self._raise_diverged(batch_losses)
        sizes = torch.full((len(losses),), float(self.batch_size), device=batch_losses.device)
        sizes[-1] = last_size
        record: dict[str, Any] = {
            "epoch": self.epoch + 1,
            "step": self.step,
            "train_loss": float((batch_losses * sizes).sum() / sizes.sum()),
        }
        if penalties:
            record["penalty"] = float(torch.stack(penalties).mean())
        if accuracy is not None:
            record["train_accuracy"] = accuracy
        elif self.task == "classification":
            pred = torch.cat(outputs).argmax(dim=1)
            record["train_accuracy"] = float(
                (pred == hard_labels(torch.cat(targets))).float().mean()
            )
        return record

    def _raise_diverged(self, batch_losses: torch.Tensor) -> None:
        """Raise DivergenceError naming the epoch, the step and the batch of the first bad loss."""
        bad = int((~torch.isfinite(batch_losses)).nonzero()[0])
        step = self.step - len(batch_losses) + bad + 1
        raise DivergenceError(
            f"training diverged: non-finite loss at epoch {self.epoch + 1}, step {step} "
            f"(batch {bad + 1} of the epoch); {self._last_good_checkpoint()}. Try a smaller "
            "learning rate or gradient clipping."
        )

    def _closure_step(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[Any, Any, Any]:
        seen: dict[str, torch.Tensor] = {}

        def closure() -> torch.Tensor:
            self.optimizer.zero_grad(set_to_none=True)
            out = self.model(xb)
            loss = self.loss_fn(out, yb)
            total = loss
            if self.penalty is not None:
                pen = self.penalty(self.model)
                total = loss + pen
                seen.setdefault("pen", pen)
            total.backward()
            for cb in self._hooks["on_after_backward"]:
                cb.on_after_backward(self)
            seen.setdefault("out", out)
            seen.setdefault("loss", loss)
            return total

        self.optimizer.step(closure)
        return seen["out"], seen["loss"], seen.get("pen")


def fit(
    model: nn.Module,
    train: Batch | Sequence[torch.Tensor],
    val: Batch | Sequence[torch.Tensor] | None = None,
    *,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    batch_size: int = 32,
    loss: LossFn | None = None,
    task: str | None = None,
    penalty: Callable[[nn.Module], torch.Tensor] | None = None,
    augment: Callable[[torch.Tensor, torch.Tensor], Batch] | None = None,
    callbacks: Iterable[Callback] = (),
    seed: int = 0,
    val_every: int | None = None,
    progress: Any = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 1,
    resume: bool = False,
    device: str | torch.device | None = None,
    max_steps: int | None = None,
    sampler: EpochSampler | None = None,
    parallel: DataParallel | None = None,
    class_metrics: bool = False,
) -> History:
    """Train ``model`` on ``train = (X, y)`` with minibatch SGD-style updates (seed 003).

    Each epoch: a fresh random permutation (from a generator seeded by ``seed``), minibatches of
    ``batch_size``, forward, data loss (+ ``penalty(model)``), backward, callbacks, optimizer
    step; then validation on ``val`` and one history record (``train_loss``, ``penalty``,
    ``train_accuracy``, ``val_loss``, ``val_accuracy``, ``lr``, ``epoch_seconds``, plus whatever
    callbacks log). The loss defaults to cross-entropy for integer targets and MSE otherwise.

    ``max_steps`` ends training after that many optimizer steps, even mid-epoch. ``sampler``
    (:class:`goodfit.train.sampling.EpochSampler`) chooses each epoch's indices instead of the
    default fresh permutation (a curriculum, a class-balanced draw). ``parallel``
    (:class:`goodfit.train.distributed.DataParallel`, under torchrun) trains data-parallel.
    ``class_metrics`` adds ``val_balanced_accuracy`` and ``val_macro_f1`` to each validation
    (monitorable).
    With ``checkpoint_dir`` a checkpoint is written atomically every ``checkpoint_every`` epochs
    (never with non-finite weights); ``resume=True`` continues from it bit-for-bit on CPU.
    A non-finite loss raises :class:`goodfit.errors.DivergenceError` naming the epoch and step.

    Returns the :class:`History`; ``history.summary`` holds ``wall_seconds``, ``epochs_run``,
    ``steps``, ``stop_reason`` and what callbacks add (early stopping: ``best_epoch``,
    ``best_step``).

    Example
    -------
    >>> import torch, goodfit as gf
    >>> X, y = torch.randn(64, 3), torch.randint(0, 2, (64,))
    >>> net = torch.nn.Linear(3, 2)
    >>> h = gf.fit(net, (X, y), optimizer=torch.optim.SGD(net.parameters(), lr=0.1), epochs=2,
    ...            progress=False)
    >>> len(h)
    2
    """
    runner = Trainer(
        model,
        optimizer,
        epochs=epochs,
        batch_size=batch_size,
        loss=loss,
        task=task,
        penalty=penalty,
        augment=augment,
        callbacks=callbacks,
        seed=seed,
        val_every=val_every,
        progress=progress,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=checkpoint_every,
        resume=resume,
        device=device,
        max_steps=max_steps,
        sampler=sampler,
        parallel=parallel,
        class_metrics=class_metrics,
    )
    return runner.fit(tuple(train), tuple(val) if val is not None else None)  # type: ignore[arg-type]
