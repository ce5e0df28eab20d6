"""The typed sections of the training strategies: ``[output_noise]``, ``[weight_noise]``,
``[adversarial]`` and ``[curriculum]`` (pretraining / fine-tuning keys live in ``[model]`` and
``[train]``: ``model.init_from``, ``train.freeze``, ``train.lr_multipliers``).

Built into a run's parts by :mod:`goodfit.app.strategies`; every range is checked here, so a bad
value names its dotted key before anything is trained.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from goodfit.app.sections import _Strict

__all__ = [
    "AdversarialConfig",
    "CurriculumConfig",
    "MultiTaskConfig",
    "OutputNoiseConfig",
    "WeightNoiseConfig",
]

Probability = Annotated[float, Field(ge=0.0, le=1.0, strict=True, allow_inf_nan=False)]


class OutputNoiseConfig(_Strict):
    """``[output_noise]`` (seed 001, noise on outputs): ``label_smoothing`` (torch's
    ``cross_entropy(label_smoothing=...)``, training only), ``soft_target`` (mix each one-hot
    target with a random ``Dirichlet(1)`` distribution, weight ``soft_target``), ``target_std``
    (Gaussian noise on regression targets, in the targets' units)."""

    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0, allow_inf_nan=False)
    soft_target: Probability = 0.0
    target_std: float = Field(0.0, ge=0.0, allow_inf_nan=False)


class WeightNoiseConfig(_Strict):
    """``[weight_noise]`` (Graves 2011; seed 000's shuffled weights): ``kind``, its ``sigma``
    (std, or the shuffled weights' coefficient) and the layer ``types`` noised."""

    kind: Literal["additive", "multiplicative", "shuffled"] = "additive"
    sigma: float = Field(gt=0.0, allow_inf_nan=False)
    types: list[str] = Field(default_factory=lambda: ["Linear", "Conv1d", "Conv2d"], min_length=1)


class AdversarialConfig(_Strict):
    """``[adversarial]``: training on FGSM or PGD examples (``method = "none"``: clean training,
    robust accuracy still measured), the budget ``eps`` in the data's own units (before
    standardization; ``clip`` = the data range ``[lo, hi]``, e.g. ``[0, 1]`` for the built-in
    images), PGD's ``steps`` and ``alpha`` (default ``2.5 eps / steps``), the share ``ratio`` of
    each batch replaced, and which attacks the summary's robust accuracy uses (``evaluate``)."""

    method: Literal["none", "fgsm", "pgd"] = "fgsm"
    eps: float = Field(ge=0.0, allow_inf_nan=False)
    steps: int = Field(10, ge=1, le=1000)
    alpha: float | None = Field(None, gt=0.0, allow_inf_nan=False)
    ratio: Probability = 0.5
    random_start: Annotated[bool, Field(strict=True)] = True
    clip: tuple[float, float] | None = None
    evaluate: list[Literal["fgsm", "pgd"]] = Field(default_factory=lambda: ["fgsm", "pgd"])

    @model_validator(mode="after")
    def _clip_order(self) -> AdversarialConfig:
        if self.clip is not None and not self.clip[0] < self.clip[1]:
            raise ValueError(
                f"adversarial.clip must be [low, high] with low < high, got {self.clip}"
            )
        return self


class MultiTaskConfig(_Strict):
    """``[multitask]`` (multitask data, :mod:`goodfit.data.multitask`): per-task loss
    ``weights`` (task name -> weight >= 0, default 1; 0 trains the shared trunk for the other
    tasks only: the single-task control) or ``weighting = "uncertainty"`` (Kendall, Gal &
    Cipolla 2018, learned). The heads are ``[model] heads``."""

    weights: dict[str, Annotated[float, Field(ge=0.0, allow_inf_nan=False)]] = Field(
        default_factory=dict
    )
    weighting: Literal["fixed", "uncertainty"] = "fixed"


class CurriculumConfig(_Strict):
    """``[curriculum]``: difficulty ``scoring`` (``reference``: per-sample loss of a model of
    this config trained ``reference_epochs`` first; ``self_paced``: the current model's loss,
    rescored every ``rescore_every`` epochs; ``given``: a ``.npy`` of ``scores``, one per row of
    the dataset's training array), the ``order`` (``curriculum`` easy first, ``anti``,
    ``random``) and the pacing from the fraction ``start`` to the whole set at ``full_epoch``."""

    scoring: Literal["reference", "self_paced", "given"] = "reference"
    order: Literal["curriculum", "anti", "random"] = "curriculum"
    pacing: Literal["linear", "step", "exponential"] = "linear"
    start: float = Field(0.2, gt=0.0, le=1.0, allow_inf_nan=False)
    full_epoch: int = Field(10, ge=1)
    levels: int = Field(1, ge=1)
    step_length: int = Field(1, ge=1)
    rescore_every: int = Field(1, ge=1)
    reference_epochs: int = Field(5, ge=1, le=10**5)
    scores: str | None = None

    @model_validator(mode="after")
    def _scores_given(self) -> CurriculumConfig:
        if self.scoring == "given" and self.scores is None:
            raise ValueError("curriculum.scoring = 'given' needs curriculum.scores = 'FILE.npy'")
        if self.scoring != "given" and self.scores is not None:
            raise ValueError("curriculum.scores is only read with curriculum.scoring = 'given'")
        if (
            self.pacing == "exponential"
            and self.start < 1.0
            and self.full_epoch - 1 < self.step_length
        ):
            raise ValueError(
                "curriculum: exponential pacing needs full_epoch - 1 >= step_length to reach the "
                f"whole set (got full_epoch = {self.full_epoch}, step_length = {self.step_length})"
            )
        return self
