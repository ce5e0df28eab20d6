"""Dropout as an ensemble (seed 001; Baldi & Sadowski 2013) on a trained network: the
weight-scaling rule vs the Monte-Carlo average of T sampled sub-networks vs their normalized
geometric mean — accuracy, NLL and the gaps — and Baldi's identity on a linear unit.

The network: an MLP 64-256-256-10 with dropout p = 0.5 after each hidden layer, trained on the
digits for 30 epochs (Adam 1e-3, batch 64, seed 0); evaluated on the 360 test images.

Run: ``python benchmarks/dropout_ensemble.py [--samples 100]``
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import goodfit as gf
from goodfit.data import load_dataset
from goodfit.ensemble import baldi_identity, dropout_inference_rules


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds = load_dataset("digits")
    X, y, Xt, yt = ds.X_train.float(), ds.y_train, ds.X_test.float(), ds.y_test
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, 256),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(256, 256),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(256, 10),
    )
    gf.fit(
        net,
        (X, y),
        optimizer=torch.optim.Adam(net.parameters(), lr=1e-3),
        epochs=args.epochs,
        batch_size=64,
        progress=False,
    )
    r = dropout_inference_rules(net, Xt, yt, samples=args.samples, seed=0)
    print(f"T = {args.samples} sub-networks, digits test (360)")
    for rule in ("weight_scaling", "mc_average", "geometric_mean"):
        print(f"  {rule:15s} accuracy {r[rule]['accuracy']:.4f}  NLL {r[rule]['nll']:.4f}")
    print("  gaps:", {k: round(v, 4) for k, v in r["gap"].items()})
    g = torch.Generator().manual_seed(0)
    w, inputs = torch.randn(8, generator=g).double(), torch.randn(8, generator=g).double()
    p = torch.full((8,), 0.5, dtype=torch.float64)
    b = baldi_identity(w, inputs, 1.0, p, samples=1_000_000, seed=1)
    z = ((b["expected_grad"] - b["grad_E_R"]) / b["stderr"]).abs().max()
    print(f"Baldi identity, 8 inputs, 1e6 masks: max |E[dE_D/dw] - dE_R/dw| / stderr = {z:.2f}")


if __name__ == "__main__":
    main()
