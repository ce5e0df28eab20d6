"""Second-order solvers: Newton, Gauss-Newton, Levenberg-Marquardt and Hessian-free Newton."""

from goodfit.optim.second_order.common import *  # noqa: F403
from goodfit.optim.second_order.common import __all__  # noqa: F401
