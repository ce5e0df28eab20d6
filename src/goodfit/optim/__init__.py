"""goodfit.optim: gradient transformations, named optimizers, second-order solvers."""

from goodfit.optim.modifiers import *  # noqa: F403
from goodfit.optim.optimizers import *  # noqa: F403
from goodfit.optim.rules import *  # noqa: F403
from goodfit.optim.second_order import *  # noqa: F403
from goodfit.optim.transforms import *  # noqa: F403
