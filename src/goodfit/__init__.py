"""goodfit: train neural networks well.

Composable initialization, first- and second-order optimization, learning-rate schedules and
regularization for PyTorch, and ``goodfit study``, which answers "which of these makes my model
fit well, and why?" with cross-validated numbers, a bias/variance diagnosis and a report.
"""

from goodfit._version import __version__

__all__ = ["__version__"]
