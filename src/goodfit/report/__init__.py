"""goodfit.report: plots (matplotlib) and the self-contained HTML study report."""
