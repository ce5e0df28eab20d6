"""LR range test vs a coarse grid of learning rates on digits (MLP, plain SGD).

Run: ``.venv/bin/python examples/lr_find_grid.py [--epochs 3] [--seeds 0 1 2 3 4]``

For each seed, a 64-unit MLP is trained with SGD (batch 32) for a few epochs at every rate of the
grid 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1 (held-out loss and accuracy on the digits test
split), and the learning-rate range test (:func:`goodfit.diagnose.lr_find.lr_find`, 200 steps
from 1e-6 to 10) is run on a fresh copy of the same model. The table shows the grid's best rate
and the two suggestions side by side; issue 4 asks that the suggestion lie within a factor of 3
of the best grid rate (tests/test_lr_find.py checks it for seed 0).

Figures from one run (2 shared CPU cores, ``--epochs 3 --seeds 0 1 2 3 4``)::

    seed  grid best  held-out loss at best  steepest  min/10  suggestion/best
       0        0.3                  0.156     0.392   0.088             1.31
       1        0.3                  0.147     0.637  0.0812             2.12
       2        0.3                  0.181     0.361   0.155             1.20
       3        0.3                  0.151     0.691   0.088             2.30
       4        0.3                  0.162     0.691   0.088             2.30

Seed 0's grid, held-out loss per rate: 0.001 -> 2.288, 0.003 -> 2.182, 0.01 -> 1.791,
0.03 -> 0.772, 0.1 -> 0.270, 0.3 -> 0.156, 1 -> 0.350. The steepest-descent rate (the default
suggestion) always lands between the grid's 0.3 and 1; minimum/10 (the conservative rule) lands
near 0.1, a factor 2-3.7 below the best. With ``--epochs 2`` the grid itself gets noisy (seed 2:
0.1 and 0.3 tie at 0.379 vs 0.382 and 0.1 wins by 0.003, so the suggestion 0.361 is 3.6x the
"best"); the factor-3 claim is about a grid trained long enough to rank adjacent rates.
"""

from __future__ import annotations

import argparse
import math

import torch

from goodfit import optim as gf_optim
from goodfit.data.datasets import load_dataset
from goodfit.diagnose.lr_find import lr_find
from goodfit.nn.models import mlp
from goodfit.train.loop import evaluate, fit

GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--plot", help="save the range-test curve of the first seed to this PNG")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ds = load_dataset("digits")
    train, test = (ds.X_train, ds.y_train), (ds.X_test, ds.y_test)

    def make(seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return mlp(ds.input_shape, (64,), ds.num_outputs)

    rows = []
    for seed in args.seeds:
        scores = {}
        print(f"seed {seed}: grid ({args.epochs} epochs of SGD, batch 32)")
        for lr in GRID:
            model = make(seed)
            opt = gf_optim.sgd(model.parameters(), lr=lr)
            fit(model, train, optimizer=opt, epochs=args.epochs, progress=False, seed=seed)
            m = evaluate(model, *test)
            scores[lr] = m["loss"] if math.isfinite(m["loss"]) else math.inf
            print(f"  lr={lr:<6g} held-out loss {m['loss']:.3f}  accuracy {m['accuracy']:.3f}")
        best = min(scores, key=scores.get)
        model = make(seed)
        opt = gf_optim.sgd(model.parameters(), lr=0.01)
        res = lr_find(model, train, optimizer=opt, min_lr=1e-6, max_lr=10.0, steps=200, seed=seed)
        print(f"  range test: {res.reading}")
        if args.plot and seed == args.seeds[0]:
            res.plot(args.plot)
        rows.append((seed, best, scores[best], res))

    print()
    print("seed  grid best  held-out loss at best  steepest  min/10  suggestion/best")
    for seed, best, loss, res in rows:
        print(
            f"{seed:>4}  {best:>9g}  {loss:>21.3f}  {res.suggestion_steepest:>8.3g}  "
            f"{res.suggestion_min_div10:>6.3g}  {res.suggestion / best:>15.2f}"
        )


if __name__ == "__main__":
    main()
