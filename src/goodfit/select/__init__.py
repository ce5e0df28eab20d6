"""goodfit.select: statistics across folds, early-stopping meta-algorithms (GBC 7.2, 7.3),
studies."""
