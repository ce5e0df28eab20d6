"""goodfit.nn: the dropout and normalization families as modules, and the model builders.

Where torch has a layer (BatchNorm, LayerNorm, GroupNorm, InstanceNorm, Dropout2d, AlphaDropout,
spectral norm) goodfit uses it; these modules add what torch lacks.
"""

from goodfit.nn import dropout, functional, models, norm, resnet
from goodfit.nn.dropout import *  # noqa: F403
from goodfit.nn.models import cnn1d, cnn2d, mlp
from goodfit.nn.norm import *  # noqa: F403

__all__ = [
    "cnn1d",
    "cnn2d",
    "dropout",
    "functional",
    "mlp",
    "models",
    "norm",
    "resnet",
    *dropout.__all__,
    *norm.__all__,
]
