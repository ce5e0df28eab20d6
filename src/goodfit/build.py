"""From a validated :class:`goodfit.config.Config` to the objects of a run.

Each ``build_*`` function turns one config section into plain PyTorch/goodfit objects; a wrong
value raises :class:`goodfit.errors.ConfigError` naming the section, the key and what is allowed.
The Python API never needs this module: it is the config's thin front.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from goodfit.config import Config, DataConfig, ModelConfig, OptimizerConfig
from goodfit.errors import ConfigError, DataError
from goodfit.hooks import Callback
from goodfit.train.early_stopping import EarlyStopping

__all__ = [
    "PreparedData",
    "build_augment",
    "build_callbacks",
    "build_model",
    "build_optimizer",
    "build_penalty",
    "build_schedule",
    "call_with_config",
    "check_buildable",
    "prepare_data",
]

_NORM_TYPES = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.modules.instancenorm._InstanceNorm,
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


def _choose(section: str, key: str, name: str, registry: dict[str, Any]) -> Any:
    if name in registry:
        return registry[name]
    hint = difflib.get_close_matches(name, list(registry), n=1)
    raise ConfigError(
        f"[{section}] {key} = {name!r} is not known"
        + (f" (did you mean {hint[0]!r}?)" if hint else "")
        + f"; allowed: {', '.join(sorted(registry))}"
    )


# -- data ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class PreparedData:
    """A dataset split into train / validation / test tensors, standardized with statistics of
    the training part only."""

    dataset: Any
    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor] | None
    test: tuple[torch.Tensor, torch.Tensor]


def load_raw_dataset(cfg: DataConfig) -> Any:
    """The configured dataset, *not* standardized (statistics are fitted per split later)."""
    from goodfit.data.datasets import load_dataset

    options = dict(cfg.options)
    if cfg.label is not None:
        options["label"] = cfg.label
    try:
        return load_dataset(cfg.name, standardize=False, test_fraction=cfg.test_fraction, **options)
    except DataError:
        raise
    except TypeError as err:
        raise ConfigError(f"[data] {err}") from None
    except ValueError as err:
        raise ConfigError(f"[data] {err}") from None


def split_indices(
    dataset: Any, val_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Holdout split of the training part into (sub)train and validation indices (stratified
    for classification), using scikit-learn's ``train_test_split``."""
    n = dataset.n_train
    if val_fraction <= 0:
        return torch.arange(n), None
    from sklearn.model_selection import train_test_split

    y = dataset.y_train.numpy() if dataset.task == "classification" else None
    idx = list(range(n))
    try:
        tr, va = train_test_split(idx, test_size=val_fraction, random_state=seed, stratify=y)
    except ValueError:  # too few samples of a class to stratify
        tr, va = train_test_split(idx, test_size=val_fraction, random_state=seed)
    return torch.as_tensor(sorted(tr)), torch.as_tensor(sorted(va))


def prepare_data(
    cfg: DataConfig,
    seed: int = 0,
    *,
    dataset: Any = None,
    train_idx: torch.Tensor | None = None,
    val_idx: torch.Tensor | None = None,
) -> PreparedData:
    """Load (or take) the dataset, split train/validation, standardize on the train part only.

    ``train_idx``/``val_idx`` (e.g. a cross-validation fold) override the holdout split.
    """
    dataset = dataset if dataset is not None else load_raw_dataset(cfg)
    if train_idx is None:
        train_idx, val_idx = split_indices(dataset, cfg.val_fraction, seed)
    if cfg.standardize:
        from goodfit.data.datasets import fit_standardizer

        stats = fit_standardizer(dataset.X_train[train_idx])
        X_train, X_test = stats(dataset.X_train), stats(dataset.X_test)
    else:
        X_train, X_test = dataset.X_train, dataset.X_test
    y_train = dataset.y_train
    val = (X_train[val_idx], y_train[val_idx]) if val_idx is not None else None
    return PreparedData(
        dataset=dataset,
        train=(X_train[train_idx], y_train[train_idx]),
        val=val,
        test=(X_test, dataset.y_test),
    )


# -- model ---------------------------------------------------------------------------------------


def build_model(cfg: ModelConfig, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Build the configured builder (``mlp``/``cnn1d``/``cnn2d``; ``auto`` picks by the input's
    shape) and apply ``init``."""
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
        else:
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
        from goodfit import init as gf_init

        spec = {"scheme": cfg.init} if isinstance(cfg.init, str) else dict(cfg.init)
        if "scheme" not in spec:
            raise ConfigError("[model] init needs a 'scheme', e.g. init = \"he_normal\"")
        scheme = spec.pop("scheme")
        spec.setdefault("nonlinearity", cfg.activation)
        call_with_config("model.init", gf_init.apply, model, scheme, **spec)
    return model


# -- optimizer -----------------------------------------------------------------------------------


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
    decay (seed 001: the penalty is "not applied on bias")."""
    if not no_decay_for_bias_and_norm:
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if isinstance(module, _NORM_TYPES) or name.endswith("bias") or p.ndim <= 1:
                no_decay.append(p)
            else:
                decay.append(p)
    groups = [{"params": decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def _default_kwarg(factory: Callable[..., Any], key: str, default: Any = 0.0) -> Any:
    """The default of ``factory``'s keyword ``key`` (``default`` if it has none)."""
    try:
        param = inspect.signature(factory).parameters.get(key)
    except (TypeError, ValueError):
        return default
    if param is None or param.default is inspect.Parameter.empty:
        return default
    return param.default


def build_optimizer(cfg: OptimizerConfig, model: nn.Module) -> torch.optim.Optimizer:
    """A goodfit named optimizer, an explicit ``chain`` of transforms, or any ``torch.optim``
    optimizer by (case-insensitive) class name, e.g. ``name = "torch.SGD"`` or ``"lbfgs"``."""
    from goodfit import optim as gf_optim

    kwargs = cfg.kwargs()
    if cfg.lr is not None:
        kwargs["lr"] = cfg.lr

    def groups_for(factory: Any) -> list[dict[str, Any]]:
        # the decay actually used: the user's, else the factory's default (adamw: 0.01)
        weight_decay = kwargs.get("weight_decay", _default_kwarg(factory, "weight_decay"))
        return param_groups(model, cfg.no_decay_for_bias_and_norm and bool(weight_decay))

    if cfg.chain is not None:
        compiled = kwargs.pop("compiled", False)
        if kwargs:
            raise ConfigError(
                f"[optimizer] with a chain, give hyperparameters inside the chain's transforms; "
                f"unexpected keys: {', '.join(kwargs)}"
            )
        transform = call_with_config("optimizer.chain", gf_optim.chain_from_spec, cfg.chain)
        weight_decay = transform.hyperparams.get("weight_decay", 0.0)
        decay_groups = cfg.no_decay_for_bias_and_norm and bool(weight_decay)
        return call_with_config(
            "optimizer",
            gf_optim.Optimizer,
            param_groups(model, decay_groups),
            transform,
            compiled=compiled,
        )
    name = cfg.name
    registry = getattr(gf_optim, "OPTIMIZERS", {})
    second_order = getattr(gf_optim, "SECOND_ORDER", {})
    if name in second_order:
        raise ConfigError(
            f"[optimizer] {name!r} is a full-batch second-order solver; it is run by "
            "`goodfit train` for regression configs, not as a minibatch optimizer"
        )
    if not name.startswith("torch.") and name in registry:
        factory = registry[name]
        return call_with_config("optimizer", factory, groups_for(factory), **kwargs)
    torch_opts = _torch_optimizers()
    key = name.removeprefix("torch.").lower()
    if key in torch_opts:
        factory = torch_opts[key]
        return call_with_config("optimizer", factory, groups_for(factory), **kwargs)
    allowed = sorted(set(registry) | set(second_order)) + [
        f"torch.{c.__name__}" for c in torch_opts.values()
    ]
    hint = difflib.get_close_matches(name, allowed, n=1)
    raise ConfigError(
        f"[optimizer] name = {name!r} is not known"
        + (f" (did you mean {hint[0]!r}?)" if hint else "")
        + f"; allowed: {', '.join(allowed)}"
    )


# -- schedule, penalty, augmentation, callbacks --------------------------------------------------


def _base_lr(cfg: Config) -> float:
    """The rate a schedule starts from: ``optimizer.lr``, else the chain's ``scale_by_lr`` rate
    or the named optimizer's default (e.g. adamax 0.002, adadelta 1.0), else 1e-3."""
    if cfg.optimizer.lr is not None:
        return cfg.optimizer.lr
    if cfg.optimizer.chain is not None:  # the chain's scale_by_lr rate
        for entry in cfg.optimizer.chain:
            lr = entry.get("lr") if entry.get("name") == "scale_by_lr" else None
            if isinstance(lr, int | float) and not isinstance(lr, bool):
                return float(lr)
    else:
        from goodfit import optim as gf_optim

        factory = getattr(gf_optim, "OPTIMIZERS", {}).get(cfg.optimizer.name)
        if factory is None:
            factory = _torch_optimizers().get(cfg.optimizer.name.removeprefix("torch.").lower())
        if factory is not None:
            lr = _default_kwarg(factory, "lr", None)
            if isinstance(lr, int | float) and not isinstance(lr, bool):
                return float(lr)
    return 1e-3


def build_schedule(cfg: Config, steps_per_epoch: int) -> Callable[[int], float] | None:
    """The configured learning-rate schedule as a function of the step (or of the epoch when
    ``interval = "epoch"``); ``None`` without a schedule or for the reactive
    ``reduce_on_plateau``."""
    if cfg.schedule is None or cfg.schedule.name == "reduce_on_plateau":
        return None
    from goodfit import schedules

    base_lr = _base_lr(cfg)
    return call_with_config(
        "schedule",
        schedules.schedule_from_config,
        cfg.schedule.name,
        cfg.schedule.kwargs(),
        base_lr=base_lr,
        steps_per_epoch=steps_per_epoch,
        epochs=cfg.train.epochs,
        interval=cfg.schedule.interval,
    )


def build_penalty(
    cfg: Config, model: nn.Module, n_data: int | None = None
) -> Callable[[nn.Module], torch.Tensor] | None:
    """The ``[regularize]`` penalty bound to ``model`` (``None`` when it has no penalty term)."""
    if not cfg.regularize:
        return None
    from goodfit import regularize

    return call_with_config(
        "regularize",
        regularize.penalty_from_config,
        dict(cfg.regularize),
        model,
        batch_size=cfg.train.batch_size,
        n_data=n_data,
    )


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


def build_augment(cfg: Config, input_shape: tuple[int, ...], num_classes: int | None) -> Any:
    """The ``[augment]`` pipeline (``None`` without one).

    Training batches are standardized (``data.standardize = true``, the default) *before* they
    are augmented, so an op that assumes intensities in [0, 1] (:data:`UNIT_RANGE_AUGMENTATIONS`)
    would clip away everything below 0, i.e. most of the image; such a config is rejected with
    a :class:`ConfigError` that says to set ``data.standardize = false`` (the built-in image
    datasets are already scaled to [0, 1]) or to drop the op. Geometric ops, erasing, noise,
    mixup and cutmix are unaffected (standardization is per channel).
    """
    if not cfg.augment:
        return None
    from goodfit.data import augment

    pipeline = call_with_config(
        "augment",
        augment.pipeline_from_config,
        dict(cfg.augment),
        input_shape=input_shape,
        num_classes=num_classes,
    )
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


def _uses_proximal_l1(cfg: Config) -> bool:
    chain = cfg.optimizer.chain or []
    return any("l1" in str(t.get("name", "")) for t in chain) or any(
        "l1" in key for key in cfg.optimizer.kwargs()
    )


def build_callbacks(
    cfg: Config,
    model: nn.Module,
    steps_per_epoch: int,
    has_val: bool,
    *,
    task: str | None = None,
) -> list[Callback]:
    """Early stopping, schedule, constraints and reporting callbacks from the config."""
    callbacks: list[Callback] = []
    if cfg.schedule is not None:
        from goodfit.train.schedule_callbacks import callback_from_config

        if cfg.schedule.name == "reduce_on_plateau" and not has_val:
            raise ConfigError(
                "[schedule] reduce_on_plateau watches a validation metric: set "
                "data.val_fraction > 0"
            )
        base_lr = _base_lr(cfg)
        interval: str | None = cfg.schedule.interval
        if cfg.schedule.name == "reduce_on_plateau" and interval == "step":
            interval = None  # the section's default; the plateau callback acts per validation
        callbacks.append(
            call_with_config(
                "schedule",
                callback_from_config,
                cfg.schedule.name,
                cfg.schedule.kwargs(),
                base_lr=base_lr,
                steps_per_epoch=steps_per_epoch,
                epochs=cfg.train.epochs,
                interval=interval,
            )
        )
    if cfg.regularize:
        from goodfit import regularize

        constraints = call_with_config(
            "regularize", regularize.constraints_from_config, dict(cfg.regularize), model
        )
        if constraints:
            callbacks.append(regularize.ConstraintCallback(constraints))
        prior = cfg.regularize.get("prior")
        laplace = isinstance(prior, dict) and prior.get("kind") == "laplace"  # an L1 term
        l1_terms = any(k in cfg.regularize for k in ("l1", "elastic", "per_layer"))
        if l1_terms or laplace or _uses_proximal_l1(cfg):
            callbacks.append(regularize.SparsityCallback())  # exact zeros per layer (seed 000 L1)
    elif _uses_proximal_l1(cfg):
        from goodfit import regularize

        callbacks.append(regularize.SparsityCallback())
    es = cfg.early_stopping
    if es is not None and es.enabled:
        if not has_val:
            raise ConfigError(
                "[early_stopping] needs validation data: set data.val_fraction > 0 "
                "(e.g. 0.2) or disable early stopping"
            )
        allowed = ["val_loss", "val_accuracy"] if task != "regression" else ["val_loss"]
        if es.monitor not in allowed:
            raise ConfigError(
                f"[early_stopping] monitor = {es.monitor!r} is not a validation metric of this "
                f"task; allowed: {', '.join(allowed)}"
            )
        callbacks.append(
            call_with_config(
                "early_stopping",
                EarlyStopping,
                monitor=es.monitor,
                patience=es.patience,
                min_delta=es.min_delta,
                mode=es.mode,
                restore_best=es.restore_best,
            )
        )
    return callbacks


def check_buildable(cfg: Config, dataset: Any, has_val: bool = True) -> None:
    """Build every part of ``cfg`` once on a throwaway model (model, optimizer, callbacks,
    penalty, augmentation), so a bad key or value raises :class:`ConfigError` before anything is
    trained or written. Draws from the global RNG: reseed afterwards."""
    model = build_model(cfg.model, dataset.input_shape, dataset.num_outputs)
    from goodfit import optim as gf_optim

    if cfg.optimizer.name not in getattr(gf_optim, "SECOND_ORDER", {}):
        build_optimizer(cfg.optimizer, model)
        build_callbacks(cfg, model, 10, has_val, task=dataset.task)
    build_penalty(cfg, model)
    build_augment(cfg, dataset.input_shape, dataset.num_classes)
