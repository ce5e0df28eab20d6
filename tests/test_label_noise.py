"""Label noise (data.label_noise), nested training subsets (data.train_size) and init.pt."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from goodfit.app.build import load_dataset_from_config, prepare_from_config
from goodfit.app.cli import main
from goodfit.app.config import load_config, parse_config
from goodfit.data.label_noise import flip_labels
from goodfit.errors import ConfigError, DataError


def _prepared(**data):
    cfg = parse_config({"data": {"name": "digits", "val_fraction": 0.2, **data}})
    ds = load_dataset_from_config(cfg.data)
    return cfg, ds, prepare_from_config(cfg, ds)


def test_flip_labels_replaces_exactly_the_fraction_by_other_classes():
    y = np.arange(1000) % 10
    new, idx = flip_labels(y, 0.15, 10, 3)
    changed = np.flatnonzero(new != y)
    assert len(idx) == 150 and np.array_equal(changed, idx)  # every chosen label differs
    assert new.min() >= 0 and new.max() <= 9
    again, idx2 = flip_labels(y, 0.15, 10, 3)
    assert np.array_equal(again, new) and np.array_equal(idx, idx2)  # seeded


def test_label_noise_only_in_the_training_part():
    _, ds, clean = _prepared()
    _, _, noisy = _prepared(label_noise=0.2)
    n_train = len(clean.train[1])
    assert len(noisy.noisy) == round(0.2 * n_train)
    changed = torch.nonzero(noisy.train[1] != clean.train[1]).flatten()
    assert len(changed) == len(noisy.noisy)
    # the replaced rows, named by dataset row, hold the noisy labels; their clean labels differ
    assert bool((ds.y_train[noisy.noisy] != noisy.noisy_labels).all())
    assert torch.equal(noisy.val[1], clean.val[1])
    assert torch.equal(noisy.test[1], clean.test[1])
    assert torch.equal(noisy.train[0], clean.train[0])


def test_train_size_keeps_that_many_rows():
    _, _, small = _prepared(train_size=200, val_fraction=0.0)
    _, _, split = _prepared(train_size=200, val_fraction=0.25)
    assert len(small.train[0]) == 200
    assert len(split.train[0]) + len(split.val[0]) == 200


def test_train_size_subsets_nest():
    from goodfit.data.prepare import _subsample

    pool = torch.arange(1000)
    a, b = _subsample(pool, 100, 7), _subsample(pool, 400, 7)
    assert set(a.tolist()) <= set(b.tolist())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "poly", "label_noise": 0.1}, "classification"),
        ({"name": "digits", "label_noise": 1.0}, "data.label_noise"),
        ({"name": "digits", "label_noise": -0.1}, "data.label_noise"),
        ({"name": "digits", "train_size": 10**6}, "data.train_size"),
    ],
)
def test_bad_label_noise_exits_2_before_training(tmp_path, capsys, data, message):
    cfg = tmp_path / "c.toml"
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in data.items())
    cfg.write_text(f"[data]\n{lines}\n[train]\nepochs = 1\n")
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not (out / "model.pt").exists() and not (out / "history.jsonl").exists()


def test_run_folder_keeps_init_and_flipped_rows(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[data]\nname = "digits"\nlabel_noise = 0.1\n[model]\nkind = "mlp"\nwidths = [16]\n'
        "[train]\nepochs = 1\nbatch_size = 64\n"
    )
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(out)]) == 0
    init = torch.load(out / "init.pt", weights_only=True)
    final = torch.load(out / "model.pt", weights_only=True)
    assert init.keys() == final.keys()
    assert not torch.equal(init["1.weight"], final["1.weight"])
    # init.pt is the model the seed builds before training
    from goodfit.app.build import build_model
    from goodfit.train.loop import seed_everything

    config = load_config(out / "config.toml")
    seed_everything(config.train.seed)
    fresh = build_model(config.model, (1, 8, 8), 10)
    assert all(torch.equal(fresh.state_dict()[k], init[k]) for k in init)
    record = json.loads((out / "label_noise.json").read_text())
    assert len(record["indices"]) == round(0.1 * record["n_train"])
    assert all(a != b for a, b in zip(record["clean_labels"], record["noisy_labels"], strict=True))


def test_config_rejects_label_noise_out_of_range():
    with pytest.raises(ConfigError, match=r"data\.label_noise"):
        parse_config({"data": {"label_noise": 1.5}})
    with pytest.raises(DataError, match="classification"):
        prepare_from_config(
            parse_config({"data": {"name": "poly", "label_noise": 0.1}}),
            load_dataset_from_config(parse_config({"data": {"name": "poly"}}).data),
        )
