"""All standard callbacks in one namespace: ``gf.callbacks.EarlyStopping(patience=10)``.

Each lives in the module of its concept; this module only gathers them.
"""

from goodfit.diagnose.gradient_flow import GradientFlowCallback
from goodfit.hooks import Callback
from goodfit.regularize.constraints import ConstraintCallback
from goodfit.regularize.penalty_schedule import PenaltyScheduleCallback
from goodfit.regularize.sparsity import SparsityCallback
from goodfit.train.early_stopping import EarlyStopping
from goodfit.train.schedule_callbacks import ReduceLROnPlateau, ScheduleCallback

__all__ = [
    "Callback",
    "ConstraintCallback",
    "EarlyStopping",
    "GradientFlowCallback",
    "PenaltyScheduleCallback",
    "ReduceLROnPlateau",
    "ScheduleCallback",
    "SparsityCallback",
]
