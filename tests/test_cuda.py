"""goodfit on a CUDA device (skipped without one): optimizers vs torch.optim on the same
device, and ``goodfit train`` end to end with ``train.device = "cuda"``.

The optimizers' eager path (multi-tensor ``torch._foreach_*``) and the compiled path (one
Triton kernel per tensor) must follow torch's single-tensor update: float32 within 1e-5 after
30 steps, the tolerance of the compiled CPU tests (compilation reorders float32 arithmetic).
"""

from __future__ import annotations

import json

import pytest
import torch

import goodfit.optim as go
from goodfit.app.cli import main
from goodfit.train.loop import evaluate

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

SHAPES = [(64, 32), (32,), (4, 4, 4)]
STEPS = 30

# (id, goodfit factory, kwargs, torch class, torch kwargs)
CASES = [
    (
        "sgd_nesterov",
        go.sgd,
        dict(lr=0.05, momentum=0.9, nesterov=True),
        torch.optim.SGD,
        dict(lr=0.05, momentum=0.9, nesterov=True),
    ),
    ("adagrad", go.adagrad, dict(lr=0.1), torch.optim.Adagrad, dict(lr=0.1)),
    (
        "rmsprop_centered",
        go.rmsprop,
        dict(lr=0.01, centered=True, momentum=0.5),
        torch.optim.RMSprop,
        dict(lr=0.01, centered=True, momentum=0.5),
    ),
    (
        "adam",
        go.adam,
        dict(lr=0.01, weight_decay=0.01),
        torch.optim.Adam,
        dict(lr=0.01, weight_decay=0.01),
    ),
    ("amsgrad", go.amsgrad, dict(lr=0.01), torch.optim.Adam, dict(lr=0.01, amsgrad=True)),
    ("adamw", go.adamw, dict(lr=0.01), torch.optim.AdamW, dict(lr=0.01)),
    ("adamax", go.adamax, dict(), torch.optim.Adamax, dict()),
    ("nadam", go.nadam, dict(), torch.optim.NAdam, dict()),
]


def _grad(p: torch.Tensor, k: int, t: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1000 * t + k)
    noise = torch.randn(p.shape, generator=gen).to(p.device)
    return 0.5 * p + torch.cos(3 * p) + 0.3 * noise


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_goodfit_on_cuda_matches_torch_on_cuda(case, compiled):
    _, fac, kw, cls, tkw = case
    gen = torch.Generator().manual_seed(0)
    init = [torch.randn(s, generator=gen).cuda() for s in SHAPES]
    pa = [torch.nn.Parameter(x.clone()) for x in init]
    pb = [torch.nn.Parameter(x.clone()) for x in init]
    oa = fac(pa, compiled=compiled, **kw)
    ob = cls(pb, foreach=False, **tkw)
    for t in range(STEPS):
        for ps, opt in ((pa, oa), (pb, ob)):
            for k, p in enumerate(ps):
                p.grad = _grad(p.detach(), k, t)
            opt.step()
    for a, b in zip(pa, pb, strict=True):
        assert a.device.type == "cuda"
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-5)
    state = oa.state_dict()["state"]
    assert all(
        v.device.type == "cuda"
        for s in state.values()
        for v in s.values()
        if isinstance(v, torch.Tensor) and v.ndim > 0
    )


def test_evaluate_moves_cpu_batches_to_a_cuda_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 3))
    X, y = torch.randn(50, 5), torch.randint(0, 3, (50,))
    cpu = evaluate(model, X, y, batch_size=16)
    gpu = evaluate(model.cuda(), X, y, batch_size=16)
    assert gpu["accuracy"] == cpu["accuracy"]
    assert gpu["loss"] == pytest.approx(cpu["loss"], rel=1e-5)


@pytest.mark.parametrize("compiled", ["false", "true"])
def test_goodfit_train_on_cuda(tmp_path, write_toml, torch_globals, compiled):
    """A digits MLP trains on the GPU (eager and compiled Adam), is evaluated on the test set
    and written out like a CPU run."""
    cfg = write_toml(
        f"""
[data]
name = "digits"
[model]
kind = "mlp"
widths = [64]
[optimizer]
name = "adam"
lr = 0.003
compiled = {compiled}
[train]
epochs = 5
batch_size = 64
device = "cuda"
"""
    )
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_accuracy"] > 0.9


def test_study_with_every_diagnosis_on_cuda(tmp_path, torch_globals):
    """A 2-variant, 2-fold study on the GPU with the LR range test, curvature and gradient flow:
    every run is scored and the report is written."""
    from goodfit.app.study import run_study

    data = {
        "data": {"name": "digits", "val_fraction": 0.2},
        "model": {"kind": "mlp", "widths": [16]},
        "optimizer": {"name": "adam", "lr": 0.01},
        "train": {"epochs": 2, "batch_size": 64, "device": "cuda"},
        "study": {
            "splits": {"kind": "stratified_kfold", "k": 2},
            "baseline": "base",
            "lr_find": True,
            "curvature": True,
            "gradient_flow": True,
            "variants": [{"name": "base"}, {"name": "l2", "set": {"regularize.l2": 1e-3}}],
        },
    }
    out = tmp_path / "study"
    run_study(data, out, progress=False)
    on_disk = json.loads((out / "results.json").read_text())
    for name in ("base", "l2"):
        folds = on_disk["variants"][name]["folds"]
        assert len(folds) == 2 and all(0.5 < f["scores"]["test_accuracy"] <= 1 for f in folds)
    assert (out / "report.html").exists()


def test_keep_mask_on_cuda_drops_a_fraction_p():
    """DropConnect's mask generator on the GPU: drop fraction within 4 standard errors
    (sqrt(p(1-p)/n) = 2.2e-4 for n = 2^22) of p, for a p with a tie byte (0.3) and without."""
    from goodfit.nn.functional import keep_mask

    torch.manual_seed(0)
    n = 1 << 22
    for p in (0.3, 0.5):
        m = keep_mask((n,), p, device="cuda")
        assert m.device.type == "cuda" and set(m.unique().tolist()) <= {0.0, 1.0}
        drop = 1.0 - float(m.mean())
        assert abs(drop - p) < 4 * (p * (1 - p) / n) ** 0.5


def test_switchable_norm_and_dropconnect_on_cuda_match_cpu():
    """The hand-written Switchable Norm backward and DropConnect run on the GPU and give the CPU
    results (float64; DropConnect in eval mode, where it is deterministic)."""
    from goodfit.nn.dropout import DropConnectLinear
    from goodfit.nn.norm import SwitchableNorm

    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64)
    g = torch.randn_like(x)
    out = []
    for dev in ("cpu", "cuda"):
        torch.manual_seed(1)
        sn = SwitchableNorm(3).double()
        with torch.no_grad():  # drawn on the CPU: the same importance weights on both devices
            sn.mean_weight.normal_()
            sn.var_weight.normal_()
        sn = sn.to(dev)
        xd = x.to(dev).detach().requires_grad_()  # a fresh leaf on each device
        sn(xd).backward(g.to(dev))
        out.append((xd.grad.cpu(), sn.mean_weight.grad.cpu()))
    for a, b in zip(*out, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    torch.manual_seed(2)
    lin = DropConnectLinear(6, 4, p=0.3).double()
    z = torch.randn(8, 6, dtype=torch.float64)
    lin.eval()
    ref = lin(z)
    torch.testing.assert_close(lin.cuda()(z.cuda()).cpu(), ref, rtol=1e-12, atol=1e-12)
    lin.train()
    y = lin(z.cuda())
    y.sum().backward()
    assert y.shape == (8, 4) and lin.weight.grad.device.type == "cuda"
