"""goodfit.regularize: weight penalties, constraints, tying/sharing and sparsity reports."""

from goodfit.regularize.constraints import (
    Constraint,
    ConstraintCallback,
    MaxNorm,
    NonNeg,
    NormBall,
    UnitNorm,
    project_l1_ball,
)
from goodfit.regularize.penalties import (
    BasePenalty,
    LayerRule,
    Penalty,
    PenaltySum,
    Term,
    elastic_net,
    l1,
    l2,
    per_layer,
)
from goodfit.regularize.penalty_schedule import PenaltyScheduleCallback
from goodfit.regularize.priors import from_prior, prior_coefficient
from goodfit.regularize.selection import is_bias_or_norm, select_parameters
from goodfit.regularize.sparsity import SparsityCallback, sparsity_report
from goodfit.regularize.tying import TyingPenalty, share_parameters, tying_penalty

__all__ = [
    "BasePenalty",
    "Constraint",
    "ConstraintCallback",
    "LayerRule",
    "MaxNorm",
    "NonNeg",
    "NormBall",
    "Penalty",
    "PenaltyScheduleCallback",
    "PenaltySum",
    "SparsityCallback",
    "Term",
    "TyingPenalty",
    "UnitNorm",
    "elastic_net",
    "from_prior",
    "is_bias_or_norm",
    "l1",
    "l2",
    "per_layer",
    "prior_coefficient",
    "project_l1_ball",
    "select_parameters",
    "share_parameters",
    "sparsity_report",
    "tying_penalty",
]
