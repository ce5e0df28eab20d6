"""goodfit.diagnose: bias/variance, overfitting onset, gradient flow, LR range test, curvature."""
