"""``[study] vectorize = true``: the folds of one variant train as one ``fit_many`` group.

Every fold of a serial study builds its model after ``seed_everything(train.seed)`` and trains
with ``fit(seed=train.seed)`` on its own prepared data (``prepare_from_config`` with
``seed + fold``); here the same K models, data and seeds train as one vectorized group, so each
fold's result equals the serial one within float32 rounding (the batched matmuls add up in
another order). A variant the group cannot hold — an ensemble, a second-order optimizer, GBC
7.2/7.3, ``val_every``, a device other than the CPU, the first fold's diagnoses (LR range test,
curvature, landscape), the training strategies ([output_noise], [weight_noise],
[adversarial], [curriculum], multitask data), class weights or a balanced sampler, frozen
parameters or per-pattern learning rates, or what ``fit_many`` refuses (weight tying, a
constraint or sparsity callback, ...) — trains serially, with a one-line notice. Folds of
different sizes train in one group as long as they make the same number of batches (5x2's
halves of an odd pool differ by a row: ``fit_many`` runs their last, unequal batches per size);
folds that make different numbers of batches form one group per number, and a fold alone in its
group trains serially.
Gradient flow is recorded per fold as in a serial study (a per-member callback of ``fit_many``).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import torch

from goodfit.app.build import build_optimizer, build_run, is_second_order, prepare_from_config
from goodfit.app.config import Config
from goodfit.app.study_fold import one_network
from goodfit.train.fit_many import fit_many
from goodfit.train.loop import evaluate, seed_everything
from goodfit.train.vectorize_check import batch_sizes

__all__ = ["config_obstacle", "train_variant_vectorized"]


def config_obstacle(cfg: Config, diagnostics: dict[str, bool]) -> str | None:
    """What in a variant's config keeps its folds from one vectorized group, or None."""
    es = cfg.early_stopping
    if cfg.ensemble is not None:
        return "[ensemble] trains its own members"
    if is_second_order(cfg):
        return "a second-order optimizer"
    if es is not None and es.enabled and es.algorithm != "7.1":
        return f"early stopping algorithm {es.algorithm}"
    if cfg.train.val_every is not None or cfg.train.device != "cpu":
        return "train.val_every or a device other than the CPU"
    strategies = [
        f"[{name}]"
        for name in ("output_noise", "weight_noise", "adversarial", "curriculum", "multitask")
        if getattr(cfg, name) is not None
    ]
    if strategies:
        return f"{', '.join(strategies)} (a loss, model or sampler fit_many does not take)"
    t = cfg.train
    if t.class_weights is not None or t.sampler != "random" or t.freeze or t.lr_multipliers:
        return "train.class_weights / sampler / freeze / lr_multipliers"
    if cfg.model.heads:
        return "model.heads (multitask)"
    if es is not None and es.enabled and es.monitor not in ("val_loss", "val_accuracy"):
        return f"early_stopping.monitor = {es.monitor!r} (fit_many validates loss and accuracy)"
    on = [name for name, flag in diagnostics.items() if flag and name != "gradient_flow"]
    if on:
        return f"the per-run diagnoses {', '.join(on)} (set them to false in [study])"
    return None


class _Result:
    """The part of :class:`goodfit.app.run.RunResult` a fold record reads."""

    def __init__(
        self, summary: dict[str, Any], records: list[dict[str, Any]], extra: dict[str, Any]
    ) -> None:
        self.summary, self.records = summary, records
        self.extra = extra  # what the fold record adds: the gradient flow


def _batch_groups(prepared: list[Any], batch_size: int) -> dict[tuple[int, bool], list[int]]:
    """Positions of the folds by (number of training batches, early stopping or not): one
    vectorized group each, since the members of a group step together (5x2's halves of an odd
    pool differ by a row and usually make the same batches but the last)."""
    groups: dict[tuple[int, bool], list[int]] = {}
    for i, p in enumerate(prepared):
        key = (len(batch_sizes(len(p.train[0]), batch_size)), p.val is None)
        groups.setdefault(key, []).append(i)
    return groups


def _train_group(cfg: Config, dataset: Any, prepared: list[Any], flow: bool) -> Any:
    """``fit_many`` over the prepared folds of one size group, each fold's model built after
    ``seed_everything(train.seed)`` as a serial fold's is; ``flow``: record each fold's
    gradient flow."""
    from goodfit.diagnose.gradient_flow import GradientFlowCallback

    parts = []
    for p in prepared:
        seed_everything(cfg.train.seed)  # as every serial fold: the same init
        parts.append(build_run(cfg, p))
    callbacks = list(parts[0].callbacks) + ([GradientFlowCallback()] if flow else [])
    return fit_many(
        [pt.model for pt in parts],
        [p.train for p in prepared],
        None if prepared[0].val is None else [p.val for p in prepared],
        optimizer=lambda m: build_optimizer(cfg.optimizer, m),
        epochs=cfg.train.epochs,
        batch_size=cfg.train.batch_size,
        seeds=[cfg.train.seed] * len(prepared),
        task=dataset.task,
        callbacks=callbacks,
        penalty=parts[0].penalty,
        augment=parts[0].augment,
        vectorize=True,
    )


def _fold_result(
    model: Any, p: Any, history: Any, dataset: Any, wall: float, member_cbs: list[Any]
) -> _Result:
    summary = {**history.summary, "wall_seconds": wall}
    summary.update(evaluate(model, *p.test, task=dataset.task, prefix="test_"))
    if dataset.task == "classification":  # as app.run adds to a serial run's summary
        from goodfit.train.class_metrics import class_report, predict_classes

        pred = predict_classes(model, p.test[0])
        summary.update(class_report(p.test[1], pred, dataset.num_classes, prefix="test_"))
    # the only per-member callback a study passes: the gradient flow
    extra = {"gradient_flow": member_cbs[0].to_dict()} if member_cbs else {}
    return _Result(summary, history.records, extra)


def train_variant_vectorized(
    cfg: Config, dataset: Any, folds: list[int], splits: list[Any], diagnostics: dict[str, bool]
) -> tuple[dict[int, tuple[Any, Any, Any, _Result]], list[int]]:
    """Train ``folds`` of one variant as vectorized groups of folds of equal sizes; returns
    ``{fold: (model, prepared, held_out, result)}`` for the folds trained so and the folds
    left to train serially (a one-line notice on stderr says why)."""
    why = config_obstacle(cfg, diagnostics)
    if why is not None:
        print(f"goodfit: study folds train one after another: {why}", file=sys.stderr)
        return {}, list(folds)
    if cfg.train.threads is not None:
        torch.set_num_threads(cfg.train.threads)
    prepared = [
        prepare_from_config(cfg, dataset, seed=cfg.train.seed + f, pool=splits[f][0]) for f in folds
    ]
    trained: dict[int, tuple[Any, Any, Any, _Result]] = {}
    left: list[int] = []
    lone: list[int] = []
    for members in _batch_groups(prepared, cfg.train.batch_size).values():
        if len(members) < 2:
            lone += [folds[i] for i in members]
            continue
        t0 = time.perf_counter()
        try:
            flow = diagnostics["gradient_flow"] and one_network(cfg)
            res = _train_group(cfg, dataset, [prepared[i] for i in members], flow)
        except ValueError as err:
            if not str(err).startswith("fit_many cannot vectorize"):
                raise
            why = str(err).removeprefix("fit_many cannot vectorize: ")
            print(f"goodfit: study folds train one after another: {why}", file=sys.stderr)
            left += [folds[i] for i in members]
            continue
        wall = (time.perf_counter() - t0) / len(members)
        for k, i in enumerate(members):
            p, f = prepared[i], folds[i]
            cbs = res.member_callbacks[k] if res.member_callbacks else []
            result = _fold_result(res.models[k], p, res.histories[k], dataset, wall, cbs)
            trained[f] = (res.models[k], p, p.rows(splits[f][1]), result)
    if lone:
        print(
            f"goodfit: study fold(s) {[f + 1 for f in sorted(lone)]} train alone: no other "
            "fold of this variant makes their number of batches",
            file=sys.stderr,
        )
    return trained, sorted(left + lone)
