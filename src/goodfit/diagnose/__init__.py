"""goodfit.diagnose: bias/variance, overfitting onset, gradient flow, LR range test, curvature,
loss landscapes (``goodfit.diagnose.landscape``).

``goodfit.diagnose.lr_find(...)`` and ``goodfit.diagnose.curvature_report(...)`` are the entry
points; the submodules hold the details.
"""

from goodfit.diagnose import landscape
from goodfit.diagnose.bias_variance import diagnose, diagnose_variants
from goodfit.diagnose.curvature import CurvatureReport, curvature_report, plot_spectrum
from goodfit.diagnose.gradient_flow import GradientFlowCallback, plot_gradient_flow
from goodfit.diagnose.lr_find import LRFindResult, lr_find
from goodfit.diagnose.overfitting import overfitting_onset

__all__ = [
    "CurvatureReport",
    "GradientFlowCallback",
    "LRFindResult",
    "curvature_report",
    "diagnose",
    "diagnose_variants",
    "landscape",
    "lr_find",
    "overfitting_onset",
    "plot_gradient_flow",
    "plot_spectrum",
]
