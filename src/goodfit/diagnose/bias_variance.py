"""Bias/variance diagnosis from training and validation error (seed 001, "Overfitting Challenge
(What to do?)").

The seed's table, transcribed exactly in :data:`SEED_TABLE`::

    Training Error | Valid Error | Cause            | Solution
    High           | High        | High bias        | - Increase model complexity
                   |             |                  | - Train for more epochs
    Low            | High        | High variance    | - Add more training data (e.g., dataset
                   |             |                  |   augmentation)
                   |             |                  | - Use regularization
                   |             |                  | - User early stopping (train less)
    Low            | Low         | Perfect tradeoff | - You are done!

"High" and "Low" are measured against a *reference error* (the error one can hope for: Bayes or
human error if the user knows it; by default the best variant's validation error):

* avoidable bias ``b = train_error - reference``; training error is **High** when
  ``b > bias_threshold``;
* variance ``v = val_error - train_error`` (the generalization gap); validation error is **High**
  when the training error is High and ``val_error - reference > bias_threshold`` (row 1), or when
  ``v > variance_threshold`` (row 2).

Classification: ``b`` High and ``v`` Low -> "high bias" (row 1); ``b`` Low and ``v`` High ->
"high variance" (row 2); both Low -> "good fit" (row 3, "Perfect tradeoff"). The table has no row
for both High at once; goodfit reports it as "high bias and high variance" and gives the remedies
of both rows, bias first (fix underfitting before regularizing). A training error above the
reference with a validation error that is not (``val_error - reference <= bias_threshold``, seen
when dropout or augmentation are active while the training error is measured) is row 3.

Default thresholds are 0.02 (two percentage points of error rate): about the fold-to-fold
standard deviation of validation accuracy on small image datasets such as digits with 5 folds,
so a smaller gap is not distinguishable from noise. Errors here are error *rates* in [0, 1]
(``1 - accuracy``); for losses or other units pass thresholds in those units.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from goodfit.checks import check_real

__all__ = [
    "DEFAULT_BIAS_THRESHOLD",
    "DEFAULT_VARIANCE_THRESHOLD",
    "DIAGNOSES",
    "SEED_TABLE",
    "TABLE",
    "diagnose",
    "diagnose_variants",
]

DEFAULT_BIAS_THRESHOLD = 0.02
DEFAULT_VARIANCE_THRESHOLD = 0.02

#: seed 001's table, verbatim: (Training Error, Valid Error, Cause, Solution items).
#: ("User early stopping" is the seed's typo for "Use early stopping"; see :data:`DIAGNOSES`.)
SEED_TABLE: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("High", "High", "High bias", ("Increase model complexity", "Train for more epochs")),
    (
        "Low",
        "High",
        "High variance",
        (
            "Add more training data (e.g., dataset augmentation)",
            "Use regularization",
            "User early stopping (train less)",
        ),
    ),
    ("Low", "Low", "Perfect tradeoff", ("You are done!",)),
)

_BIAS_REMEDIES = list(SEED_TABLE[0][3])
_VARIANCE_REMEDIES = [r.replace("User early", "Use early") for r in SEED_TABLE[1][3]]

#: :data:`SEED_TABLE` for display, with the seed's typo "User early stopping" corrected.
TABLE: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    SEED_TABLE[0],
    (*SEED_TABLE[1][:3], tuple(_VARIANCE_REMEDIES)),
    SEED_TABLE[2],
)

#: Diagnosis key -> (label, cause as in the table, remedies in words).
DIAGNOSES: dict[str, tuple[str, str, list[str]]] = {
    "high_bias": ("high bias", SEED_TABLE[0][2], _BIAS_REMEDIES),
    "high_variance": ("high variance", SEED_TABLE[1][2], _VARIANCE_REMEDIES),
    "high_bias_high_variance": (
        "high bias and high variance",
        "High bias and high variance",
        _BIAS_REMEDIES + _VARIANCE_REMEDIES,
    ),
    "good_fit": ("good fit", SEED_TABLE[2][2], list(SEED_TABLE[2][3])),
}


def diagnose(
    train_error: float,
    val_error: float,
    reference_error: float = 0.0,
    *,
    bias_threshold: float = DEFAULT_BIAS_THRESHOLD,
    variance_threshold: float = DEFAULT_VARIANCE_THRESHOLD,
) -> dict[str, Any]:
    """Classify one model by seed 001's bias/variance table (see the module docstring).

    Parameters
    ----------
    train_error, val_error
        Error on the training data (ideally measured in eval mode) and on validation data, in the
        same units (error rate ``1 - accuracy`` by default).
    reference_error
        Achievable error (Bayes/human error, or the best variant's validation error).
    bias_threshold, variance_threshold
        How far above the reference the training error, and above the training error the
        validation error, may be and still count as "Low" (>= 0).

    Returns
    -------
    dict
        ``{"diagnosis": key of DIAGNOSES, "label", "cause", "remedies": [str],
        "train_level": "high"|"low", "val_level": "high"|"low", "train_error", "val_error",
        "reference_error", "bias", "bias_below_reference", "variance", "bias_threshold",
        "variance_threshold"}``. ``bias = max(train_error - reference_error, 0)``: a training
        error below the reference (possible when the reference is an estimate, e.g. the best
        variant's validation error) is not a negative bias; ``bias_below_reference`` says so.

    Examples
    --------
    >>> diagnose(0.15, 0.16, 0.01)["diagnosis"]
    'high_bias'
    >>> diagnose(0.00, 0.10, 0.01)["remedies"][1]
    'Use regularization'
    """
    tr = check_real("train_error", train_error)
    va = check_real("val_error", val_error)
    ref = check_real("reference_error", reference_error)
    for name, thr in (
        ("bias_threshold", bias_threshold),
        ("variance_threshold", variance_threshold),
    ):
        check_real(name, thr, low=0.0)
    below = tr < ref  # the training error is under the reference: no bias measured, not < 0
    bias = max(tr - ref, 0.0)
    variance = va - tr
    high_bias = bias > bias_threshold and va - ref > bias_threshold
    high_variance = variance > variance_threshold
    if high_bias and high_variance:
        key = "high_bias_high_variance"
    elif high_bias:
        key = "high_bias"
    elif high_variance:
        key = "high_variance"
    else:
        key = "good_fit"
    label, cause, remedies = DIAGNOSES[key]
    return {
        "diagnosis": key,
        "label": label,
        "cause": cause,
        "remedies": list(remedies),
        "train_level": "high" if high_bias else "low",
        "val_level": "high" if (high_bias or high_variance) else "low",
        "train_error": tr,
        "val_error": va,
        "reference_error": ref,
        "bias": bias,
        "bias_below_reference": below,
        "variance": variance,
        "bias_threshold": float(bias_threshold),
        "variance_threshold": float(variance_threshold),
    }


def diagnose_variants(
    errors: Mapping[str, tuple[float, float]],
    reference_error: float | None = None,
    **thresholds: float,
) -> dict[str, dict[str, Any]]:
    """:func:`diagnose` every variant of a study.

    ``errors`` maps a variant name to ``(train_error, val_error)`` (e.g. means over folds).
    ``reference_error`` defaults to the best (lowest) validation error among the variants, the
    issue's "default: the best variant's"; keyword thresholds are passed on to :func:`diagnose`.
    """
    if not errors:
        raise ValueError("errors must name at least one variant, got none")
    if reference_error is None:
        reference_error = min(float(v) for _, v in errors.values())
    return {
        name: diagnose(tr, va, reference_error, **thresholds) for name, (tr, va) in errors.items()
    }
