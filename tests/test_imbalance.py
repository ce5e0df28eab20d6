"""Class imbalance: loss weights equal scikit-learn's, the balanced sampler balances the classes
within binomial error, the imbalance-aware metrics match their definitions, and all of it is
reachable from the config (loss, sampler, summary, early-stopping monitor)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

from goodfit.app.build import build_run, load_dataset_from_config, prepare_from_config
from goodfit.app.config import parse_config
from goodfit.app.run import run_config
from goodfit.data.imbalance import BalancedSampler, class_weights
from goodfit.errors import ConfigError
from goodfit.train.class_metrics import class_metrics, class_report

Y = np.array([0] * 60 + [1] * 30 + [2] * 10)


def test_balanced_weights_are_scikit_learns():
    got = class_weights(torch.as_tensor(Y), 3, "balanced")
    ref = compute_class_weight("balanced", classes=np.arange(3), y=Y)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-6)  # float32 of the float64 values
    np.testing.assert_allclose(ref, len(Y) / (3 * np.bincount(Y)))  # n / (K n_k)


def test_a_weight_table_names_classes_by_their_labels():
    got = class_weights(Y, 3, {"cat": 5.0, "dog": 0.5}, classes=("ant", "cat", "dog"))
    ref = compute_class_weight({1: 5.0, 2: 0.5}, classes=np.arange(3), y=Y)
    np.testing.assert_allclose(got.numpy(), ref)
    with pytest.raises(ValueError, match="'cow' is not a class"):
        class_weights(Y, 3, {"cow": 2.0}, classes=("ant", "cat", "dog"))


@pytest.mark.parametrize(
    ("k", "n", "present", "predicted"),
    [
        (3, 100, 3, 3),  # every class true and predicted
        (5, 40, 3, 5),  # classes 3, 4 never true (balanced accuracy skips them)
        (6, 30, 6, 2),  # most classes never predicted (their F1 is 0)
        (4, 25, 2, 2),  # labels 2, 3 neither true nor predicted (F1 0 by zero_division=0)
        (2, 1, 1, 1),  # one sample
    ],
)
def test_class_metrics_are_scikit_learns(k, n, present, predicted):
    from sklearn.metrics import balanced_accuracy_score, f1_score

    g = np.random.default_rng(k * 100 + n)
    for _ in range(20):
        t, p = g.integers(0, present, n), g.integers(0, predicted, n)
        p = np.where(g.random(n) < 0.5, t, p)  # about half right, the rest at random
        got = class_metrics(torch.as_tensor(t), torch.as_tensor(p), k, prefix="val_")
        with warnings.catch_warnings():  # predicted classes absent from t: it warns
            warnings.simplefilter("ignore")
            ba = balanced_accuracy_score(t, p)
        f1 = f1_score(t, p, labels=range(k), average="macro", zero_division=0)
        assert got["val_balanced_accuracy"] == pytest.approx(ba, rel=1e-12)
        assert got["val_macro_f1"] == pytest.approx(f1, rel=1e-12, abs=1e-15)
    # one-hot (soft) targets are reduced to their argmax, as elsewhere
    onehot = F.one_hot(torch.as_tensor(t), k).float()
    assert class_metrics(onehot, torch.as_tensor(p), k) == class_metrics(t, p, k)


def test_the_balanced_sampler_draws_classes_equally_within_binomial_error():
    sampler = BalancedSampler(torch.as_tensor(Y))
    g = torch.Generator().manual_seed(0)
    draws = torch.cat([sampler.epoch_indices(None, len(Y), g) for _ in range(300)])
    freq = np.bincount(Y[draws.numpy()], minlength=3) / len(draws)
    n = len(draws)
    bound = 4 * np.sqrt((1 / 3) * (2 / 3) / n)  # 4 binomial standard errors
    assert np.all(np.abs(freq - 1 / 3) < bound), (freq, bound)
    again = BalancedSampler(torch.as_tensor(Y)).epoch_indices(
        None, 100, torch.Generator().manual_seed(0)
    )
    first = BalancedSampler(torch.as_tensor(Y)).epoch_indices(
        None, 100, torch.Generator().manual_seed(0)
    )
    assert torch.equal(again, first)  # drawn from the loop's generator only


def test_class_report_matches_the_definitions():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 4, 200)
    p = np.where(rng.random(200) < 0.7, t, rng.integers(0, 4, 200))
    p[p == 3] = 2  # class 3 is never predicted: its F1 is 0
    r = class_report(t, p, 4)
    cm = np.zeros((4, 4), int)
    for a, b in zip(t, p, strict=True):
        cm[a, b] += 1
    recall = np.diag(cm) / cm.sum(1)
    precision = np.divide(np.diag(cm), cm.sum(0), out=np.zeros(4), where=cm.sum(0) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(4),
                   where=precision + recall > 0)  # fmt: skip
    assert r["confusion_matrix"] == cm.tolist()
    np.testing.assert_allclose(r["recall"], recall)
    np.testing.assert_allclose(r["balanced_accuracy"], recall.mean())
    np.testing.assert_allclose(r["macro_f1"], f1.mean())


def _cfg(**train):
    return parse_config({"data": {"name": "wine"}, "model": {"widths": [16]},
                         "train": {"epochs": 3, "batch_size": 16, **train}})  # fmt: skip


def test_the_config_weights_the_loss_and_balances_the_draw():
    cfg = _cfg(class_weights="balanced", sampler="balanced")
    prepared = prepare_from_config(cfg, load_dataset_from_config(cfg.data))
    parts = build_run(cfg, prepared)
    y = prepared.train[1]
    w = torch.as_tensor(compute_class_weight("balanced", classes=np.arange(3), y=y.numpy()))
    out = torch.randn(len(y), 3)
    ref = F.cross_entropy(out, y, weight=w.float())
    torch.testing.assert_close(parts.loss(out, y), ref)
    assert isinstance(parts.sampler, BalancedSampler)
    with pytest.raises(ConfigError, match="class_weights"):
        parse_config({"train": {"class_weights": "inverse"}})


def test_macro_f1_is_an_early_stopping_monitor_and_the_summary_has_the_metrics(
    tmp_path, torch_globals
):
    cfg = _cfg(class_weights={"class_1": 2.0}, sampler="balanced", epochs=4)
    cfg = parse_config({**cfg.to_dict(), "early_stopping": {"monitor": "val_macro_f1",
                                                              "patience": 2}})  # fmt: skip
    result = run_config(cfg, tmp_path / "run", progress=False)
    records = [
        json.loads(line) for line in (tmp_path / "run/history.jsonl").read_text().splitlines()
    ]
    f1 = [r["val_macro_f1"] for r in records]
    s = result.summary
    assert s["best_val_macro_f1"] == max(f1)  # maximized ("f1" -> mode max)
    assert s["best_epoch"] == 1 + int(np.argmax(f1))
    assert len(s["test_recall"]) == 3 and np.sum(s["test_confusion_matrix"]) == 36
    np.testing.assert_allclose(s["test_balanced_accuracy"], np.mean(s["test_recall"]))


def test_a_balanced_run_resumes_bit_for_bit(tmp_path):
    import goodfit as gf

    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(60, 3, generator=g), torch.as_tensor(Y[::-1][:60].copy())

    def run(epochs, folder, resume=False):
        torch.manual_seed(0)
        net = torch.nn.Linear(3, 3)
        gf.fit(net, (X, y), optimizer=torch.optim.SGD(net.parameters(), lr=0.1), epochs=epochs,
               batch_size=8, sampler=BalancedSampler(y), checkpoint_dir=folder, resume=resume,
               progress=False)  # fmt: skip
        return net

    whole = run(4, tmp_path / "a")
    run(2, tmp_path / "b")
    resumed = run(4, tmp_path / "b", resume=True)
    for p, q in zip(whole.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"train": {"sampler": "balanced"}}, "need algorithm = '7.1'"),
        ({"early_stopping": {"algorithm": "7.2", "monitor": "val_macro_f1"}}, "not a validation"),
        ({"data": {"name": "poly"}, "train": {"class_weights": "balanced"}}, "regression"),
    ],
)
def test_imbalance_options_that_cannot_apply_are_refused_before_training(extra, message):
    from goodfit.app.build import check_buildable

    data = {"data": {"name": "wine"}, "early_stopping": {"algorithm": "7.2"}}
    for key, table in extra.items():
        data[key] = {**data.get(key, {}), **table}
    cfg = parse_config(data)
    with pytest.raises(ConfigError, match=message):
        check_buildable(cfg, prepare_from_config(cfg, load_dataset_from_config(cfg.data)))
