"""The built-in study that ``goodfit study`` runs without a config: digits, a small CNN, six
regularization strategies with early stopping, compared over five repetitions of a stratified
2-fold split (5x2) by the combined 5x2cv F-test."""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_STUDY"]

#: The built-in study: digits, a small CNN, six strategies with early stopping, 5x2 splits.
DEFAULT_STUDY: dict[str, Any] = {
    "data": {"name": "digits", "val_fraction": 0.15},
    "model": {"kind": "cnn2d", "channels": [16, 32], "hidden": [64], "kernel_size": 3},
    "optimizer": {"name": "adam", "lr": 3e-3},
    "train": {"epochs": 20, "batch_size": 64, "seed": 0},
    "early_stopping": {"monitor": "val_loss", "patience": 4},
    "study": {
        "title": "digits: which regularization makes a small CNN fit well?",
        "splits": {"kind": "5x2"},
        "metric": "val_accuracy",
        "baseline": "baseline",
        "variants": [
            {"name": "baseline", "description": "no regularization (early stopping only)"},
            {
                "name": "l2",
                "description": "L2 weight penalty",
                "set": {"regularize.l2": 1e-3},
            },
            {
                "name": "dropout",
                "description": "dropout p=0.3 after every hidden layer",
                "set": {"model.dropout": {"kind": "standard", "p": 0.3}},
            },
            {
                "name": "batchnorm",
                "description": "batch normalization before every activation",
                "set": {"model.norm": "batch"},
            },
            {
                "name": "augment",
                "description": "random affine + erasing augmentation",
                "set": {
                    "augment.ops": [
                        {"name": "affine", "degrees": 10.0, "translate": 0.1, "scale": [0.9, 1.1]},
                    ]
                },
            },
            {
                "name": "combined",
                "description": "L2 + dropout + batch norm + augmentation",
                "set": {
                    "regularize.l2": 1e-3,
                    "model.dropout": {"kind": "standard", "p": 0.3},
                    "model.norm": "batch",
                    "augment.ops": [
                        {"name": "affine", "degrees": 10.0, "translate": 0.1, "scale": [0.9, 1.1]},
                    ],
                },
            },
        ],
    },
}
