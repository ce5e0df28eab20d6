"""Overhead of ``goodfit.fit()`` over a hand-written minimal PyTorch loop.

Both sides train the same model (same initial weights), on the same data, with the same optimizer
and batch size, and do the same work per epoch, which is what ``fit()`` does:

- a fresh ``randperm`` each epoch, batches by indexing, forward, cross-entropy, ``zero_grad``,
  backward, ``step``;
- the epoch's training loss accumulated the cheapest honest way (a list of detached per-batch
  losses reduced once at epoch end) and the training accuracy from the batches' outputs, also
  reduced once at epoch end (``fit`` reports both);
- one validation pass per epoch in eval mode (loss and accuracy), as ``fit`` validates each
  epoch.

Cases: (a) an MLP on digits with batch 32, where per-batch overhead matters most; (b) a 1-D CNN
on MNIST-1D with batch 64. Runs are interleaved in one process with ``torch.set_num_threads(2)``
after a warm-up; the table shows the median seconds per epoch of >= 5 runs and their ratio
(target: ratio <= 1.03).

Run: ``python benchmarks/trainer_overhead.py [--runs 7]``
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

import goodfit
from goodfit.data import load_dataset
from goodfit.nn import models


def minimal_loop(model, X, y, Xv, yv, optimizer, epochs, batch_size, seed):
    """The hand-written baseline: the same work as one ``fit()`` epoch, nothing more."""
    gen = torch.Generator().manual_seed(seed)
    n = len(X)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        losses, outputs, targets = [], [], []
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            xb, yb = X[idx], y[idx]
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
            outputs.append(out.detach())
            targets.append(yb)
        train_loss = float(torch.stack(losses).mean())
        train_acc = float((torch.cat(outputs).argmax(1) == torch.cat(targets)).float().mean())
        model.eval()
        with torch.no_grad():
            vout = model(Xv)
            val_loss = float(F.cross_entropy(vout, yv))
            val_acc = float((vout.argmax(1) == yv).float().mean())
    return train_loss, train_acc, val_loss, val_acc


def bench(name, make_model, data, batch_size, epochs, runs, lr):
    (X, y), (Xv, yv) = data
    torch.manual_seed(0)
    init = make_model()
    times = {"goodfit.fit": [], "minimal loop": []}

    def run(which):
        model = copy.deepcopy(init)
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        t0 = time.perf_counter()
        if which == "goodfit.fit":
            goodfit.fit(model, (X, y), (Xv, yv), optimizer=opt, epochs=epochs,
                        batch_size=batch_size, seed=0, progress=False)  # fmt: skip
        else:
            minimal_loop(model, X, y, Xv, yv, opt, epochs, batch_size, 0)
        return (time.perf_counter() - t0) / epochs

    run("goodfit.fit"), run("minimal loop")  # warm-up
    order = list(times)
    for r in range(runs):
        for which in order if r % 2 == 0 else order[::-1]:  # interleaved, alternating order
            times[which].append(run(which))
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["goodfit.fit"] / med["minimal loop"]
    print(f"{name:<32} {med['minimal loop'] * 1e3:>10.2f} {med['goodfit.fit'] * 1e3:>12.2f} "
          f"{ratio:>7.3f}")  # fmt: skip
    return ratio


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(2)

    digits = load_dataset("digits")
    mnist1d = load_dataset("mnist1d")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, median of "
          f"{args.runs} interleaved runs")  # fmt: skip
    print(f"{'case':<32} {'minimal ms/ep':>10} {'fit ms/ep':>12} {'ratio':>7}")
    bench("(a) MLP on digits, batch 32",
          lambda: models.mlp((1, 8, 8), (128, 128), 10),
          (digits.train, digits.test), 32, 5, args.runs, 0.05)  # fmt: skip
    bench("(b) CNN1d on mnist1d, batch 64",
          lambda: models.cnn1d((1, 40), (32, 32, 32), 10, hidden=(128,)),
          (mnist1d.train, mnist1d.test), 64, 2, args.runs, 0.05)  # fmt: skip
    print("target: ratio <= 1.03")


if __name__ == "__main__":
    main()
