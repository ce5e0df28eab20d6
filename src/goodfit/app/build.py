"""From a validated :class:`goodfit.app.config.Config` to the objects of a run.

:func:`build_run` builds every part once, in order — model (with its init), optimizer (its
param groups and ``lr`` resolved once), the schedule (from that ``lr``; the object that trains
is the one plotted), penalty, augmentation, callbacks — and returns them as :class:`RunParts`.
A wrong value raises :class:`goodfit.errors.ConfigError` naming the section, the key and what
is allowed. The Python API never needs this module: it is the config's front.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from goodfit import optim as gf_optim
from goodfit.app.config import Config
from goodfit.app.optimizer_spec import OPTIMIZERS, chain_from_spec
from goodfit.app.sections import DataConfig, ModelConfig, OptimizerConfig
from goodfit.data.prepare import PreparedData, prepare_data
from goodfit.errors import ConfigError, DataError
from goodfit.hooks import Callback
from goodfit.regularize.selection import is_bias_or_norm
from goodfit.train.early_stopping import EarlyStopping

__all__ = [
    "RunParts",
    "build_augment",
    "build_model",
    "build_optimizer",
    "build_run",
    "call_with_config",
    "check_buildable",
    "is_second_order",
    "load_dataset_from_config",
    "prepare_from_config",
]

#: Augmentations whose output assumes intensities in [0, 1]: kornia clips them to [0, 1] or
#: writes absolute values (salt = 1, pepper = 0, rain drops, snow).
UNIT_RANGE_AUGMENTATIONS = frozenset(
    {
        "brightness",
        "contrast",
        "color_jitter",
        "salt_and_pepper",
        "rain",
        "snow",
        "shadow",
        "glare",
        "linear_illumination",
    }
)


def call_with_config(section: str, factory: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``factory(*args, **kwargs)`` turning a bad key or value into a :class:`ConfigError`
    that names ``section``, the key and the allowed keys."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # builtins without signature
        sig = None
    if sig is not None and not any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()
    ):
        allowed = [
            n
            for n, p in sig.parameters.items()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        ][len(args) :]
        for key in kwargs:
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                raise ConfigError(
                    f"[{section}] unknown key {key!r}"
                    + (f" (did you mean {hint[0]!r}?)" if hint else "")
                    + f"; allowed keys: {', '.join(allowed) or '(none)'}"
                )
    try:
        return factory(*args, **kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError, KeyError) as err:
        raise ConfigError(f"[{section}] {err}") from None


# -- data ----------------------------------------------------------------------------------------


def load_dataset_from_config(cfg: DataConfig) -> Any:
    """The configured dataset, *not* standardized (statistics are fitted per split later)."""
    from goodfit.data import load_dataset

    options = dict(cfg.options)
    if cfg.label is not None:
        options["label"] = cfg.label
    for key in ("image_size", "color"):  # an image folder's (goodfit.data.images)
        if getattr(cfg, key) is not None:
            options[key] = getattr(cfg, key)
    try:
        return load_dataset(cfg.name, standardize=False, test_fraction=cfg.test_fraction, **options)
    except DataError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"[data] {err}") from None


def prepare_from_config(
    cfg: Config, dataset: Any, *, seed: int | None = None, pool: Any = None
) -> PreparedData:
    """:func:`goodfit.data.prepare.prepare_data` with the ``[data]`` section's holdout and
    standardization (``seed``: the split's, default ``train.seed``); with ``clean.exclude``
    the suspects of ``clean.suspects`` are left out of ``pool`` (:mod:`goodfit.app.clean`)."""
    from goodfit.app.clean import excluded_pool

    pool = excluded_pool(cfg, dataset, pool)
    return prepare_data(
        dataset,
        val_fraction=cfg.data.val_fraction,
        seed=cfg.train.seed if seed is None else seed,
        standardize=cfg.data.standardize,
        pool=pool,
        train_size=cfg.data.train_size,
        label_noise=cfg.data.label_noise,
    )


# -- model ---------------------------------------------------------------------------------------


def build_model(cfg: ModelConfig, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Build the configured builder (``mlp``/``cnn1d``/``cnn2d``/``resnet``; ``auto`` picks by the
    input's shape) and apply ``init`` (the scheme's formula; a ``gain`` only when asked for)."""
    from goodfit.nn import models

    kind = cfg.kind
    if kind == "auto":
        kind = {1: "mlp", 2: "cnn1d", 3: "cnn2d"}.get(len(input_shape), "mlp")
    common: dict[str, Any] = {
        "activation": cfg.activation,
        "dropout": cfg.dropout,
        "norm": cfg.norm,
        "weight_standardization": cfg.weight_standardization,
        "spectral_norm": cfg.spectral_norm,
    }
    try:
        if kind == "mlp":
            model = models.mlp(input_shape, cfg.widths, num_outputs, **common)
        elif kind == "resnet":
            model = _build_resnet(cfg, input_shape, num_outputs, common)
        else:
            if cfg.head is not None:
                common["head"] = cfg.head
            if cfg.kernel_size is not None:
                common["kernel_size"] = cfg.kernel_size
            builder = models.cnn1d if kind == "cnn1d" else models.cnn2d
            model = builder(
                input_shape,
                cfg.channels,
                num_outputs,
                hidden=cfg.hidden,
                pool=cfg.pool,
                pool_every=cfg.pool_every,
                **common,
            )
    except (ValueError, TypeError, KeyError) as err:
        raise ConfigError(f"[model] {err}") from None
    if cfg.init is not None:
        _apply_init(cfg, model)
    return model


def _build_resnet(
    cfg: ModelConfig, input_shape: tuple[int, ...], num_outputs: int, common: dict[str, Any]
) -> nn.Module:
    """``model.kind = "resnet"``: :func:`goodfit.nn.resnet.resnet` with ``depth``, ``width``,
    ``stages``, ``skip``, ``head`` and the options every builder shares."""
    from goodfit.nn.resnet import resnet

    extra: dict[str, Any] = {"head": cfg.head or "gap"}
    if cfg.kernel_size is not None:
        extra["kernel_size"] = cfg.kernel_size
    return resnet(
        input_shape, num_outputs, depth=cfg.depth, width=cfg.width, stages=cfg.stages,
        skip=cfg.skip, **extra, **common,
    )  # fmt: skip


def _apply_init(cfg: ModelConfig, model: nn.Module) -> None:
    from goodfit import init as gf_init

    spec = cfg.init if not isinstance(cfg.init, str) else None
    scheme = cfg.init if isinstance(cfg.init, str) else spec.scheme
    kwargs: dict[str, Any] = {}
    if spec is not None:
        kwargs["bias"] = spec.bias
        if spec.gain is not None:
            kwargs["gain"] = spec.gain
    call_with_config("model.init", gf_init.apply, model, scheme, **kwargs)


# -- optimizer -----------------------------------------------------------------------------------


def is_second_order(cfg: Config) -> bool:
    """Whether ``optimizer.name`` is a full-batch second-order solver (no minibatch loop)."""
    return cfg.optimizer.chain is None and cfg.optimizer.name in gf_optim.SECOND_ORDER


def _torch_optimizers() -> dict[str, type[torch.optim.Optimizer]]:
    out = {}
    for name in dir(torch.optim):
        obj = getattr(torch.optim, name)
        is_optimizer = isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer)
        if is_optimizer and obj is not torch.optim.Optimizer:
            out[name.lower()] = obj
    return out


def param_groups(model: nn.Module, no_decay_for_bias_and_norm: bool) -> list[dict[str, Any]]:
    """Two parameter groups: weights, and biases + normalization parameters with no weight
    decay (seed 001: the penalty is "not applied on bias"; the rule of
    :func:`goodfit.regularize.is_bias_or_norm`)."""
    if not no_decay_for_bias_and_norm:
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if p.requires_grad:
                (no_decay if is_bias_or_norm(name, module) else decay).append(p)
    groups = [{"params": decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def _decays(factory: Callable[..., Any], kwargs: dict[str, Any]) -> bool:
    """Whether the optimizer decays weights: the user's ``weight_decay``, else the factory's
    default (adamw: 0.01)."""
    if "weight_decay" in kwargs:
        return bool(kwargs["weight_decay"])
    param = inspect.signature(factory).parameters.get("weight_decay")
    if param is None or param.default is inspect.Parameter.empty:
        return False
    return bool(param.default)


def build_optimizer(
    cfg: OptimizerConfig, model: nn.Module, lr_multipliers: dict[str, float] | None = None
) -> torch.optim.Optimizer:
    """A goodfit named optimizer, an explicit ``chain`` of transforms, or any ``torch.optim``
    optimizer by (case-insensitive) class name, e.g. ``name = "torch.SGD"`` or ``"lbfgs"``;
    ``lr_multipliers`` (``train.lr_multipliers``) splits the groups by parameter-name glob."""
    from goodfit.app.finetune import scale_group_lrs, split_by_multiplier

    def groups_of(decay: bool) -> list[dict[str, Any]]:
        return split_by_multiplier(model, param_groups(model, decay), lr_multipliers or {})

    optimizer = _build_optimizer(cfg, groups_of)
    scale_group_lrs(optimizer)
    return optimizer


def _build_optimizer(cfg: OptimizerConfig, groups_of: Callable[[bool], Any]) -> Any:
    kwargs = cfg.kwargs()
    if cfg.lr is not None:
        kwargs["lr"] = cfg.lr
    if cfg.chain is not None:
        compiled = kwargs.pop("compiled", False)
        if kwargs:
            raise ConfigError(
                f"[optimizer] with a chain, give hyperparameters inside the chain's transforms; "
                f"unexpected keys: {', '.join(kwargs)}"
            )
        transform = call_with_config("optimizer.chain", chain_from_spec, cfg.chain)
        decay = cfg.no_decay_for_bias_and_norm and bool(transform.hyperparams.get("weight_decay"))
        return call_with_config(
            "optimizer",
            gf_optim.Optimizer,
            groups_of(decay),
            transform,
            compiled=compiled,
        )
    name = cfg.name
    if name in gf_optim.SECOND_ORDER:
        raise ConfigError(
            f"[optimizer] {name!r} is a full-batch second-order solver; it is run by "
            "`goodfit train` for regression configs, not as a minibatch optimizer"
        )
    torch_opts = _torch_optimizers()
    if not name.startswith("torch.") and name in OPTIMIZERS:
        factory: Any = OPTIMIZERS[name]
    elif name.removeprefix("torch.").lower() in torch_opts:
        factory = torch_opts[name.removeprefix("torch.").lower()]
    else:
        allowed = sorted(set(OPTIMIZERS) | set(gf_optim.SECOND_ORDER)) + [
            f"torch.{c.__name__}" for c in torch_opts.values()
        ]
        hint = difflib.get_close_matches(name, allowed, n=1)
        raise ConfigError(
            f"[optimizer] name = {name!r} is not known"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
            + f"; allowed: {', '.join(allowed)}"
        )
    groups = groups_of(cfg.no_decay_for_bias_and_norm and _decays(factory, kwargs))
    return call_with_config("optimizer", factory, groups, **kwargs)


def base_lr(optimizer: torch.optim.Optimizer) -> float:
    """The rate a schedule starts from: the optimizer's resolved ``lr`` (its first group's),
    1e-3 for a chain without ``scale_by_lr``."""
    group = optimizer.param_groups[0]
    lr = group.get("lr", 1e-3)
    return float(lr) / group.get("lr_mult", 1.0) if isinstance(lr, int | float) else 1e-3


# -- schedule, penalty, augmentation, callbacks --------------------------------------------------


def build_schedule(cfg: Config, lr: float, steps_per_epoch: int) -> Callable[[int], float] | None:
    """The configured learning-rate schedule as a function of the step (of the epoch when
    ``interval = "epoch"``), starting from ``lr``; ``None`` without a schedule or for the
    reactive ``reduce_on_plateau``."""
    if cfg.schedule is None or cfg.schedule.name == "reduce_on_plateau":
        return None
    from goodfit.app.schedule_spec import schedule_from_config

    return call_with_config(
        "schedule",
        schedule_from_config,
        cfg.schedule.name,
        cfg.schedule.kwargs(),
        base_lr=lr,
        steps_per_epoch=steps_per_epoch,
        epochs=cfg.train.epochs,
        interval=cfg.schedule.interval,
    )


def build_augment(cfg: Config, input_shape: tuple[int, ...], num_classes: int | None) -> Any:
    """The ``[augment]`` pipeline (``None`` without one).

    Training batches are standardized (``data.standardize = true``, the default) *before* they
    are augmented, so an op that assumes intensities in [0, 1] (:data:`UNIT_RANGE_AUGMENTATIONS`)
    would clip away everything below 0, i.e. most of the image; such a config is rejected with
    a :class:`ConfigError` that says to set ``data.standardize = false`` (the built-in image
    datasets are already scaled to [0, 1]) or to drop the op.
    """
    if cfg.augment is None or not cfg.augment.ops:
        return None
    from goodfit.app.augment_spec import pipeline_from_config

    pipeline = pipeline_from_config(cfg.augment, input_shape=input_shape, num_classes=num_classes)
    if cfg.data.standardize:
        for i, op in enumerate(pipeline.ops):
            if op.name in UNIT_RANGE_AUGMENTATIONS:
                raise ConfigError(
                    f"[augment] ops[{i}] name = {op.name!r} assumes pixel values in [0, 1] "
                    "(kornia clips its output to [0, 1]), but with data.standardize = true the "
                    "training batches are standardized (mean 0, std 1) before augmentation; "
                    "set data.standardize = false (the built-in image datasets are already in "
                    "[0, 1]) or remove the op"
                )
    return pipeline


def _uses_l1(cfg: Config) -> bool:
    """Whether the run has an L1 term (penalty, Laplace prior or proximal/L1 optimizer step),
    so the sparsity report (exact zeros per layer, seed 000) is worth recording."""
    r = cfg.regularize
    if r is not None and (
        r.l1 or r.elastic or r.per_layer or (r.prior and r.prior.kind == "laplace")
    ):
        return True
    chain = cfg.optimizer.chain or []
    return any("l1" in str(t.get("name", "")) for t in chain) or any(
        "l1" in key for key in cfg.optimizer.kwargs()
    )


def _schedule_callback(cfg: Config, schedule: Callable[[int], float] | None, has_val: bool) -> Any:
    from goodfit.train.schedule_callbacks import ReduceLROnPlateau, ScheduleCallback

    if schedule is not None:
        return ScheduleCallback(schedule, interval=cfg.schedule.interval)
    if not has_val:
        raise ConfigError(
            "[schedule] reduce_on_plateau watches a validation metric: set data.val_fraction > 0"
        )
    params = cfg.schedule.kwargs()
    if "interval" in cfg.schedule.model_fields_set and cfg.schedule.interval != "epoch":
        raise ConfigError(
            "[schedule] interval must be left out for reduce_on_plateau (it acts after each "
            f"validation), got {cfg.schedule.interval!r}"
        )
    return call_with_config("schedule", ReduceLROnPlateau, **params)


def _early_stopping(
    cfg: Config, has_val: bool, task: str | None, monitors: tuple[str, ...] = ()
) -> EarlyStopping | None:
    es = cfg.early_stopping
    if es is None or not es.enabled:
        return None
    if not has_val:
        raise ConfigError(
            "[early_stopping] needs validation data: set data.val_fraction > 0 "
            "(e.g. 0.2) or disable early stopping"
        )
    allowed = ["val_loss"] if task in ("regression", "multitask") else ["val_loss", "val_accuracy"]
    allowed += list(monitors)  # a multitask run's per-task metrics
    if task == "classification" and es.algorithm == "7.1":  # goodfit.train.class_metrics
        allowed += ["val_balanced_accuracy", "val_macro_f1"]
    if es.monitor not in allowed:
        raise ConfigError(
            f"[early_stopping] monitor = {es.monitor!r} is not a validation metric of this "
            f"task; allowed: {', '.join(allowed)}"
        )
    return call_with_config(
        "early_stopping",
        EarlyStopping,
        monitor=es.monitor,
        patience=es.patience,
        min_delta=es.min_delta,
        mode=es.mode,
        restore_best=es.restore_best,
    )


def build_callbacks(
    cfg: Config,
    model: nn.Module,
    schedule: Callable[[int], float] | None,
    has_val: bool,
    *,
    task: str | None = None,
    early_stopping: bool = True,
    monitors: tuple[str, ...] = (),
) -> list[Callback]:
    """Schedule, constraints, sparsity report and (unless ``early_stopping=False``) early
    stopping callbacks from the config; ``schedule`` is the run's (from :func:`build_schedule`)."""
    from goodfit import regularize
    from goodfit.app.regularize_spec import constraints_from_config

    callbacks: list[Callback] = []
    if cfg.schedule is not None:
        callbacks.append(_schedule_callback(cfg, schedule, has_val))
    constraints = constraints_from_config(cfg.regularize, model)
    if constraints:
        callbacks.append(regularize.ConstraintCallback(constraints))
    if _uses_l1(cfg):
        callbacks.append(regularize.SparsityCallback())
    stopper = _early_stopping(cfg, has_val, task, monitors)
    if stopper is not None and early_stopping:
        callbacks.append(stopper)
    return callbacks


# -- a whole run ---------------------------------------------------------------------------------


@dataclasses.dataclass
class RunParts:
    """Everything a first-order run trains with, each built once from the config."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    lr: float
    steps_per_epoch: int
    schedule: Callable[[int], float] | None
    penalty: Callable[[nn.Module], torch.Tensor] | None
    augment: Any
    callbacks: list[Callback]
    #: The training loss (``None``: the task's default; label smoothing, class weights set one).
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    #: The epoch sampler (``None``: a fresh permutation; train.sampler = "balanced" sets one).
    sampler: Any = None


def build_run(cfg: Config, prepared: PreparedData, *, early_stopping: bool = True) -> RunParts:
    """Model, optimizer, schedule (from the optimizer's resolved ``lr``), penalty,
    augmentation and callbacks of a first-order run on ``prepared``."""
    from goodfit.app.multitask import (
        build_multitask_model,
        metric_names,
        multitask_callback,
        multitask_loss,
    )
    from goodfit.app.regularize_spec import penalty_from_config
    from goodfit.app.strategies import (
        apply_model_strategies,
        build_loss,
        chain_transforms,
        strategy_transforms,
    )

    ds = prepared.dataset
    n_train = len(prepared.train[0])
    steps_per_epoch = max(1, math.ceil(n_train / cfg.train.batch_size))
    model = build_model(cfg.model, ds.input_shape, ds.num_outputs)
    model = apply_model_strategies(cfg, build_multitask_model(cfg, model, ds))
    optimizer = build_optimizer(cfg.optimizer, model, cfg.train.lr_multipliers)
    lr = base_lr(optimizer)
    schedule = build_schedule(cfg, lr, steps_per_epoch)
    has_val = prepared.val is not None
    from goodfit.app.imbalance_spec import imbalance_parts

    imbalance = imbalance_parts(cfg, prepared)
    return RunParts(
        model=model,
        optimizer=optimizer,
        lr=lr,
        steps_per_epoch=steps_per_epoch,
        schedule=schedule,
        penalty=penalty_from_config(
            cfg.regularize, model, batch_size=cfg.train.batch_size, n_data=n_train
        ),
        augment=chain_transforms(
            build_augment(cfg, ds.input_shape, ds.num_classes),
            strategy_transforms(cfg, model, prepared),
        ),
        callbacks=[
            cb
            for cb in [multitask_callback(model, ds, prepared.val)]
            if cb is not None  # before early stopping: it adds the per-task metrics it reads
        ]
        + build_callbacks(
            cfg,
            model,
            schedule,
            has_val,
            task=ds.task,
            early_stopping=early_stopping,
            monitors=tuple(metric_names(ds, ("val",))),
        ),
        loss=multitask_loss(cfg, model, ds)
        or build_loss(cfg, ds.task, class_weight=imbalance.get("class_weight")),
        sampler=imbalance.get("sampler"),
    )


#: Bytes of memory per parameter a first-order run needs at least: the weight, its gradient and
#: two optimizer state tensors (Adam's moments), in float32.
BYTES_PER_PARAMETER = 16


def check_model_size(cfg: Config, dataset: Any) -> int:
    """The configured model's parameter count, found by building it on the ``meta`` device (no
    memory); a model that would not fit in this machine's memory is refused with its size."""
    import os

    spec = cfg.model.model_copy(update={"init": None})
    with torch.device("meta"):
        model = build_model(spec, dataset.input_shape, dataset.num_outputs)
    n = sum(p.numel() for p in model.parameters())
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: no bound known
        return n
    if n * BYTES_PER_PARAMETER > memory:
        raise ConfigError(
            f"[model] the configured model has {n:,} parameters, which needs at least "
            f"{n * BYTES_PER_PARAMETER / 2**30:.1f} GiB to train (weights, gradients, optimizer "
            f"state) but this machine has {memory / 2**30:.1f} GiB; make [model] smaller"
        )
    return n


def check_buildable(cfg: Config, prepared: PreparedData) -> None:
    """Build every part of ``cfg`` once on a throwaway model, so a bad key or value raises
    :class:`ConfigError` before anything is trained or written (a model too large for memory is
    refused before it is allocated). Draws from the global RNG: reseed afterwards."""
    check_model_size(cfg, prepared.dataset)
    if cfg.ensemble is not None:
        from goodfit.app.ensemble_run import check_ensemble

        check_ensemble(cfg, prepared)
    if is_second_order(cfg):
        from goodfit.app.regularize_spec import penalty_from_config

        ds = prepared.dataset
        model = build_model(cfg.model, ds.input_shape, ds.num_outputs)
        penalty_from_config(cfg.regularize, model, batch_size=cfg.train.batch_size)
        build_augment(cfg, ds.input_shape, ds.num_classes)
        return
    from goodfit.app.strategies import check_strategies

    build_run(cfg, prepared)
    check_strategies(cfg, prepared)
