"""Data-parallel training under torchrun (goodfit.train.distributed), launched for real through
``python -m torch.distributed.run`` (torchrun's module) with 2 gloo ranks on the CPU.

Reference: the same config trained by one process (``run_config`` in this process). The global
batch (37, shared 19 + 18, so the uneven-share loss weighting is exercised) and the permutation
are the same, so the two runs differ only by float32 summation order (two partial means averaged
by DDP vs one mean; the validation sums split in two). Tolerance: rtol 1e-5, atol 1e-6, i.e.
about 100 float32 ulps (eps 1.2e-7) for parameters of order 0.1-1 after ~300 SGD steps, each step
adding a few ulps of gradient round-off. Measured: 9e-8 (MLP, 24 epochs), 3e-7 (BN); without the
uneven-share weighting the MLP's parameters differ by 1.8e-3, far outside the tolerance.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from goodfit.app.config import load_config
from goodfit.app.run import run_config

SRC = str(Path(__file__).parents[1] / "src")

MLP = """
[data]
name = "breast_cancer"
val_fraction = 0.2

[model]
kind = "mlp"
widths = [32]
{norm}

[optimizer]
name = "sgd"
lr = 0.05
momentum = 0.9

[train]
epochs = {epochs}
batch_size = 37
seed = 3
threads = 1
{sync}

[early_stopping]
patience = 12
{plateau}"""

# (not in the resumed config: a resumed reduce_on_plateau run trips build.py's interval check)
PLATEAU = """
[schedule]
name = "reduce_on_plateau"
patience = 1
factor = 0.5
"""


def _config(tmp_path: Path, name: str, *, epochs: int, bn: bool = False) -> Path:
    """The test config. The MLP's validation loss is lowest at epoch 3, so early stopping
    (patience 12) ends it at epoch 15 of 24; the BN model also has the plateau rule."""
    text = MLP.format(
        epochs=epochs,
        plateau=PLATEAU if bn else "",
        norm='norm = "batch"' if bn else "",
        sync="sync_batchnorm = true" if bn else "",
    )
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def _torchrun(*args: str, popen: bool = False):
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           "-m", "goodfit", "train", *args]  # fmt: skip
    if popen:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _history(folder: Path) -> list[dict]:
    lines = (folder / "history.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "epoch_seconds"} for line in lines]


def _model(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "model.pt", weights_only=True)


@pytest.fixture(scope="module")
def two_process_mlp(tmp_path_factory):
    """One uninterrupted 2-rank run of the MLP config (the reference of two tests)."""
    tmp = tmp_path_factory.mktemp("ddp")
    config = _config(tmp, "mlp", epochs=24)
    _torchrun(str(config), "--out", str(tmp / "ddp"))
    return config, tmp / "ddp"


def _one_process(config: Path, out: Path) -> Path:
    threads = torch.get_num_threads()
    try:
        run_config(load_config(config), out)
    finally:
        torch.set_num_threads(threads)
    return out


def _assert_same_run(ddp: Path, one: Path) -> None:
    a, b = _model(ddp), _model(one)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    ha, hb = _history(ddp), _history(one)
    assert len(ha) == len(hb) > 0  # the same early-stopping decision
    sa, sb = (json.loads((f / "summary.json").read_text()) for f in (ddp, one))
    assert (sa["best_epoch"], sa["stop_reason"]) == (sb["best_epoch"], sb["stop_reason"])
    for ra, rb in zip(ha, hb, strict=True):
        assert ra.keys() == rb.keys()
        for key in ra:
            assert ra[key] == pytest.approx(rb[key], rel=1e-5, abs=1e-6), key


def test_two_ranks_train_as_one_process(two_process_mlp, tmp_path, torch_globals):
    config, ddp = two_process_mlp
    one = _one_process(config, tmp_path / "one")
    _assert_same_run(ddp, one)
    assert sorted(p.name for p in ddp.iterdir()) == sorted(p.name for p in one.iterdir())


def test_sync_batchnorm_trains_as_one_process(tmp_path, torch_globals):
    """With ``train.sync_batchnorm`` the BatchNorm statistics are the global batch's, so a BN
    model (running statistics included) trains as in one process, plateau reductions included."""
    config = _config(tmp_path, "bn", epochs=6, bn=True)
    _torchrun(str(config), "--out", str(tmp_path / "ddp"))
    _assert_same_run(tmp_path / "ddp", _one_process(config, tmp_path / "one"))
    lrs = [r["lr"] for r in _history(tmp_path / "ddp")]
    assert lrs[-1] < lrs[0]  # the plateau rule acted (rank 0's decision, broadcast)


def _rank_pid(launcher: subprocess.Popen, rank: int) -> int:
    children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split()
    for pid in children:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in env:
            return int(pid)
    raise AssertionError(f"no rank {rank} among {children}")


def test_sigkill_of_one_rank_then_resume_is_bit_identical(two_process_mlp, tmp_path):
    _kill_and_resume(*two_process_mlp, tmp_path)


@pytest.mark.slow
def test_with_dropout_each_rank_resumes_its_own_random_stream(tmp_path):
    """Dropout draws differ by rank (seeded per rank); the checkpoint holds every rank's random
    state, so a killed and resumed run is still bit-identical to the uninterrupted one."""
    config = _config(tmp_path, "dropout", epochs=24)
    config.write_text(config.read_text().replace("widths = [32]", "widths = [32]\ndropout = 0.3"))
    _torchrun(str(config), "--out", str(tmp_path / "reference"))
    _kill_and_resume(config, tmp_path / "reference", tmp_path)


def _kill_and_resume(config: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    launcher = _torchrun(str(config), "--out", str(out), popen=True)
    checkpoint = out / "checkpoints" / "last.pt"
    try:
        while not checkpoint.exists() and launcher.poll() is None:
            time.sleep(0.005)
        victim = _rank_pid(launcher, 1)
        os.kill(victim, signal.SIGSTOP)  # the other rank blocks at its next collective
        os.kill(victim, signal.SIGKILL)
        launcher.wait(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    assert launcher.returncode != 0
    killed_at = torch.load(checkpoint, weights_only=True)["epoch"]
    assert 1 <= killed_at < len(_history(reference))  # it was killed mid-run
    assert not (out / "model.pt").exists()
    _torchrun("--resume", str(out))
    a, b = _model(out), _model(reference)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert _history(out) == _history(reference)


@pytest.mark.parametrize(
    ("sets", "needle"),
    [
        (["optimizer.name=levenberg_marquardt"], "optimizer.name = 'levenberg_marquardt'"),
        (['early_stopping.algorithm="7.2"'], "early_stopping.algorithm = '7.2'"),
        (['ensemble.method="bagging"'], "[ensemble] method = 'bagging'"),
    ],
)
def test_what_cannot_run_data_parallel_is_refused_by_name(tmp_path, sets, needle):
    from goodfit.app.run import _check_parallel
    from goodfit.errors import ConfigError

    cfg = load_config(_config(tmp_path, "x", epochs=1), sets)
    with pytest.raises(ConfigError, match="cannot run data-parallel under torchrun") as err:
        _check_parallel(cfg)
    assert needle in str(err.value)
    _check_parallel(load_config(_config(tmp_path, "ok", epochs=1)))  # a first-order run is fine


def test_rank_seeds_are_reproducible_and_rank_0_draws_as_one_process():
    from goodfit.train.distributed import rank_seed

    assert rank_seed(7, 0) == 7
    assert rank_seed(7, 1) == rank_seed(7, 1) != rank_seed(7, 2)
    assert len({rank_seed(s, r) for s in range(5) for r in range(1, 5)}) == 20
