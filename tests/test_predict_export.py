"""`goodfit predict` and `goodfit export`: the run's own preprocessing and weights, on new data
and in plain PyTorch."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from goodfit.app.cli import main
from goodfit.data import load_dataset

CONFIG = """
[data]
name = "digits"
[model]
kind = "cnn2d"
channels = [4, 8]
hidden = [16]
norm = "batch"
dropout = 0.1
[train]
epochs = 1
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("predict")
    (tmp / "c.toml").write_text(CONFIG)
    threads = torch.get_num_threads()
    try:
        assert main(["train", str(tmp / "c.toml"), "--out", str(tmp / "run")]) == 0
    finally:
        torch.set_num_threads(threads)
    ds = load_dataset("digits", standardize=False)
    np.savez(tmp / "test.npz", X=ds.X_test.numpy(), y=ds.y_test.numpy())
    return tmp / "run"


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_predict_reproduces_the_runs_test_accuracy(run_dir, capsys):
    out = run_dir.parent / "pred.csv"
    assert main(["predict", str(run_dir), str(run_dir.parent / "test.npz"), "--out", str(out)]) == 0
    rows = _read(out)
    summary = json.loads((run_dir / "summary.json").read_text())
    acc = np.mean([r["class"] == r["label"] for r in rows])
    assert len(rows) == 360 and acc == summary["test_accuracy"]
    probs = np.array([[float(r[f"prob_{k}"]) for k in range(10)] for r in rows])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert f"accuracy {summary['test_accuracy']:.4f}" in capsys.readouterr().out


def test_predict_reads_a_csv_without_labels(run_dir):
    ds = load_dataset("digits", standardize=False)
    path = run_dir.parent / "x.csv"
    X = ds.X_test[:5].reshape(5, -1).numpy()
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"p{i}" for i in range(64)])
        w.writerows(X.tolist())
    out = run_dir.parent / "x_pred.csv"
    assert main(["predict", str(run_dir), str(path), "--out", str(out)]) == 0
    npz = run_dir.parent / "pred.csv"
    main(["predict", str(run_dir), str(run_dir.parent / "test.npz"), "--out", str(npz)])
    assert [r["class"] for r in _read(out)] == [r["class"] for r in _read(npz)[:5]]
    assert "label" not in _read(out)[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict", "{tmp}", "{tmp}/test.npz"], "no config.toml there"),
        (["predict", "{run}", "{tmp}/missing.npz"], "no such file"),
        (["predict", "{run}", "{tmp}/bad.npz"], "takes (1, 8, 8)"),
    ],
)
def test_bad_predict_calls_exit_2(run_dir, capsys, args, message):
    tmp = run_dir.parent
    np.savez(tmp / "bad.npz", X=np.zeros((3, 7)))
    assert main([a.format(tmp=tmp, run=run_dir) for a in args]) == 2
    assert message in capsys.readouterr().err


def test_an_unknown_export_format_exits_2(run_dir, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["export", str(run_dir), "--format", "onnx"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


LOADER = """
import sys, numpy as np, torch
x = torch.from_numpy(np.load(sys.argv[1]))
with torch.no_grad():
    np.save("torchscript.npy", torch.jit.load("model.ts")(x).numpy())
    np.save("exported-program.npy", torch.export.load("model.pt2").module()(x).numpy())
assert not any(name.split(".")[0] == "goodfit" for name in sys.modules), "imported goodfit"
"""


def test_exports_run_in_plain_torch_with_the_same_outputs(run_dir, tmp_path):
    from goodfit.app.predict import load_run

    for fmt, name in (("torchscript", "model.ts"), ("exported-program", "model.pt2")):
        assert main(["export", str(run_dir), "--format", fmt, "--out", str(tmp_path / name)]) == 0
    ds = load_dataset("digits", standardize=False)
    x = ds.X_test[:37].numpy()  # a batch size other than the trace's example (2)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "load.py").write_text(LOADER)
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "load.py"), str(tmp_path / "x.npy")],
        capture_output=True, text=True, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    run = load_run(run_dir)
    with torch.no_grad():
        expected = run.model(run.preprocess(torch.from_numpy(x))).numpy()
    for fmt in ("torchscript", "exported-program"):
        # the same float32 kernels on the same inputs: equal up to summation order
        got = np.load(tmp_path / f"{fmt}.npy")
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6, err_msg=fmt)
    meta = json.loads((tmp_path / "model.pt2.json").read_text())
    assert meta["input_shape"] == [1, 8, 8] and meta["classes"] == list(range(10))
