"""Ensembles of networks (seed 001: bagging, boosting, stacking; dropout as an ensemble) and
weight averaging (snapshot ensembles, SWA, EMA).

Members of one architecture train as one vectorized group through
:func:`goodfit.train.fit_many.fit_many`; boosting is sequential by nature (each round's sample
weights depend on the previous round's errors).
"""

from __future__ import annotations

from goodfit.ensemble.aggregate import (
    AGGREGATIONS,
    Ensemble,
    EnsembleModule,
    aggregate,
    disagreement,
    ensemble_metrics,
)
from goodfit.ensemble.averaging import SnapshotEnsemble, WeightAveraging
from goodfit.ensemble.bagging import bagging, bootstrap_indices
from goodfit.ensemble.boosting import adaboost_r2, r2_update, samme, samme_update, weighted_median
from goodfit.ensemble.dropout_ensemble import baldi_identity, dropout_inference_rules
from goodfit.ensemble.stacking import stacking

__all__ = [
    "AGGREGATIONS",
    "Ensemble",
    "EnsembleModule",
    "SnapshotEnsemble",
    "WeightAveraging",
    "adaboost_r2",
    "aggregate",
    "bagging",
    "baldi_identity",
    "bootstrap_indices",
    "disagreement",
    "dropout_inference_rules",
    "ensemble_metrics",
    "r2_update",
    "samme",
    "samme_update",
    "stacking",
    "weighted_median",
]
