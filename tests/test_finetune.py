"""Pretraining and fine-tuning: ``model.init_from`` restores a run's weights bit-for-bit (or
names the mismatching layer; a new head can be kept), frozen parameters do not change, and
per-pattern learning-rate multipliers hold under a schedule."""

from __future__ import annotations

import pytest
import torch

from goodfit.app.build import build_run, prepare_from_config
from goodfit.app.config import parse_config
from goodfit.app.finetune import canonical_name
from goodfit.app.run import run_config
from goodfit.data import load_dataset
from goodfit.errors import ConfigError
from goodfit.train.loop import fit

BASE = {
    "data": {"name": "moons", "options": {"n_samples": 200}},
    "model": {"kind": "mlp", "widths": [8, 8]},
    "train": {"epochs": 2, "batch_size": 32},
}


def _cfg(**sections):
    data = {k: dict(v) for k, v in BASE.items()}
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    return parse_config(data)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("pre") / "run"
    threads = torch.get_num_threads()
    try:
        result = run_config(_cfg(), out, progress=False)
    finally:
        torch.set_num_threads(threads)
    return out, result.model


def _parts(cfg):
    ds = load_dataset(cfg.data.name, standardize=False, **cfg.data.options)
    prepared = prepare_from_config(cfg, ds)
    return build_run(cfg, prepared), prepared


def test_init_from_restores_the_weights_bit_for_bit(pretrained):
    folder, model = pretrained
    parts, _ = _parts(_cfg(model={"init_from": str(folder)}))
    stored = model.state_dict()
    for name, value in parts.model.state_dict().items():
        assert torch.equal(value, stored[name]), name


def test_init_from_names_a_mismatching_layer_or_keeps_a_new_head(pretrained, tmp_path):
    folder, model = pretrained
    with pytest.raises(ConfigError, match=r"layer '2\.weight' has shape \(8, 8\)"):
        _parts(_cfg(model={"init_from": str(folder), "widths": [8, 5]}))
    with pytest.raises(ConfigError, match="no finished run"):
        _parts(_cfg(model={"init_from": str(tmp_path / "nothing")}))
    # another head (3 classes instead of 2): skipped, the trunk still loaded
    cfg = _cfg(
        data={"name": "spirals", "options": {"n_samples": 300, "num_classes": 3}},
        model={"init_from": str(folder), "init_skip_mismatched": True},
    )
    parts, _ = _parts(cfg)
    new = parts.model.state_dict()
    assert torch.equal(new["0.weight"], model.state_dict()["0.weight"])
    assert new["4.weight"].shape == (3, 8)


def test_frozen_parameters_do_not_change_and_the_rest_trains(pretrained):
    folder, _ = pretrained
    cfg = _cfg(model={"init_from": str(folder)}, train={"freeze": ["0.*", "2.weight"]})
    parts, prepared = _parts(cfg)
    before = {k: v.clone() for k, v in parts.model.state_dict().items()}
    fit(parts.model, prepared.train, optimizer=parts.optimizer, epochs=2, progress=False)
    after = parts.model.state_dict()
    for name in ("0.weight", "0.bias", "2.weight"):
        assert torch.equal(after[name], before[name]), name
    assert not torch.equal(after["2.bias"], before["2.bias"])
    assert not torch.equal(after["4.weight"], before["4.weight"])
    with pytest.raises(ConfigError, match=r"train\.freeze: pattern 'head\.\*' matches no param"):
        _parts(_cfg(train={"freeze": ["head.*"]}))


def test_lr_multipliers_are_param_groups_that_a_schedule_scales():
    cfg = _cfg(
        optimizer={"name": "torch.SGD", "lr": 0.1},
        train={"lr_multipliers": {"0.*": 0.1, "4.*": 2.0}},
        schedule={"name": "cosine", "interval": "step"},
    )
    parts, prepared = _parts(cfg)
    assert parts.lr == pytest.approx(0.1)
    lrs = {}
    for group in parts.optimizer.param_groups:
        for p in group["params"]:
            lrs[id(p)] = (group["lr_mult"], group["lr"])
    named = dict(parts.model.named_parameters())
    assert lrs[id(named["0.weight"])] == (0.1, pytest.approx(0.01))
    assert lrs[id(named["4.bias"])] == (2.0, pytest.approx(0.2))
    assert lrs[id(named["2.weight"])] == (1.0, pytest.approx(0.1))
    fit(parts.model, prepared.train, optimizer=parts.optimizer, epochs=1, progress=False,
        callbacks=parts.callbacks, max_steps=3)  # fmt: skip
    rates = {g["lr_mult"]: g["lr"] for g in parts.optimizer.param_groups}
    torch.testing.assert_close(rates[0.1] / rates[1.0], 0.1)
    torch.testing.assert_close(rates[2.0] / rates[1.0], 2.0)
    assert rates[1.0] < 0.1  # the cosine schedule moved the base rate


def test_canonical_names_read_parametrized_weights_as_plain():
    assert canonical_name("0.parametrizations.weight.original") == "0.weight"
    assert canonical_name("net.4.bias") == "net.4.bias"


def test_init_from_a_weight_noise_run_into_a_plain_model(pretrained, tmp_path):
    folder, model = pretrained
    noisy = _cfg(model={"init_from": str(folder)}, weight_noise={"sigma": 0.1})
    parts, _ = _parts(noisy)
    orig = parts.model.get_submodule("0").parametrizations.weight.original
    assert torch.equal(orig, model.state_dict()["0.weight"])
