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
different architectures, training sets that make different numbers of batches, optimizers with a
cross-parameter reduction or their own randomness (goodfit's ``clip_by_global_norm`` and
``add_noise``, L-BFGS, closures), a penalty without a per-member form (weight tying), an
augmentation that is not an ``AugmentPipeline`` or not on the CPU, a custom sampler, callbacks
other than early stopping, learning-rate schedules and per-member ones (gradient flow:
:mod:`goodfit.train.member_callbacks`), random operations other than ``nn.Dropout*``.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from goodfit.hooks import Callback
from goodfit.train.history import History
from goodfit.train.loop import fit
from goodfit.train.member_callbacks import is_member_callback
from goodfit.train.member_group import MemberGroup
from goodfit.train.vectorize_check import vectorize_obstacle

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
    group = None
    if why is None:
        group = MemberGroup(
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
