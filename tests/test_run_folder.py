"""Run folders that protect themselves, resume semantics, and user errors that used to be
tracebacks or were silently accepted: each exits 2 with one message, nothing lost or mixed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from goodfit.app.cli import main
from goodfit.app.run_folder import LOCK_NAME, MARKER_NAME

TINY = """
[data]
name = "moons"
val_fraction = 0.2
options = { n_samples = 300 }

[model]
kind = "mlp"
widths = [16]

[train]
epochs = 3
batch_size = 32
seed = 0
threads = 1

[early_stopping]
patience = 5
"""


@pytest.fixture(autouse=True)
def _restore_torch(torch_globals):
    yield


def _user_error(capsys, argv, *needles) -> str:
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def _snapshot(folder: Path) -> dict:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def _cli(*args: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "import sys; from goodfit.app.cli import main; sys.exit(main())",
        *args,
    ]


# -- the folder protects itself --------------------------------------------------------------------


def test_a_second_writer_exits_2_naming_the_holder(write_toml, tmp_path):
    cfg = write_toml(
        TINY.replace("epochs = 3", "epochs = 100000").replace("[early_stopping]\npatience = 5", "")
    )
    out = tmp_path / "run"
    first = subprocess.Popen(
        _cli("train", str(cfg), "--out", str(out)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while not (out / "checkpoints" / "last.pt").exists() and time.time() < deadline:
            time.sleep(0.2)
        assert (out / "checkpoints" / "last.pt").exists()
        second = subprocess.run(
            _cli("train", str(cfg), "--out", str(out)), capture_output=True, text=True, timeout=120
        )
        assert second.returncode == 2 and "Traceback" not in second.stderr
        assert f"in use by another goodfit process (PID {first.pid})" in second.stderr
        resumed = subprocess.run(
            _cli("train", "--resume", str(out)), capture_output=True, text=True, timeout=120
        )
        assert resumed.returncode == 2 and "in use by another goodfit process" in resumed.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the lock died with its holder: the killed run continues one more epoch
    done = torch.load(out / "checkpoints" / "last.pt", weights_only=True)["epoch"]
    assert main(["train", "--resume", str(out), "--set", f"train.epochs={done + 1}"]) == 0


def test_foreign_files_are_refused_and_kept_unless_force(write_toml, tmp_path, capsys):
    cfg = write_toml(TINY)
    out = tmp_path / "mine"
    out.mkdir()
    for name in ("config.toml", "model.pt", "lr.png"):
        (out / name).write_text(f"the user's own {name}")
    before = _snapshot(out)
    _user_error(
        capsys,
        ["train", str(cfg), "--out", str(out)],
        "not a goodfit run folder",
        "config.toml",
        "lr.png",
        "model.pt",
        "--force",
    )
    assert _snapshot(out) == before and not (out / LOCK_NAME).exists()
    for command in (["study", str(cfg)], ["lr-find", str(cfg)]):
        _user_error_any(capsys, [*command, "--out", str(out)])
    assert _snapshot(out) == before
    assert main(["train", str(cfg), "--out", str(out), "--force"]) == 0
    assert json.loads((out / MARKER_NAME).read_text())["kind"] == "train"


def _user_error_any(capsys, argv):
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err, err


def test_a_run_killed_before_its_first_checkpoint_restarts_cleanly(write_toml, tmp_path, capsys):
    cfg = write_toml(TINY)
    out = tmp_path / "run"
    # the state a SIGKILL during the first checkpoint write leaves: the marker and config first,
    # an orphan temporary checkpoint, no last.pt
    assert main(["train", str(cfg), "--out", str(out)]) == 0
    done = json.loads((out / "summary.json").read_text())
    for name in ("summary.json", "model.pt", "history.jsonl"):
        (out / name).unlink()
    (out / "checkpoints" / "last.pt").rename(out / "checkpoints" / ".last.pt.x1y2.tmp")
    capsys.readouterr()
    assert main(["train", "--resume", str(out)]) == 0  # restarts from scratch, no dead end
    assert not list(out.rglob("*.tmp"))
    again = json.loads((out / "summary.json").read_text())
    assert again["test_accuracy"] == done["test_accuracy"]  # the same seeded run
    # and without --resume too
    for name in ("summary.json", "model.pt"):
        (out / name).unlink()
    (out / "checkpoints" / "last.pt").unlink()
    assert main(["train", str(cfg), "--out", str(out)]) == 0


def test_sigkill_during_training_then_fresh_command_says_resume(write_toml, tmp_path, capsys):
    cfg = write_toml(TINY.replace("epochs = 3", "epochs = 100000"))
    out = tmp_path / "run"
    proc = subprocess.Popen(
        _cli("train", str(cfg), "--out", str(out)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while not (out / MARKER_NAME).exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / MARKER_NAME).exists()
    capsys.readouterr()
    if (out / "checkpoints" / "last.pt").exists():  # killed after a checkpoint: resume it
        _user_error(capsys, ["train", str(cfg), "--out", str(out)], "--resume")
    else:  # killed before the first checkpoint: the same command starts it again
        short = write_toml(TINY, "short.toml")
        assert main(["train", str(short), "--out", str(out)]) == 0


# -- resume semantics ------------------------------------------------------------------------------


@pytest.fixture
def finished_run(write_toml, tmp_path):
    cfg = write_toml(TINY)
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(out)]) == 0
    return cfg, out


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.widths=[32]", "model.widths"),
        ("early_stopping.patience=3", "early_stopping.patience"),
        ("optimizer.lr=1e12", "optimizer.lr"),
        ("data.name=wine", "data.name"),
        ("train.seed=3", "train.seed"),
    ],
)
def test_resume_refuses_keys_that_shaped_the_checkpoint(finished_run, capsys, override, key):
    _, out = finished_run
    before = _snapshot(out)
    _user_error(
        capsys,
        ["train", "--resume", str(out), "--set", override],
        f"cannot change {key}",
        "keys that may change: train.epochs",
    )
    assert _snapshot(out) == before


def test_resume_with_more_epochs_trains_on_and_records_them(finished_run, capsys):
    _, out = finished_run
    assert (
        main(
            [
                "train",
                "--resume",
                str(out),
                "--set",
                "train.epochs=5",
                "--set",
                "early_stopping.patience=5",
            ]
        )
        == 0
    )
    import tomllib

    assert tomllib.loads((out / "config.toml").read_text())["train"]["epochs"] == 5
    lines = (out / "history.jsonl").read_text().splitlines()
    epochs = [json.loads(line)["epoch"] for line in lines]
    assert epochs == [1, 2, 3, 4, 5]


def test_resume_with_a_config_argument_must_match(finished_run, write_toml, capsys):
    cfg, out = finished_run
    other = write_toml(TINY.replace("widths = [16]", "widths = [8]"), "other.toml")
    _user_error(capsys, ["train", str(other), "--resume", str(out)], "differs from", "model.widths")
    assert main(["train", str(cfg), "--resume", str(out)]) == 0  # the same config: fine


# -- user errors that were tracebacks ----------------------------------------------------------


@pytest.mark.parametrize("command", ["train", "study", "lr-find"])
def test_out_naming_a_file_exits_2(write_toml, tmp_path, capsys, command):
    cfg = write_toml(TINY)
    target = tmp_path / "a_file"
    target.write_text("keep me")
    _user_error_any(capsys, [command, str(cfg), "--out", str(target)])
    _user_error_any(capsys, [command, str(cfg), "--out", str(target / "below")])
    assert target.read_text() == "keep me"


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        (
            "train.device='cuda'" if not torch.cuda.is_available() else "train.device='cuda:99'",
            "not available in this torch build",
        ),
        ("train.device='banana'", "allowed: cpu"),
        (f"train.seed={2**63}", "train.seed"),
        (f"train.seed={2**32}", "train.seed"),
        ("train.epochs=1000000000000000000000", "train.epochs"),
        ("model.dropout=-0.1", "model.dropout"),
        ("model.widths=[1000000000]", "model.widths"),
        ("model.widths=[1000000,1000000]", "parameters"),
        ("study.metric='val_acc'", "study.metric"),
    ],
)
def test_bad_values_exit_2_before_anything_is_written(
    write_toml, tmp_path, capsys, override, needle
):
    cfg = write_toml(TINY)
    out = tmp_path / "never"
    command = "study" if override.startswith("study.") else "train"
    if command == "study":
        cfg = write_toml(
            TINY + '\n[study]\nsplits = {kind = "kfold", k = 2}\n[[study.variants]]\nname = "a"\n',
            "s.toml",
        )
    status = main([command, str(cfg), "--set", override, "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err and needle in err, err
    assert not out.exists()


def test_a_two_sample_dataset_exits_2(tmp_path, capsys, write_toml):
    data = tmp_path / "two.npz"
    np.savez(data, X=np.random.rand(2, 3).astype("float32"), y=np.array([0, 1]))
    cfg = write_toml(
        TINY.replace('name = "moons"', f'name = "{data}"').replace(
            "options = { n_samples = 300 }\n", ""
        )
    )
    _user_error_any(capsys, ["train", str(cfg), "--out", str(tmp_path / "o")])


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04", os.urandom(256)])
def test_damaged_checkpoint_on_resume_and_diagnose(finished_run, capsys, content):
    _, out = finished_run
    (out / "checkpoints" / "last.pt").write_bytes(content)
    (out / "model.pt").write_bytes(content)
    (out / "summary.json").unlink()
    err = _user_error(capsys, ["train", "--resume", str(out)], "damaged or not a goodfit")
    assert "weights_only=False" not in err
    status = main(["diagnose", "curvature", str(out), "--out", str(out / "diag")])
    err = capsys.readouterr().err
    assert status == 2 and "damaged or not a goodfit" in err and "weights_only=False" not in err


@pytest.mark.parametrize(
    "args",
    [
        ["--samples", "0"],
        ["--samples", "-5"],
        ["--top-k", "0"],
        ["--set", "model.widths=[4]"],
    ],
)
def test_diagnose_bad_arguments_exit_2(finished_run, capsys, args):
    _, out = finished_run
    status = main(["diagnose", "curvature", str(out), *args, "--out", str(out.parent / "d")])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err, err


def test_augment_preview_refuses_huge_n(write_toml, tmp_path, capsys):
    cfg = write_toml('[data]\nname = "digits"\n[augment]\nops = [{name = "hflip"}]\n')
    status = main(
        ["augment", "preview", str(cfg), "-n", "100000", "--out", str(tmp_path / "p.png")]
    )
    err = capsys.readouterr().err
    assert status == 2 and "-n must be an integer from 1 to 64" in err
    assert not (tmp_path / "p.png").exists()


# -- studies never mix configs -------------------------------------------------------------------


STUDY = (
    TINY
    + """
[study]
splits = { kind = "kfold", k = 2 }
gradient_flow = false

[[study.variants]]
name = "a"

[[study.variants]]
name = "b"
set = { "regularize.l2" = 0.001 }
"""
)


def test_a_study_without_its_study_toml_is_not_mixed_with_another_config(
    write_toml, tmp_path, capsys
):
    cfg = write_toml(STUDY)
    out = tmp_path / "study"
    assert main(["study", str(cfg), "--out", str(out)]) == 0
    (out / "study.toml").unlink()
    before = _snapshot(out / "runs")
    capsys.readouterr()
    status = main(["study", str(cfg), "--set", "train.epochs=2", "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and "different configuration" in err, err
    assert _snapshot(out / "runs") == before
    # even with the marker gone too, a fold result of another config is refused, not reused
    (out / MARKER_NAME).unlink()
    status = main(["study", str(cfg), "--set", "train.epochs=2", "--out", str(out), "--force"])
    err = capsys.readouterr().err
    assert status == 2 and "another study configuration" in err, err
    # the same config resumes: every run is reused
    assert main(["study", str(cfg), "--out", str(out), "--force"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert {f["config_hash"] for v in results["variants"].values() for f in v["folds"]} == {
        results["config_hash"]
    }


def test_plots_are_written_atomically(tmp_path):
    """A figure whose drawing fails mid-write leaves the old file, and no temporary file."""
    from matplotlib.figure import Figure

    from goodfit.atomic import atomic_savefig

    fig = Figure()
    fig.subplots().plot([0, 1], [1, 0])
    path = tmp_path / "lr.png"
    atomic_savefig(fig, path)
    old = path.read_bytes()
    assert old.startswith(b"\x89PNG")

    class Broken(Exception):
        pass

    def fail(*args, **kwargs):
        raise Broken

    fig.savefig = fail
    with pytest.raises(Broken):
        atomic_savefig(fig, path)
    assert path.read_bytes() == old and sorted(p.name for p in tmp_path.iterdir()) == ["lr.png"]
