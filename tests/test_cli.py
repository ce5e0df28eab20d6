"""Tests for the `goodfit` command end to end: `train` writes a run folder, `datasets` lists the
built-ins, and every kind of user error exits with status 2 and one message, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from goodfit.app.cli import main
from goodfit.data import DATASETS

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """`goodfit train examples/digits_cnn.toml` on a tiny override, run once for the module."""
    threads = torch.get_num_threads()
    det, warn = (
        torch.are_deterministic_algorithms_enabled(),
        (torch.is_deterministic_algorithms_warn_only_enabled()),
    )
    out = tmp_path_factory.mktemp("runs") / "digits"
    try:
        status = main(["train", str(ROOT / "examples" / "digits_cnn.toml"),
                       "--set", "train.epochs=2", "--set", "model.channels=[8, 16]",
                       "--out", str(out)])  # fmt: skip
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det, warn_only=warn)
    return status, out


def test_train_writes_the_run_folder(digits_run):
    status, out = digits_run
    assert status == 0
    assert (out / "checkpoints" / "last.pt").exists()
    import tomllib

    resolved = tomllib.loads((out / "config.toml").read_text())
    assert resolved["train"]["epochs"] == 2 and resolved["model"]["kind"] == "cnn2d"
    lines = (out / "history.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records] == [1, 2]
    assert {"train_loss", "val_loss", "val_accuracy", "lr"} <= records[0].keys()
    summary = json.loads((out / "summary.json").read_text())
    assert 0.5 < summary["test_accuracy"] <= 1.0
    assert summary["best_epoch"] in (1, 2) and summary["wall_seconds"] > 0
    assert summary["epochs_run"] == 2 and summary["dataset"] == "digits"


def test_an_out_dir_that_holds_a_run_is_refused_and_left_untouched(digits_run, capsys):
    _, out = digits_run
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}
    status = main(["train", str(ROOT / "examples" / "digits_cnn.toml"), "--out", str(out)])
    _assert_user_error(status, capsys, "already holds a run")
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_datasets_lists_every_builtin(capsys):
    assert main(["datasets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(DATASETS)
    digits = next(r for r in rows if r["name"] == "digits")
    assert (digits["n_train"], digits["n_test"], digits["input_shape"]) == (1437, 360, [1, 8, 8])
    assert main(["datasets"]) == 0
    text = capsys.readouterr().out
    assert "digits" in text and "mnist1d" in text  # a narrow console may wrap longer names


def _assert_user_error(status, capsys, *needles):
    err = capsys.readouterr().err
    assert status == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("goodfit train: error: "), err
    for needle in needles:
        assert needle in err, (needle, err)


TINY = """
[data]
name = "moons"

[model]
kind = "mlp"
widths = [8]

[train]
epochs = 1
"""


@pytest.mark.parametrize(
    ("sets", "needles"),
    [
        (["train.epoch=3"], ["train.epoch", "unknown key in section [train]"]),
        (["train.epochs=ten"], ["train.epochs", "'ten'"]),
        (["data.val_fraction=1.5"], ["data.val_fraction", "1.5"]),
        (["optimizer.name=adamm"], ["adamm", "did you mean 'adam'"]),
        (["optimizer.betas=3"], ["[optimizer]"]),
        (["data.name=nowhere.npz"], ["data file not found: nowhere.npz"]),
        (["data.name=nowhere"], ["unknown dataset 'nowhere'"]),
    ],
)
def test_bad_config_values_exit_2(sets, needles, write_toml, tmp_path, capsys, torch_globals):
    cfg = write_toml(TINY)
    args = ["train", str(cfg), "--out", str(tmp_path / "run")]
    for s in sets:
        args += ["--set", s]
    _assert_user_error(main(args), capsys, *needles)
    assert not (tmp_path / "run" / "summary.json").exists()


def test_missing_config_file_exits_2(tmp_path, capsys):
    _assert_user_error(main(["train", str(tmp_path / "nope.toml")]), capsys, "nope.toml")


def _npz(tmp_path, X, y, name="data.npz"):
    path = tmp_path / name
    np.savez(path, X=X, y=y)
    return path


def test_nan_features_exit_2(write_toml, tmp_path, capsys, torch_globals):
    X = np.random.default_rng(0).standard_normal((40, 3))
    X[7, 1] = np.nan
    path = _npz(tmp_path, X, np.arange(40) % 2)
    cfg = write_toml(TINY + "")
    status = main(["train", str(cfg), "--set", f'data.name="{path}"', "--out",
                   str(tmp_path / "run")])  # fmt: skip
    _assert_user_error(status, capsys, str(path), "NaN", "sample 7")


def test_labels_out_of_range_exit_2(write_toml, tmp_path, capsys, torch_globals):
    X = np.random.default_rng(0).standard_normal((40, 3))
    path = _npz(tmp_path, X, np.arange(40) % 4)
    cfg = write_toml(TINY)
    args = ["--set", f'data.name="{path}"', "--set", "data.options={num_classes = 3}"]
    status = main(["train", str(cfg), *args, "--out", str(tmp_path / "run")])
    _assert_user_error(status, capsys, "label 3", "num_classes=3", "0..2")


def test_divergence_exits_2_naming_epoch_step_and_checkpoint(write_toml, tmp_path, capsys,
                                                               torch_globals):  # fmt: skip
    cfg = write_toml(
        '[data]\nname = "poly"\n[model]\nkind = "mlp"\nwidths = [8]\n'
        '[optimizer]\nname = "torch.SGD"\nlr = 1e12\n[train]\nepochs = 2\nbatch_size = 8\n'
    )
    status = main(["train", str(cfg), "--out", str(tmp_path / "run")])
    _assert_user_error(status, capsys, "diverged", "epoch 1, step ", "no checkpoint was written")
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


def test_user_errors_print_no_traceback_in_a_real_process(write_toml, tmp_path):
    import subprocess
    import sys

    cfg = write_toml(TINY)
    proc = subprocess.run([sys.executable, "-c", "import sys; from goodfit.app.cli import main; "
                           "sys.exit(main())", "train", str(cfg), "--set", "train.epochs=0"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"goodfit train: error: {cfg}: train.epochs: Input should be greater than or equal to 1 "
        "(got 0)"
    ]
