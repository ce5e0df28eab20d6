"""Build a report.html from a synthetic study ``results`` dict (no training), for checking the
report's rendering: ``python scripts/screenshot_report.py OUT_DIR`` writes OUT_DIR/results.json
and OUT_DIR/report.html, then ``scripts/screenshot_report.sh OUT_DIR/report.html`` renders it.

The numbers are made up (a U-shaped validation curve for the unregularized baseline, flatter
curves for regularized variants) but have the shape and keys of a real study.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np


def _history(rng, epochs, train_floor, val_floor, overfit, acc_gap):
    hist = []
    for e in range(1, epochs + 1):
        train = train_floor + 2.0 * math.exp(-e / 4)
        val = val_floor + 2.0 * math.exp(-e / 4.5) + overfit * max(0, e - 12) ** 1.5 / 40
        val += rng.normal(0, 0.01)
        hist.append(
            {
                "epoch": e,
                "step": e * 45,
                "train_loss": train,
                "val_loss": val,
                "train_accuracy": min(1.0, 1 - train / 2.3),
                "val_accuracy": min(1.0, 1 - val / 2.3 - acc_gap),
                "lr": 1e-3 * 0.5 * (1 + math.cos(math.pi * e / epochs)),
            }
        )
    return hist


def synthetic_results(n_folds: int = 5, seed: int = 0, *, gradient_flow: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    spec = {
        # name: (mean val acc, train acc, overfit strength, overrides)
        "baseline": (0.955, 1.000, 1.0, {}),
        "l2": (0.968, 0.998, 0.3, {"regularize.l2": 1e-4}),
        "dropout": (0.972, 0.990, 0.1, {"model.dropout": 0.3}),
        "batch_norm": (0.963, 1.000, 0.6, {"model.norm": "batch"}),
        "augment": (0.975, 0.985, 0.05, {"augment.kind": "shift"}),
        "all <combined>": (0.981, 0.988, 0.0, {"regularize.l2": 1e-4, "model.dropout": 0.3}),
    }
    variants = {}
    for name, (val_acc, train_acc, overfit, overrides) in spec.items():
        folds = []
        for k in range(n_folds):
            epochs = 30 - int(rng.integers(0, 6))
            hist = _history(rng, epochs, 0.01, 0.08, overfit, 0.0)
            fold = {
                "fold": k,
                "scores": {
                    "val_accuracy": float(val_acc + rng.normal(0, 0.006)),
                    "val_loss": float(0.1 + (1 - val_acc) * 2 + rng.normal(0, 0.01)),
                    "train_accuracy": float(min(1.0, train_acc + rng.normal(0, 0.001))),
                    "train_loss": float(0.01 + (1 - train_acc) * 2),
                    "test_accuracy": float(val_acc - 0.004 + rng.normal(0, 0.006)),
                },
                "history": hist,
                "best_epoch": int(np.argmin([h["val_loss"] for h in hist]) + 1),
                "wall_seconds": float(3 + rng.random()),
            }
            if gradient_flow and k == 0:
                steps = list(range(0, epochs * 45, 5))
                layers = ["conv1", "conv2", "fc1", "fc2"]
                norms = [
                    [
                        float(10 ** (-1 - 0.4 * i) * (1 + s / 400) ** -0.5 * rng.lognormal(0, 0.2))
                        for i in range(len(layers))
                    ]
                    for s in steps
                ]
                flags = []
                if name == "baseline":
                    norms[40][1] *= 300.0  # a cliff
                    flags.append(
                        {
                            "epoch": 5,
                            "step": steps[40],
                            "layer": "conv2",
                            "kind": "exploding",
                            "value": norms[40][1],
                        }
                    )
                fold["gradient_flow"] = {
                    "layers": layers,
                    "steps": steps,
                    "norms": norms,
                    "flags": flags,
                    "every": 5,
                }
            folds.append(fold)
        variants[name] = {"overrides": overrides, "folds": folds}
    total = 30 * 45
    return {
        "schema_version": 1,
        "title": "goodfit study: digits CNN <synthetic> & friends",
        "created": "2025-01-01T12:00:00",
        "dataset": {"name": "digits", "n_train": 1437, "n_test": 360, "n_classes": 10},
        "metric": "val_accuracy",
        "higher_is_better": True,
        "baseline": "baseline",
        "reference_error": None,
        "splits": {"kind": "stratified_kfold", "params": {"k": n_folds}, "seed": seed},
        "variants": variants,
        "schedule": {
            "name": "warmup_cosine(peak=1e-3, warmup_steps=100)",
            "steps": list(range(0, total, 10)),
            "lr": [
                1e-3 * min(1.0, s / 100) * 0.5 * (1 + math.cos(math.pi * s / total))
                for s in range(0, total, 10)
            ],
        },
        "config": {
            "data": {"name": "digits"},
            "model": {"kind": "cnn", "channels": [16, 32]},
            "optimizer": {"name": "adam", "lr": 1e-3},
            "note": "<script>alert('x')</script>",
        },
        "environment": {
            "python": "3.11.2",
            "torch": "2.13.0+cpu",
            "goodfit": "0.1.0",
            "device": "cpu (2 threads)",
            "platform": "Linux x86_64",
            "wall_seconds": 142.7,
        },
    }


def main(argv: list[str]) -> int:
    from goodfit.report.html import write_report
    from goodfit.select.analysis import analyze_results

    if len(argv) != 1:
        print("usage: python scripts/screenshot_report.py OUT_DIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    results = synthetic_results()
    results["analysis"] = analyze_results(results)
    (out / "results.json").write_text(json.dumps(results, indent=1, allow_nan=False))
    path = write_report(results, out / "report.html")
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
