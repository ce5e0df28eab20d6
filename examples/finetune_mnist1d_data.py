"""Two tasks from MNIST-1D for examples/finetune_mnist1d.toml (run from the repository root):

- ``runs/mnist1d_tasks/pretrain.npz``: the signals of digits 0-5 (all of MNIST-1D's training
  signals of those classes, ~2400; test: its test signals of 0-5), 6 classes;
- ``runs/mnist1d_tasks/target_small.npz``: digits 6-9 relabelled 0-3, a small labelled subset
  of ``PER_CLASS`` training signals per class (drawn with seed 0); test: all of MNIST-1D's test
  signals of 6-9 (~400), 4 classes.

    python examples/finetune_mnist1d_data.py
"""

from pathlib import Path

import numpy as np

from goodfit.data import load_dataset

PER_CLASS = 25
OUT = Path("runs/mnist1d_tasks")


def main() -> None:
    ds = load_dataset("mnist1d", standardize=False)
    Xtr, ytr = ds.X_train.numpy(), ds.y_train.numpy()
    Xte, yte = ds.X_test.numpy(), ds.y_test.numpy()
    OUT.mkdir(parents=True, exist_ok=True)
    a, at = ytr <= 5, yte <= 5
    np.savez(OUT / "pretrain.npz", X=Xtr[a], y=ytr[a], X_test=Xte[at], y_test=yte[at])
    rng = np.random.default_rng(0)
    rows = np.concatenate(
        [rng.choice(np.flatnonzero(ytr == c), PER_CLASS, replace=False) for c in range(6, 10)]
    )
    bt = yte >= 6
    np.savez(
        OUT / "target_small.npz",
        X=Xtr[rows], y=ytr[rows] - 6, X_test=Xte[bt], y_test=yte[bt] - 6,
    )  # fmt: skip
    print(f"pretrain: {a.sum()} train / {at.sum()} test; target: {len(rows)} / {bt.sum()}")


if __name__ == "__main__":
    main()
