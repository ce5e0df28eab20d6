"""The typed sections of a goodfit config: one pydantic model per TOML table.

Every user error in a config is found here (unknown keys, wrong types, out-of-range values)
or, for a section whose extra keys are a factory's keyword arguments (``[optimizer]``,
``[schedule]``, an augmentation op, a constraint), when :mod:`goodfit.app.build` calls the
factory with them; both say which key and what is allowed.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "AugmentConfig",
    "AugmentOpConfig",
    "CheckpointConfig",
    "ConstraintConfig",
    "DataConfig",
    "EarlyStoppingConfig",
    "ElasticConfig",
    "LayerRuleConfig",
    "ModelConfig",
    "OptimizerConfig",
    "PriorConfig",
    "RegularizeConfig",
    "ScheduleConfig",
    "SearchConfig",
    "ShareConfig",
    "StudyConfig",
    "TrainConfig",
    "TyingConfig",
    "Variant",
]

#: A finite number >= 0 (an int is accepted, a bool or a string is not).
NonNegative = Annotated[float, Field(ge=0.0, strict=True, allow_inf_nan=False)]
Flag = Annotated[bool, Field(strict=True)]
#: Torch's seeds are int64 and scikit-learn's random states uint32: a seed fits both.
MAX_SEED = 2**32 - 1


def available_devices() -> list[str]:
    """The devices this torch build can train on: ``cpu``, ``cuda``/``cuda:<i>``, ``mps``."""
    import torch

    out = ["cpu"]
    if torch.cuda.is_available():
        out += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return out


def check_device(name: str) -> str:
    """``name`` if this build has that device, else ``ValueError`` listing the ones it has."""
    allowed = available_devices()
    if name not in allowed:
        raise ValueError(
            f"device {name!r} is not available in this torch build; allowed: {', '.join(allowed)}"
        )
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class _Open(BaseModel):
    """A section whose extra keys are keyword arguments of a named factory."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    def kwargs(self) -> dict[str, Any]:
        """The extra keys: the factory's keyword arguments."""
        return dict(self.model_extra or {})


ImageSize = Annotated[list[Annotated[int, Field(ge=1, le=4096)]], Field(min_length=2, max_length=2)]


class DataConfig(_Strict):
    """``[data]``: a built-in name or a .npz/.csv path, the validation holdout, standardization
    (fitted on the training part only), the label column of a .csv, dataset options."""

    name: str = "digits"
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    standardize: Flag = True
    label: str | None = None
    test_fraction: float | None = Field(None, gt=0.0, lt=1.0)
    options: dict[str, Any] = Field(default_factory=dict)
    #: an image folder's size ``[height, width]`` (or one int for square) and colour
    image_size: Annotated[int, Field(ge=1, le=4096)] | ImageSize | None = None
    color: Literal["gray", "rgb"] | None = None
    #: Share of the training part's labels replaced by another class (classification only;
    #: :mod:`goodfit.data.label_noise`), and the number of training rows kept (a nested subset).
    label_noise: float = Field(0.0, ge=0.0, lt=1.0, allow_inf_nan=False)
    train_size: int | None = Field(None, ge=1)


class InitConfig(_Strict):
    """``init = {scheme = "glorot_uniform", gain = "relu"}``: a :mod:`goodfit.init` scheme,
    exactly its formula unless ``gain`` (a number, or an activation whose gain
    ``torch.nn.init.calculate_gain`` gives) scales it; ``bias`` as :func:`goodfit.init.apply`."""

    scheme: str
    gain: float | str | None = None
    bias: str | float | None = "zeros"


class ModelConfig(_Strict):
    """``[model]``: the builder (:mod:`goodfit.nn.models`) and its options, and ``init``
    (a :mod:`goodfit.init` scheme name or an :class:`InitConfig` table)."""

    kind: Literal["mlp", "cnn1d", "cnn2d", "resnet", "auto"] = "auto"
    widths: list[Annotated[int, Field(ge=1, le=2**20)]] = Field(default_factory=lambda: [128, 128])
    channels: list[Annotated[int, Field(ge=1, le=2**16)]] = Field(default_factory=lambda: [32, 64])
    hidden: list[Annotated[int, Field(ge=1, le=2**20)]] = Field(default_factory=lambda: [128])
    kernel_size: int | None = Field(None, ge=1)
    activation: str = "relu"
    dropout: dict[str, Any] | Annotated[float, Field(ge=0.0, lt=1.0)] | None = None
    norm: str | dict[str, Any] | None = None
    pool: str | dict[str, Any] = "max"
    pool_every: int = Field(1, ge=1)
    weight_standardization: Flag = False
    spectral_norm: Flag = False
    init: str | InitConfig | None = None
    #: Fine-tuning (:mod:`goodfit.app.finetune`): a finished run's folder whose ``model.pt``
    #: initializes this model; a head of another shape is kept new with ``init_skip_mismatched``.
    init_from: str | None = None
    init_skip_mismatched: Flag = False
    #: Multitask data: one head per task on the shared trunk, task -> hidden widths of its head
    #: (``[]``: a linear head; tasks not listed get one); :mod:`goodfit.nn.multihead`.
    heads: dict[str, list[Annotated[int, Field(ge=1, le=2**20)]]] = Field(default_factory=dict)
    #: ``resnet`` (:mod:`goodfit.nn.resnet`): basic blocks per stage, the first stage's
    #: channels, the number of stages, and ``skip = false`` for the same net without shortcuts.
    depth: int = Field(3, ge=1, le=1000)
    width: int = Field(16, ge=1, le=2**16)
    stages: int = Field(3, ge=1, le=16)
    skip: Flag = True
    #: How conv feature maps reach the head (cnn1d/cnn2d/resnet): ``"flatten"`` or ``"gap"``
    #: (global average pooling); unset: ``flatten`` for the CNNs, ``gap`` for resnet.
    head: Literal["flatten", "gap"] | None = None


class OptimizerConfig(_Open):
    """``[optimizer]``: ``name`` (goodfit, ``torch.<Class>`` or a second-order solver) with its
    keyword arguments, or an explicit ``chain`` of transforms."""

    name: str = "adam"
    lr: float | None = Field(None, ge=0.0, allow_inf_nan=False)
    chain: list[dict[str, Any]] | None = None
    no_decay_for_bias_and_norm: Flag = True


class ScheduleConfig(_Open):
    """``[schedule]``: a :mod:`goodfit.schedules` name (or ``reduce_on_plateau``) with its
    parameters, stepped per ``step`` or per ``epoch``."""

    name: str
    interval: Literal["step", "epoch"] = "step"

    @model_validator(mode="after")
    def _plateau_acts_per_epoch(self) -> ScheduleConfig:
        """reduce_on_plateau acts after each validation: its interval reads "epoch" when left out,
        so a run's saved config.toml (which writes every key) loads again for ``--resume``."""
        if self.name == "reduce_on_plateau" and "interval" not in self.model_fields_set:
            self.interval = "epoch"
        return self


class ElasticConfig(_Strict):
    """``elastic``: :func:`goodfit.regularize.elastic_net` in seed 000's (``l1``, ``l2``),
    seed 001's (``lam``, ``alpha``) or scikit-learn's (``lam``, ``l1_ratio``) form."""

    l1: NonNegative | None = None
    l2: NonNegative | None = None
    lam: NonNegative | None = None
    alpha: float | None = None
    l1_ratio: float | None = None


class LayerRuleConfig(_Strict):
    """One ``per_layer`` rule: seed 000's :math:`\\Lambda_j\\|W_j\\|_{p_j}^{p_j}` on the
    parameters matching ``pattern`` (module-name glob) or ``type`` (layer class name)."""

    pattern: str | None = None
    type: str | None = None
    coef: NonNegative
    p: float = 2.0


class PriorConfig(_Strict):
    """``prior``: the MAP-equivalent term of a Gaussian (L2) or Laplace (L1) weight prior."""

    kind: Literal["gaussian", "laplace"]
    scale: float = Field(gt=0.0, allow_inf_nan=False)
    n_data: int | None = Field(None, ge=1)


class TyingConfig(_Strict):
    """One ``tying`` entry: :func:`goodfit.regularize.tying_penalty` between submodules."""

    a: str
    b: str
    coef: NonNegative = 1.0


class ConstraintConfig(_Open):
    """One ``constraints`` entry: ``kind`` and that constraint's keyword arguments plus the
    selection keys ``pattern``, ``type``, ``exclude``, ``include_bias_and_norm``."""

    kind: Literal["max_norm", "unit_norm", "non_neg", "norm_ball"]


class ShareConfig(_Strict):
    """One ``share`` entry: :func:`goodfit.regularize.share_parameters`, submodule ``b`` uses
    submodule ``a``'s parameters (GBC 7.9 parameter sharing)."""

    a: str
    b: str


class RegularizeConfig(_Strict):
    """``[regularize]``: weight penalties (``l1``, ``l2`` = GBC 7.2's :math:`\\frac{\\alpha}{2}
    \\|w\\|^2`, ``elastic``, ``per_layer``, ``prior``, ``tying``), which parameters they cover
    (``exclude``, ``include_bias_and_norm``), weight ``constraints`` and parameter ``share``."""

    l1: NonNegative | None = None
    l2: NonNegative | None = None
    l2_scale_by_batch: Flag = False
    elastic: ElasticConfig | None = None
    per_layer: list[LayerRuleConfig] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    include_bias_and_norm: Flag = False
    prior: PriorConfig | None = None
    tying: list[TyingConfig] = Field(default_factory=list)
    constraints: list[ConstraintConfig] = Field(default_factory=list)
    share: list[ShareConfig] = Field(default_factory=list)


class AugmentOpConfig(_Open):
    """One augmentation op: ``name`` (a key of :data:`goodfit.data.augment.AUGMENTATIONS`)
    and the op's keyword hyperparameters."""

    name: str


class AugmentConfig(_Strict):
    """``[augment]``: the ops applied in order to every training batch."""

    ops: list[AugmentOpConfig] = Field(default_factory=list)


class TrainConfig(_Strict):
    """``[train]``: epochs, batch size, the one ``seed``, device, validation interval, threads,
    synchronized BatchNorm under torchrun (``goodfit.train.distributed``)."""

    epochs: int = Field(30, ge=1, le=10**7)
    batch_size: int = Field(32, ge=1)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    device: str = "cpu"
    val_every: int | None = Field(None, ge=1)
    deterministic: Flag = True
    threads: int | None = Field(None, ge=1, le=4096)
    #: Fine-tuning (:mod:`goodfit.app.finetune`): parameter-name globs that do not train, and
    #: per-glob learning-rate multipliers (param groups).
    freeze: list[str] = Field(default_factory=list)
    lr_multipliers: dict[str, Annotated[float, Field(gt=0.0, allow_inf_nan=False)]] = Field(
        default_factory=dict
    )
    sync_batchnorm: Flag = False  # under torchrun: BatchNorm statistics over the global batch
    #: per-class loss weights (scikit-learn's compute_class_weight): "balanced" or {class: w}
    class_weights: Literal["balanced"] | dict[str, Annotated[float, Field(gt=0.0)]] | None = None
    #: which samples an epoch visits: a fresh permutation, or a class-balanced draw
    sampler: Literal["random", "balanced"] = "random"

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        return check_device(v)


class EarlyStoppingConfig(_Strict):
    """``[early_stopping]``: GBC Algorithm 7.1's monitor/patience, and ``algorithm`` 7.2 or 7.3
    (seed 001) to use the validation part for training afterwards."""

    enabled: Flag = True
    monitor: str = "val_loss"
    patience: int = Field(10, ge=1)
    min_delta: float = Field(0.0, ge=0.0)
    mode: Literal["min", "max", "auto"] = "auto"
    restore_best: Flag = True
    algorithm: Literal["7.1", "7.2", "7.3"] = "7.1"


class CheckpointConfig(_Strict):
    """``[checkpoint]``: atomic checkpoints every ``every`` epochs (exact resume)."""

    enabled: Flag = True
    every: int = Field(1, ge=1)


class Variant(_Strict):
    """One strategy of a study: a name (a folder name), a description, dotted overrides."""

    name: str
    description: str = ""
    set: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", v):
            raise ValueError(
                f"variant names must be letters, digits, '_', '-', '.', '+' (a folder name), "
                f"got {v!r}"
            )
        return v


class StudyConfig(_Strict):
    """``[study]``: splits, ranking metric, baseline, the comparison test and its level, the
    region of practical equivalence, diagnoses, workers, and the variants."""

    title: str = "goodfit study"
    splits: dict[str, Any] = Field(default_factory=lambda: {"kind": "5x2"})
    metric: str | None = None
    baseline: str | None = None
    #: ``None``: the most powerful calibrated test for the splits (5x2cv_f on "5x2", else
    #: corrected_t; :func:`goodfit.select.compare.default_test`).
    test: Literal["corrected_t", "5x2cv_t", "5x2cv_f", "paired_t"] | None = None
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    rope: float = Field(0.01, ge=0.0, allow_inf_nan=False)
    reference_error: float | None = Field(None, ge=0.0, le=1.0)
    gradient_flow: Flag = True
    lr_find: Flag = False
    curvature: Flag = False
    #: A 1-D filter-normalized random-direction loss landscape of each variant's first fold
    #: (:mod:`goodfit.diagnose.landscape`), plotted in the report.
    landscape: Flag = False
    workers: int = Field(1, ge=1)
    backend: Literal["process", "ray"] = "process"  # ray: app/backend_ray.py
    address: str | None = None  # a Ray cluster's address (else a local instance)
    #: Train each variant's folds as vectorized groups, one per fold size (app.study_vectorized).
    vectorize: Flag = False
    variants: list[Variant] = Field(min_length=1)

    def diagnostics(self) -> dict[str, bool]:
        """Which per-run diagnoses to record (LR range test and curvature: first fold only)."""
        return {
            "gradient_flow": self.gradient_flow,
            "lr_find": self.lr_find,
            "curvature": self.curvature,
            "landscape": self.landscape,
        }


class SearchConfig(_Strict):
    """``[search]``: the metric, the trial budget, the splits each trial is cross-validated on,
    Optuna's sampler and pruner (with their keyword options), the search space (dotted config
    key -> distribution, see :mod:`goodfit.app.search_space`), trials to run first, workers."""

    metric: str | None = None
    trials: int = Field(20, ge=1, le=10**6)
    splits: dict[str, Any] = Field(default_factory=lambda: {"kind": "stratified_kfold", "k": 3})
    sampler: Literal["tpe", "random", "grid", "cmaes"] = "tpe"
    sampler_options: dict[str, Any] = Field(default_factory=dict)
    pruner: Literal["median", "hyperband", "none"] = "median"
    pruner_options: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, Any] = Field(min_length=1)
    enqueue: list[dict[str, Any]] = Field(default_factory=list)
    workers: int = Field(1, ge=1, le=1024)
