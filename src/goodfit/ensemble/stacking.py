"""Stacking (seed 001: "Train K models ..., then train a combiner/aggregator classifier to
combine K result, as best as possible"; Wolpert 1992): the combiner is fitted on **out-of-fold**
predictions, so it never sees a base model's output on a row that model trained on.

The training rows are split into ``folds`` (stratified for classification); base member ``m`` is
trained once per fold on the other folds, and its predictions on the held-out fold are that
fold's meta-features (class probabilities, or the regression output). A scikit-learn
meta-learner — ``LogisticRegression`` (classification) or ``RidgeCV`` (regression) — is fitted on
them. On new data a member's meta-feature is the mean of its fold models' predictions (the
"cross-validated committee" form; no refit on all rows). All ``members x folds`` networks are
one ``fit_many`` group.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import KFold, StratifiedKFold
from torch import Tensor, nn

from goodfit.ensemble.aggregate import Ensemble
from goodfit.train.fit_many import fit_many

__all__ = ["META_LEARNERS", "fold_indices", "stacking"]

META_LEARNERS = ("logistic", "ridge")


def fold_indices(y: Tensor, folds: int, seed: int, classification: bool) -> list[Tensor]:
    """The held-out rows of each fold (a partition of ``range(len(y))``)."""
    splitter = (StratifiedKFold if classification else KFold)(
        folds, shuffle=True, random_state=seed
    )
    labels = y.cpu().numpy() if classification else np.zeros(len(y))
    return [torch.as_tensor(test) for _, test in splitter.split(np.zeros(len(y)), labels)]


def _features(out: Tensor, classification: bool) -> Tensor:
    return out.softmax(dim=-1) if classification else out.reshape(out.shape[0], out.shape[1], -1)


def stacking(
    make_model: Callable[[int], nn.Module],
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor] | None = None,
    *,
    members: int,
    optimizer: Callable[[nn.Module], torch.optim.Optimizer],
    epochs: int,
    folds: int = 5,
    meta: str | None = None,
    seed: int = 0,
    **fit_kwargs: Any,
) -> Ensemble:
    """Stack ``members`` base networks ``make_model(m)`` under a scikit-learn meta-learner
    (module docstring). ``info["oof"]`` holds the meta-features, ``info["held_out"]`` the fold
    of every row and ``info["trained_on"]`` each network's training rows."""
    X, y = train
    classification = not torch.is_floating_point(y)
    meta = meta or ("logistic" if classification else "ridge")
    if meta not in META_LEARNERS:
        raise ValueError(f"meta must be one of {META_LEARNERS}, got {meta!r}")
    if (meta == "logistic") != classification:
        raise ValueError(
            f"meta = {meta!r} does not fit this task (logistic: classification, ridge: regression)"
        )
    if not isinstance(members, int) or members < 2:
        raise ValueError(f"stacking needs members >= 2, got {members!r}")
    if not isinstance(folds, int) or folds < 2:
        raise ValueError(f"stacking needs folds >= 2, got {folds!r}")
    held = fold_indices(y, folds, seed, classification)
    everything = torch.arange(len(y))
    trained_on = [everything[~torch.isin(everything, h)] for h in held]
    models = [make_model(m) for m in range(members) for _ in range(folds)]
    pairs = [(X[trained_on[f]], y[trained_on[f]]) for _ in range(members) for f in range(folds)]
    seeds = [seed + m * folds + f for m in range(members) for f in range(folds)]
    result = fit_many(
        models, pairs, val, optimizer=optimizer, epochs=epochs, seeds=seeds, **fit_kwargs
    )
    ens = Ensemble(result.models, task="classification" if classification else "regression")
    out = ens.member_outputs(X)  # (members * folds, N, ...)
    oof = [torch.empty(0)] * members
    fold_of = torch.empty(len(y), dtype=torch.long)
    for f, h in enumerate(held):
        fold_of[h] = f
    for m in range(members):
        feats = _features(out[m * folds : (m + 1) * folds], classification)  # (folds, N, d)
        oof[m] = feats[fold_of, torch.arange(len(y))]
    Z = torch.cat(oof, dim=1).double().cpu().numpy()
    learner = LogisticRegression(max_iter=2000) if classification else RidgeCV()
    learner.fit(Z, y.cpu().numpy().reshape(len(y), -1)[:, 0] if classification else y.cpu().numpy())

    def combine(outputs: Tensor) -> Tensor:
        feats = _features(outputs, classification).reshape(members, folds, outputs.shape[1], -1)
        z = feats.mean(1).permute(1, 0, 2).reshape(outputs.shape[1], -1).double().cpu().numpy()
        if classification:
            return torch.as_tensor(learner.predict_proba(z))
        return torch.as_tensor(learner.predict(z)).reshape(outputs.shape[1], -1)

    info = {
        "oof": Z,
        "held_out": fold_of,
        "trained_on": trained_on,
        "meta": learner,
        "vectorized": result.vectorized,
        "notice": result.notice,
    }
    return Ensemble(result.models, task=ens.task, combine=combine, info=info)
