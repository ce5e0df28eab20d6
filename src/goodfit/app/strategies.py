"""From the strategy sections of a config to a run's parts: the training loss (label
smoothing), the batch transforms (adversarial examples, output noise), weight noise and
fine-tuning on the model, the curriculum sampler, and the robust accuracy of the summary.

Called by :mod:`goodfit.app.build` (model, loss, transforms), :mod:`goodfit.app.run` (the
sampler, the summary) and :mod:`goodfit.app.study` (robust accuracy on a fold's held-out part).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from goodfit.app.config import Config
from goodfit.errors import ConfigError

__all__ = [
    "apply_model_strategies",
    "build_loss",
    "build_sampler",
    "chain_transforms",
    "check_strategies",
    "robust_scores",
    "strategy_transforms",
]

Transform = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


class _Chain:
    """Batch transforms ``(x, y) -> (x, y)`` applied in order."""

    def __init__(self, transforms: list[Transform]) -> None:
        self.transforms = transforms

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        for t in self.transforms:
            x, y = t(x, y)
        return x, y

    def __repr__(self) -> str:
        return f"Chain({', '.join(map(repr, self.transforms))})"


def chain_transforms(*transforms: Transform | None) -> Transform | None:
    """The transforms given (``None`` skipped) applied in order; one alone is itself."""
    kept = [t for t in transforms if t is not None]
    if len(kept) <= 1:
        return kept[0] if kept else None
    return _Chain(kept)


# -- model: init_from, freeze, weight noise ------------------------------------------------------


def apply_model_strategies(cfg: Config, model: nn.Module) -> nn.Module:
    """``regularize.share``, ``model.init_from`` (then ``train.freeze``) and
    ``[weight_noise]``, in place."""
    from goodfit.app.finetune import apply_freeze, load_init

    _share(cfg, model)
    if cfg.model.init_from is not None:
        load_init(model, cfg.model.init_from, skip_mismatched=cfg.model.init_skip_mismatched)
    if cfg.train.freeze:
        apply_freeze(model, cfg.train.freeze)
        if not any(p.requires_grad for p in model.parameters()):
            raise ConfigError("train.freeze: every parameter is frozen; nothing would train")
    wn = cfg.weight_noise
    if wn is not None:
        from goodfit.regularize.weight_noise import add_weight_noise

        try:
            add_weight_noise(model, wn.sigma, wn.kind, types=wn.types)
        except ValueError as err:
            raise ConfigError(f"[weight_noise] {err}") from None
    return model


def _share(cfg: Config, model: nn.Module) -> None:
    """``[regularize] share``: :func:`goodfit.regularize.share_parameters` per entry."""
    from goodfit.regularize.tying import share_parameters

    for i, entry in enumerate(cfg.regularize.share if cfg.regularize else []):
        key = f"regularize.share[{i}]"
        try:
            a, b = model.get_submodule(entry.a), model.get_submodule(entry.b)
        except AttributeError as err:
            names = ", ".join(n for n, _ in model.named_modules() if n)
            raise ConfigError(f"{key}: {err}; submodules: {names}") from None
        try:
            share_parameters(a, b)
        except ValueError as err:
            raise ConfigError(f"{key}: {err}") from None


# -- loss and batch transforms -------------------------------------------------------------------


def build_loss(
    cfg: Config, task: str, class_weight: Tensor | None = None
) -> Callable[[Tensor, Tensor], Tensor] | None:
    """The training loss: cross-entropy with ``output_noise.label_smoothing`` and/or per-class
    ``class_weight`` (``train.class_weights``); ``None`` (the task's default) with neither."""
    on = cfg.output_noise
    smoothing = 0.0 if on is None else on.label_smoothing
    if smoothing > 0.0 and task != "classification":
        raise ConfigError(
            "output_noise.label_smoothing needs a classification dataset; for regression use "
            "output_noise.target_std"
        )
    if smoothing > 0.0:
        from goodfit.regularize.output_noise import LabelSmoothingLoss

        return LabelSmoothingLoss(smoothing, weight=class_weight)
    if class_weight is not None:
        from goodfit.data.imbalance import weighted_cross_entropy

        return weighted_cross_entropy(class_weight)
    return None


def _output_noise(cfg: Config, ds: Any) -> Transform | None:
    on = cfg.output_noise
    if on is None:
        return None
    from goodfit.regularize.output_noise import SoftTargetNoise, TargetNoise

    if on.soft_target > 0:
        if ds.task != "classification":
            raise ConfigError("output_noise.soft_target needs a classification dataset")
        return SoftTargetNoise(on.soft_target, ds.num_classes)
    if on.target_std > 0:
        if ds.task != "regression":
            raise ConfigError(
                "output_noise.target_std needs a regression dataset; for classification use "
                "output_noise.label_smoothing or output_noise.soft_target"
            )
        return TargetNoise(on.target_std)
    return None


def attack_options(cfg: Config, prepared: Any) -> tuple[Any, dict[str, Any]]:
    """``eps`` and the attack options in the units the model sees: the budget and the range are
    given in the data's own units, so with standardization (``z = (x - mu) / sigma``) the attack
    on ``z`` uses ``eps / sigma`` and ``(clip - mu) / sigma`` per channel/feature."""
    from goodfit.data.adversarial import in_standardized_units
    from goodfit.data.standardize import Standardizer

    adv = cfg.adversarial
    lo, hi = adv.clip if adv.clip is not None else (None, None)
    eps: Any = adv.eps
    alpha: Any = adv.alpha
    if isinstance(prepared.transform, Standardizer):
        mean, std = prepared.transform
        eps, lo, hi = in_standardized_units(adv.eps, lo, hi, mean, std)
        alpha = alpha / std[0] if alpha is not None else None
    return eps, {"lower": lo, "upper": hi, "steps": adv.steps, "alpha": alpha}


def strategy_transforms(cfg: Config, model: nn.Module, prepared: Any) -> Transform | None:
    """Adversarial examples (``[adversarial]``, a share of each batch), then output noise."""
    ds = prepared.dataset
    adv_transform = None
    adv = cfg.adversarial
    if adv is not None:
        if ds.task != "classification":
            raise ConfigError("[adversarial] needs a classification dataset (attacks on the loss)")
        if adv.method != "none" and adv.ratio > 0 and adv.eps > 0:
            from goodfit.data.adversarial import AdversarialTraining

            eps, options = attack_options(cfg, prepared)
            if adv.method == "fgsm":
                options = {"lower": options["lower"], "upper": options["upper"]}
            adv_transform = AdversarialTraining(model, adv.method, eps, ratio=adv.ratio, **options)
    return chain_transforms(adv_transform, _output_noise(cfg, ds))


def robust_scores(
    cfg: Config, model: nn.Module, X: Tensor, y: Tensor, prepared: Any, prefix: str
) -> dict[str, float]:
    """``{prefix}robust_accuracy_<attack>`` for each ``adversarial.evaluate`` attack at the
    configured ``eps`` (nothing without ``[adversarial]`` or for regression)."""
    adv = cfg.adversarial
    if adv is None or prepared.dataset.task != "classification":
        return {}
    from goodfit.data.adversarial import robust_accuracy

    eps, options = attack_options(cfg, prepared)
    out = {}
    for method in adv.evaluate:
        kwargs = (
            dict(options)
            if method == "pgd"
            else {"lower": options["lower"], "upper": options["upper"]}
        )
        if method == "pgd":
            kwargs["random_start"] = adv.random_start
        out[f"{prefix}robust_accuracy_{method}"] = robust_accuracy(
            model, X, y, method, eps, **kwargs
        )
    return out


# -- curriculum ----------------------------------------------------------------------------------


def _given_scores(cfg: Config, prepared: Any) -> Tensor:
    cur = cfg.curriculum
    path = Path(cur.scores)
    if not path.is_file():
        raise ConfigError(f"curriculum.scores = {cur.scores!r}: no such file")
    try:
        scores = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ConfigError(f"curriculum.scores: cannot read {path} as a .npy array: {err}") from None
    n = prepared.dataset.n_train
    if scores.ndim != 1 or len(scores) != n or not np.issubdtype(scores.dtype, np.number):
        raise ConfigError(
            f"curriculum.scores: {path} must hold {n} numbers (one per row of the dataset's "
            f"training array), got shape {scores.shape} of {scores.dtype}"
        )
    if not np.isfinite(scores).all():
        raise ConfigError(f"curriculum.scores: {path} holds non-finite values")
    return torch.as_tensor(scores, dtype=torch.float64)[prepared.train_index]


def _reference_scores(cfg: Config, prepared: Any, progress: Any) -> Tensor:
    """Hacohen & Weinshall's scoring: a model of this config (without the curriculum) trained
    ``reference_epochs`` on the same training part; its per-sample loss is the difficulty."""
    from goodfit.app.build import build_run
    from goodfit.train.curriculum import per_sample_loss
    from goodfit.train.loop import fit, seed_everything

    ref = cfg.model_copy(deep=True)
    ref.curriculum = None
    ref.early_stopping = None
    ref.train.epochs = cfg.curriculum.reference_epochs
    seed_everything(cfg.train.seed)
    parts = build_run(ref, prepared, early_stopping=False)
    fit(
        parts.model,
        prepared.train,
        None,
        optimizer=parts.optimizer,
        epochs=ref.train.epochs,
        batch_size=ref.train.batch_size,
        loss=parts.loss,
        task=prepared.dataset.task,
        penalty=parts.penalty,
        augment=parts.augment,
        seed=cfg.train.seed,
        progress=progress,
        device=cfg.train.device,
    )
    return per_sample_loss(parts.model, *prepared.train)


def build_sampler(
    cfg: Config, prepared: Any, *, progress: Any = None, dry_run: bool = False
) -> Any:
    """The ``[curriculum]`` sampler (``None`` without one). ``dry_run`` checks the section
    without training the reference model (scores are then a placeholder)."""
    cur = cfg.curriculum
    if cur is None:
        return None
    from goodfit.train.curriculum import CurriculumSampler

    n = len(prepared.train[0])
    scores = None
    if cur.order != "random":
        if cur.scoring == "given":
            scores = _given_scores(cfg, prepared)
        elif cur.scoring == "reference":
            scores = torch.zeros(n) if dry_run else _reference_scores(cfg, prepared, progress)
    self_paced = cur.scoring == "self_paced" and cur.order != "random"
    return CurriculumSampler(
        scores,
        pacing=cur.pacing,
        start=cur.start,
        full_epoch=cur.full_epoch,
        order=cur.order,
        levels=cur.levels,
        step_length=cur.step_length,
        rescore_every=cur.rescore_every if self_paced else None,
        data=prepared.train if self_paced else None,
    )


def check_strategies(cfg: Config, prepared: Any) -> None:
    """What :func:`goodfit.app.build.check_buildable` adds for the strategy sections."""
    es = cfg.early_stopping
    meta = es is not None and es.enabled and es.algorithm != "7.1"
    if meta and (cfg.output_noise or cfg.adversarial or cfg.curriculum):
        raise ConfigError(
            f"early_stopping.algorithm = {es.algorithm!r} retrains with its own loop; "
            "[output_noise], [adversarial] and [curriculum] need algorithm = '7.1'"
        )
    if cfg.curriculum is not None and cfg.train.sampler != "random":
        raise ConfigError(
            "[curriculum] chooses which samples an epoch visits, and so does train.sampler = "
            f"{cfg.train.sampler!r}: use one of them"
        )
    build_sampler(cfg, prepared, dry_run=True)
