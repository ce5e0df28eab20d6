"""Tests for goodfit.train.checkpoint and exact resume: atomic writes, weights_only loading, RNG
round trip, and a `goodfit train` killed with SIGKILL then resumed bit-for-bit."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import goodfit.train.checkpoint as ck
from goodfit.errors import CheckpointError
from goodfit.train.early_stopping import EarlyStopping
from goodfit.train.loop import fit


def _state(value: float) -> dict:
    return {"model": {"w": torch.full((3,), value)}, "epoch": int(value), "name": "x"}


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    ck.save_checkpoint(_state(1.0), tmp_path)
    ck.save_checkpoint(_state(2.0), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    assert torch.equal(ck.load_checkpoint(tmp_path)["model"]["w"], torch.full((3,), 2.0))


def test_a_save_that_fails_midway_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    ck.save_checkpoint(_state(1.0), tmp_path)
    before = (tmp_path / "last.pt").read_bytes()

    def torn_save(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ck.torch, "save", torn_save)
    with pytest.raises(OSError, match="disk full"):
        ck.save_checkpoint(_state(2.0), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    assert (tmp_path / "last.pt").read_bytes() == before
    monkeypatch.undo()
    assert ck.load_checkpoint(tmp_path)["epoch"] == 1


class _Evil:
    def __reduce__(self):
        return (print, ("arbitrary code ran",))


def test_load_uses_weights_only(tmp_path):
    torch.save({"obj": _Evil()}, tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="damaged or not a goodfit checkpoint") as info:
        ck.load_checkpoint(tmp_path)
    assert "weights_only=False" not in str(info.value)  # never the unsafe advice


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04truncated", b"\x00" * 64, b"not torch"])
def test_damaged_files_raise_checkpoint_error(tmp_path, content):
    (tmp_path / "last.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match="damaged or not a goodfit checkpoint"):
        ck.load_checkpoint(tmp_path)


def test_a_file_of_another_kind_is_not_a_checkpoint(tmp_path):
    torch.save(torch.zeros(3), tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="not a goodfit checkpoint"):
        ck.load_checkpoint(tmp_path)


def test_a_training_checkpoint_loads_with_weights_only(tmp_path):
    X, y = torch.randn(40, 3), torch.randint(0, 2, (40,))
    model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.2), nn.Linear(8, 2))
    fit(model, (X, y), (X, y), optimizer=torch.optim.Adam(model.parameters()), epochs=2,
        callbacks=[EarlyStopping(patience=5)], checkpoint_dir=tmp_path, progress=False)  # fmt: skip
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert state["epoch"] == 2 and state["step"] == 4 and len(state["history"]) == 2
    assert set(state) >= {"model", "optimizer", "callbacks", "rng", "history"}
    assert state["callbacks"][0]["best_state"].keys() == model.state_dict().keys()


def _draws(gen):
    return (
        torch.rand(3),
        torch.rand(2, generator=gen),
        np.random.rand(3),
        np.random.standard_normal(),  # exercises NumPy's cached Gaussian
        random.random(),
        random.gauss(0, 1),  # exercises Python's gauss_next
    )


def test_rng_state_round_trip(tmp_path):
    gen = torch.Generator().manual_seed(5)
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    np.random.standard_normal(), random.gauss(0, 1)  # leave cached Gaussians behind
    ck.save_checkpoint({"rng": ck.capture_rng_state(gen)}, tmp_path)
    first = _draws(gen)
    other = torch.Generator().manual_seed(99)
    torch.manual_seed(10), np.random.seed(11), random.seed(12)
    ck.restore_rng_state(ck.load_checkpoint(tmp_path)["rng"], other)
    second = _draws(other)
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


# -------------------------------------------------------------- kill with SIGKILL, then resume

RESUME_CONFIG = """
[data]
name = "digits"
val_fraction = 0.2

[model]
kind = "mlp"
widths = [64]
dropout = 0.3

[optimizer]
name = "adam"
lr = 0.03

[train]
epochs = 5
batch_size = 16
seed = 3
threads = 1

[early_stopping]
patience = 2

[checkpoint]
every = 1
"""


def _goodfit(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from goodfit.app.cli import main; sys.exit(main())",
            *args]  # fmt: skip


def test_killed_run_resumes_bit_for_bit(tmp_path, write_toml):
    cfg = write_toml(RESUME_CONFIG)
    env = {**os.environ, "GOODFIT_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "env": env}
    ref = subprocess.Popen(_goodfit("train", str(cfg), "--out", str(ref_dir)), **quiet)
    run = subprocess.Popen(_goodfit("train", str(cfg), "--out", str(run_dir)), **quiet)
    ckpt = run_dir / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(random.Random(os.getpid()).uniform(0.0, 0.05))  # somewhere in a later epoch
    run.send_signal(signal.SIGKILL)
    run.wait()
    _, ref_err = ref.communicate(timeout=300)
    assert ref.returncode == 0, ref_err.decode()
    assert run.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = torch.load(ckpt, weights_only=True)["epoch"]
    assert not (run_dir / "summary.json").exists()

    resumed = subprocess.run(_goodfit("train", "--resume", str(run_dir)), capture_output=True,
                             env=env, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr.decode()

    a = torch.load(ref_dir / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(ckpt, weights_only=True)
    assert a["epoch"] == b["epoch"] > killed_at and a["step"] == b["step"]
    assert a["stop_reason"] == b["stop_reason"]
    _assert_equal_tree(a["model"], b["model"])
    _assert_equal_tree(a["optimizer"], b["optimizer"])
    _assert_equal_tree(a["callbacks"], b["callbacks"])  # early stopping's theta*, counters
    sa = json.loads((ref_dir / "summary.json").read_text())
    sb = json.loads((run_dir / "summary.json").read_text())
    for key in ("test_accuracy", "test_loss", "best_epoch", "epochs_run", "best_val_loss"):
        assert sa[key] == sb[key], key
    ha = [json.loads(line) for line in (ref_dir / "history.jsonl").read_text().splitlines()]
    hb = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    drop = {"epoch_seconds"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in ha] == [
        {k: v for k, v in r.items() if k not in drop} for r in hb
    ]


def _assert_equal_tree(a, b, path="") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_equal_tree(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_equal_tree(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def test_resume_of_a_folder_without_checkpoint_is_a_user_error(tmp_path):
    from goodfit.app.cli import main

    (tmp_path / "config.toml").write_text("[train]\nepochs = 1\n")
    assert main(["train", "--resume", str(tmp_path)]) == 2


def test_resume_in_process_matches_an_uninterrupted_fit(tmp_path):
    """fit(resume=True) from an epoch-2 checkpoint equals 4 uninterrupted epochs (dropout and
    early stopping make RNG and callback state matter)."""

    def run(epochs, resume, folder):
        torch.manual_seed(0)
        X, y = torch.randn(48, 4), torch.randint(0, 3, (48,))
        torch.manual_seed(1)
        model = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.5), nn.Linear(16, 3))
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        es = EarlyStopping(patience=10)
        fit(model, (X, y), (X[:12], y[:12]), optimizer=opt, epochs=epochs, batch_size=8,
            callbacks=[es], checkpoint_dir=folder, resume=resume, seed=4,
            progress=False)  # fmt: skip
        return model, opt, es

    full = run(4, False, tmp_path / "full")
    run(2, False, tmp_path / "cut")
    torch.manual_seed(123)  # the resumed process's RNG is elsewhere
    resumed = run(4, True, tmp_path / "cut")
    _assert_equal_tree(full[0].state_dict(), resumed[0].state_dict())
    _assert_equal_tree(full[1].state_dict(), resumed[1].state_dict())
    _assert_equal_tree(full[2].state_dict(), resumed[2].state_dict())
    assert Path(tmp_path / "cut" / "last.pt").exists()
