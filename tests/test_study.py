"""``goodfit study``: up-front validation of every variant, the CLI's user errors, resume, the
results.json schema and statistics (against scipy), the report, and what each fold's run trains
on, early-stops on and is scored on."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import shutil

import numpy as np
import pytest
import torch
from scipy import stats as sps

import goodfit.app.run as run_mod
import goodfit.app.study as study_mod
from goodfit.app.build import load_dataset_from_config, prepare_from_config
from goodfit.app.cli import main
from goodfit.app.config import config_to_toml, parse_config
from goodfit.app.study import prepare_study, run_study
from goodfit.data.splits import make_splits
from goodfit.errors import ConfigError
from goodfit.train.loop import evaluate

#: A tiny study: digits, a small MLP, 3 folds x 2 variants, 2 epochs.
TINY: dict = {
    "data": {"name": "digits", "val_fraction": 0.2},
    "model": {"kind": "mlp", "widths": [16]},
    "optimizer": {"name": "adam", "lr": 0.01},
    "train": {"epochs": 2, "batch_size": 64, "seed": 0},
    "early_stopping": {"monitor": "val_loss", "patience": 2},
    "study": {
        "title": "tiny",
        "splits": {"kind": "stratified_kfold", "k": 3},
        "metric": "val_accuracy",
        "baseline": "base",
        "variants": [
            {"name": "base"},
            {"name": "l2", "description": "L2", "set": {"regularize.l2": 1e-3}},
        ],
    },
}
N_FOLDS, VARIANTS = 3, ["base", "l2"]


def _study(**changes) -> dict:
    data = copy.deepcopy(TINY)
    for key, value in changes.items():
        section, name = key.split("__")
        data[section][name] = value
    return data


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """The tiny study run once; tests that change the folder work on a copy."""
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    out = tmp_path_factory.mktemp("study") / "out"
    results = run_study(copy.deepcopy(TINY), out, progress=False)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(det, warn_only=warn_only)
    return out, results


# -- validation before training -------------------------------------------------------------------


def _three_variants(bad: dict) -> dict:
    data = _study()
    data["study"]["variants"] = [
        {"name": "base"},
        {"name": "l2", "set": {"regularize.l2": 1e-3}},
        {"name": "broken", "set": bad},
    ]
    return data


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ({"optimizer.lr": -1.0}, "lr"),  # a schema error (pydantic)
        ({"optimizer.betas_typo": 0.9}, "betas_typo"),  # an error of the optimizer's factory
        ({"model.dropout": {"kind": "nope", "p": 0.2}}, "nope"),  # an error building the model
    ],
)
def test_bad_third_variant_fails_before_any_training(tmp_path, monkeypatch, bad, key):
    calls = []
    monkeypatch.setattr(study_mod, "_run_one", lambda *a, **k: calls.append(a))
    data = _three_variants(bad)
    with pytest.raises(ConfigError, match=r"variant 'broken'") as info:
        prepare_study(data, "s.toml")
    assert key in str(info.value) and "s.toml" in str(info.value)
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"variant 'broken'"):
        run_study(data, out, source="s.toml", progress=False)
    assert calls == []
    assert not (out / "runs").exists()


def test_prepare_study_returns_every_variant_config():
    plan = prepare_study(_three_variants({"optimizer.lr": 0.5}))
    base, study, variants = plan.base, plan.study, plan.variants
    assert list(variants) == ["base", "l2", "broken"]
    assert variants["broken"].optimizer.lr == 0.5 and variants["base"].optimizer.lr == 0.01
    assert variants["l2"].regularize.l2 == 1e-3 and base.regularize is None
    assert study.baseline == "base"


def _cli(tmp_path, data, capsys):
    path = tmp_path / "study.toml"
    path.write_text(config_to_toml(data))
    code = main(["study", str(path), "--out", str(tmp_path / "out")])
    return code, capsys.readouterr().err


def test_cli_bad_variant_override_exits_2(tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(study_mod, "_run_one", lambda *a, **k: calls.append(a))
    code, err = _cli(tmp_path, _three_variants({"train.epochs": 0}), capsys)
    assert code == 2
    assert "broken" in err and "epochs" in err
    assert "Traceback" not in err
    assert calls == [] and not (tmp_path / "out" / "runs").exists()


def test_cli_duplicate_variant_names_exit_2(tmp_path, capsys):
    data = _study()
    data["study"]["variants"].append({"name": "l2", "set": {"regularize.l2": 1e-2}})
    code, err = _cli(tmp_path, data, capsys)
    assert code == 2 and "duplicate" in err and "l2" in err and "Traceback" not in err


def test_cli_unknown_baseline_exits_2(tmp_path, capsys):
    data = _study()
    data["study"]["baseline"] = "nobody"
    code, err = _cli(tmp_path, data, capsys)
    assert code == 2 and "nobody" in err and "baseline" in err


def test_cli_bad_variant_name_and_unknown_study_key_exit_2(tmp_path, capsys):
    data = _study()
    data["study"]["variants"][1]["name"] = "bad/name"
    code, err = _cli(tmp_path, data, capsys)
    assert code == 2 and "variants" in err
    data = _study()
    data["study"]["colour"] = "red"
    code, err = _cli(tmp_path, data, capsys)
    assert code == 2 and "colour" in err


def test_cli_leave_p_out_guard_exits_2(tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(study_mod, "_run_one", lambda *a, **k: calls.append(a))
    data = _study()
    data["study"]["splits"] = {"kind": "leave_p_out", "p": 2}
    code, err = _cli(tmp_path, data, capsys)
    # digits has 1437 training rows: comb(1437, 2) = 1,031,766 fits
    assert code == 2 and "1,031,766" in err and "study.splits" in err
    assert "Traceback" not in err and calls == []


# -- results.json and report ----------------------------------------------------------------------


def test_results_schema(tiny_study):
    out, _ = tiny_study
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["metric"] == "val_accuracy" and on_disk["baseline"] == "base"
    assert list(on_disk["variants"]) == VARIANTS
    assert on_disk["splits"]["kind"] == "stratified_kfold"
    assert on_disk["dataset"]["name"] == "digits"
    for name in VARIANTS:
        folds = on_disk["variants"][name]["folds"]
        assert [f["fold"] for f in folds] == list(range(N_FOLDS))
        for f in folds:
            for part in ("train_", "val_", "test_"):
                for m in ("accuracy", "loss"):
                    v = f["scores"][part + m]
                    assert isinstance(v, float) and np.isfinite(v)
            assert 0.0 <= f["scores"]["val_accuracy"] <= 1.0
            assert len(f["history"]) == f["epochs_run"] <= 2
            # the folder of each run holds its summary, equal to the entry in results.json
            summary = json.loads(
                (out / "runs" / name / f"fold{f['fold']}" / "summary.json").read_text()
            )
            assert summary["scores"] == f["scores"]
    assert on_disk["variants"]["l2"]["overrides"] == {"regularize.l2": 1e-3}
    assert on_disk["environment"]["wall_seconds"] > 0
    assert (out / "study.toml").exists()


def test_statistics_match_scipy(tiny_study):
    out, _ = tiny_study
    res = json.loads((out / "results.json").read_text())
    a = res["analysis"]
    scores = {
        n: [f["scores"]["val_accuracy"] for f in res["variants"][n]["folds"]] for n in VARIANTS
    }
    for name in VARIANTS:
        s = a["ranking"]["summaries"][name]
        x = np.asarray(scores[name])
        assert s["mean"] == pytest.approx(x.mean(), rel=1e-12)
        if x.min() == x.max():
            assert s["std"] == 0.0
        else:
            assert s["std"] == pytest.approx(x.std(ddof=1), rel=1e-12)
            lo, hi = sps.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
            assert (s["ci_low"], s["ci_high"]) == pytest.approx((lo, hi), rel=1e-9)
    # every score key gets a per-variant summary too (e.g. test accuracy)
    test_acc = [f["scores"]["test_accuracy"] for f in res["variants"]["l2"]["folds"]]
    assert a["metrics"]["test_accuracy"]["l2"]["mean"] == pytest.approx(np.mean(test_acc))
    c = a["ranking"]["comparisons"]["l2"]
    diff = np.subtract(scores["l2"], scores["base"])
    assert c["mean_diff"] == pytest.approx(diff.mean(), abs=1e-12)
    if np.all(diff == 0):
        assert c["t_pvalue"] == 1.0
    elif np.all(diff == diff[0]):
        assert c["t_pvalue"] == 0.0
    else:
        t = sps.ttest_rel(scores["l2"], scores["base"])
        assert c["t_pvalue"] == pytest.approx(t.pvalue, rel=1e-9)
        assert c["t_stat"] == pytest.approx(t.statistic, rel=1e-9)
        w = sps.wilcoxon(scores["l2"], scores["base"], zero_method="wilcox")
        assert c["wilcoxon_pvalue"] == pytest.approx(w.pvalue, rel=1e-9)
        assert c["significant"] == (t.pvalue < 0.05)
    best = max(VARIANTS, key=lambda n: (np.mean(scores[n]), n == VARIANTS[0]))
    assert a["ranking"]["best"] == best


def test_workers_give_the_same_results_as_a_serial_study(tiny_study, tmp_path, torch_globals):
    """Runs fanned out over 2 spawned processes are seeded alone: same fold scores."""
    _, serial = tiny_study
    parallel = run_study(copy.deepcopy(TINY), tmp_path / "par", progress=False, workers=2)
    for name in VARIANTS:
        a = [f["scores"] for f in serial["variants"][name]["folds"]]
        b = [f["scores"] for f in parallel["variants"][name]["folds"]]
        assert [s["val_accuracy"] for s in a] == [s["val_accuracy"] for s in b]
        # losses may differ in the last bits: 1 thread per worker vs 2 changes summation order
        assert np.allclose([s["val_loss"] for s in a], [s["val_loss"] for s in b], rtol=1e-5)


def test_report_is_self_contained(tiny_study):
    out, _ = tiny_study
    html = (out / "report.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html")
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", html, flags=re.I)
    assert all(not r.lower().startswith(("http:", "https:", "//")) for r in refs), refs
    assert "url(http" not in html.lower() and "@import" not in html.lower()
    assert "<script" not in html.lower()
    assert "data:image/png;base64," in html
    for name in VARIANTS:
        assert name in html


# -- resume ---------------------------------------------------------------------------------------


_REAL_RUN_ONE = study_mod._run_one


class Killed(Exception):
    """Stands for the study process being killed in the middle of a run."""


def _counting(monkeypatch, fail_after: int | None = None):
    calls = []
    real = _REAL_RUN_ONE

    def run_one(cfg, dataset, fold, split, run_dir, *rest):
        if fail_after is not None and len(calls) >= fail_after:
            raise Killed
        calls.append((run_dir.parent.name, fold))
        return real(cfg, dataset, fold, split, run_dir, *rest)

    monkeypatch.setattr(study_mod, "_run_one", run_one)
    return calls


def test_resume_reruns_only_missing_run(tiny_study, tmp_path, monkeypatch, torch_globals):
    src, first = tiny_study
    out = tmp_path / "out"
    shutil.copytree(src, out)
    (out / "runs" / "l2" / "fold1" / "summary.json").unlink()
    summaries = sorted(out.glob("runs/*/fold*/summary.json"))
    assert len(summaries) == 2 * N_FOLDS - 1
    mtimes = {p: p.stat().st_mtime_ns for p in summaries}
    calls = _counting(monkeypatch)
    results = run_study(copy.deepcopy(TINY), out, progress=False)
    assert calls == [("l2", 1)]
    assert {p: p.stat().st_mtime_ns for p in summaries} == mtimes
    assert (out / "runs" / "l2" / "fold1" / "summary.json").exists()
    on_disk = json.loads((out / "results.json").read_text())
    for name in VARIANTS:
        assert [f["fold"] for f in on_disk["variants"][name]["folds"]] == list(range(N_FOLDS))
    # the re-run is the same computation (same seed, same fold) as the first time
    again = results["variants"]["l2"]["folds"][1]["scores"]
    assert again == pytest.approx(first["variants"]["l2"]["folds"][1]["scores"], rel=1e-6)


def test_killed_study_resumes(tmp_path, monkeypatch, torch_globals):
    data = _study()
    data["study"]["splits"] = {"kind": "kfold", "k": 2}
    out = tmp_path / "out"
    _counting(monkeypatch, fail_after=3)
    with pytest.raises(Killed):
        run_study(copy.deepcopy(data), out, progress=False)
    assert len(list(out.glob("runs/*/fold*/summary.json"))) == 3
    assert not (out / "results.json").exists()
    calls = _counting(monkeypatch)
    run_study(copy.deepcopy(data), out, progress=False)
    assert calls == [("l2", 1)]
    res = json.loads((out / "results.json").read_text())
    assert all(len(res["variants"][n]["folds"]) == 2 for n in VARIANTS)
    # a different configuration on the same folder is refused before anything runs
    changed = copy.deepcopy(data)
    changed["optimizer"]["lr"] = 0.02
    calls.clear()
    with pytest.raises(ConfigError, match="different configuration"):
        run_study(changed, out, progress=False)
    assert calls == []


# -- what one fold's run trains on, early-stops on and is scored on -------------------------------


def _fold_data(cfg, ds, fold_train, fold_val, seed):
    """A fold's data exactly as the study prepares it (the one data-preparation path)."""
    prepared = prepare_from_config(cfg, ds, seed=seed, pool=fold_train)
    return prepared, prepared.rows(fold_val)


def test_fold_data_parts_are_disjoint_and_standardized_on_train_only(tmp_path):
    cfg = parse_config({"data": {"name": "wine", "val_fraction": 0.25, "standardize": False}})
    ds = load_dataset_from_config(cfg.data)
    # an id column makes each row recognisable after the split
    ids = torch.arange(ds.n_train, dtype=ds.X_train.dtype)
    ds = dataclasses.replace(
        ds,
        X_train=torch.cat([ids[:, None], ds.X_train], 1),
        X_test=torch.cat([torch.full((ds.n_test, 1), -1.0), ds.X_test], 1),
    )
    fold_train, fold_val = make_splits("stratified_kfold", ds.n_train, ds.y_train.numpy(), k=3)[1]
    prepared, held_out = _fold_data(cfg, ds, fold_train, fold_val, seed=4)
    tr = prepared.train[0][:, 0].long().tolist()
    es = prepared.val[0][:, 0].long().tolist()
    ho = held_out[0][:, 0].long().tolist()
    assert not set(tr) & set(es) and not set(tr) & set(ho) and not set(es) & set(ho)
    assert sorted(tr + es) == sorted(fold_train.tolist())
    assert sorted(ho) == sorted(fold_val.tolist())
    assert len(es) == pytest.approx(0.25 * len(fold_train), abs=1)
    assert torch.equal(prepared.train[1], ds.y_train[tr])
    assert torch.equal(held_out[1], ds.y_train[ho])
    # stratified: the early-stopping part keeps the class ratios of the fold's training part
    for c in range(3):
        frac_fold = float((ds.y_train[fold_train] == c).float().mean())
        assert float((prepared.val[1] == c).float().mean()) == pytest.approx(frac_fold, abs=0.05)

    cfg.data.standardize = True
    prepared_s, held_out_s = _fold_data(cfg, ds, fold_train, fold_val, seed=4)
    raw = ds.X_train.double().numpy()
    mu, sd = raw[tr].mean(0), raw[tr].std(0)  # population std, as StandardScaler
    for part, rows in ((prepared_s.train[0], tr), (prepared_s.val[0], es), (held_out_s[0], ho)):
        np.testing.assert_allclose(
            part.double().numpy(), (raw[rows] - mu) / sd, rtol=1e-5, atol=1e-5
        )
    np.testing.assert_allclose(
        prepared_s.test[0].double().numpy(),
        (ds.X_test.double().numpy() - mu) / sd,
        rtol=1e-5,
        atol=1e-5,
    )
    # with statistics from all of the fold they would differ
    all_rows = tr + es + ho
    assert not np.allclose(raw[all_rows].mean(0)[1:], mu[1:], rtol=1e-3)


def test_run_one_trains_on_train_part_and_scores_held_out(tmp_path, monkeypatch, torch_globals):
    data = _study(data__name="wine", data__val_fraction=0.25)
    data["model"] = {"kind": "mlp", "widths": [8]}
    variants = prepare_study(data).variants
    cfg = variants["base"]
    ds = load_dataset_from_config(cfg.data)
    split = make_splits("stratified_kfold", ds.n_train, ds.y_train.numpy(), k=2)[0]
    seen = {}
    real = run_mod.run_config

    def spy(cfg, out_dir, **kwargs):
        seen["data"] = kwargs["data"]
        result = real(cfg, out_dir, **kwargs)
        seen["model"] = result.model
        return result

    monkeypatch.setattr(run_mod, "run_config", spy)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = study_mod._run_one(
        cfg,
        ds,
        0,
        split,
        run_dir,
        False,
        {"gradient_flow": False, "lr_find": False, "curvature": False},
        "hash",
    )
    expected, held_out = _fold_data(cfg, ds, split[0], split[1], cfg.train.seed + 0)
    prepared = seen["data"]
    assert torch.equal(prepared.train[0], expected.train[0])
    assert torch.equal(prepared.val[0], expected.val[0])
    n_fold_train = len(split[0])
    assert len(prepared.train[0]) + len(prepared.val[0]) == n_fold_train
    model = seen["model"]
    task = ds.task
    assert result["scores"]["val_accuracy"] == evaluate(model, *held_out, task=task)["accuracy"]
    assert result["scores"]["val_loss"] == pytest.approx(evaluate(model, *held_out)["loss"])
    assert result["scores"]["train_loss"] == pytest.approx(evaluate(model, *prepared.train)["loss"])
    assert result["scores"]["es_val_loss"] == pytest.approx(evaluate(model, *prepared.val)["loss"])
    # early stopping watched the early-stopping part: its per-epoch val_loss is measured there
    # (the restored best epoch's val_loss equals the final model's loss on that part)
    best = next(r for r in result["history"] if r["epoch"] == result["best_epoch"])
    assert best["val_loss"] == pytest.approx(result["scores"]["es_val_loss"], rel=1e-5)
    assert json.loads((run_dir / "summary.json").read_text())["scores"] == pytest.approx(
        result["scores"]
    )


def test_fold_data_tiny_early_stopping_part_falls_back_to_unstratified():
    # 1% of a 71-row fold is 1 row, fewer than the 3 classes: stratifying is impossible, so the
    # split falls back to a plain random one instead of failing with scikit-learn's traceback
    cfg = parse_config({"data": {"name": "wine", "val_fraction": 0.01}})
    ds = load_dataset_from_config(cfg.data)
    fold_train, fold_val = make_splits("kfold", ds.n_train, k=2)[0]
    prepared, held_out = _fold_data(cfg, ds, fold_train, fold_val, seed=0)
    assert len(prepared.val[0]) == 1
    assert len(prepared.train[0]) == len(fold_train) - 1 and len(held_out[0]) == len(fold_val)


def test_study_records_lr_range_test_and_curvature_when_configured(tmp_path, torch_globals):
    data = _study()
    data["study"]["splits"] = {"kind": "stratified_kfold", "k": 2}
    data["study"].update(lr_find=True, curvature=True, gradient_flow=False)
    results = run_study(data, tmp_path / "out", progress=False)
    for name in VARIANTS:
        first, second = results["variants"][name]["folds"]
        lf, cv = first["lr_find"], first["curvature"]
        assert 1e-6 <= lf["suggestion"] <= 10.0 and lf["reading"]
        assert cv["max_stable_lr"] == pytest.approx(2.0 / cv["lambda_max"])
        assert cv["lambda_min"] <= cv["lambda_max"]
        assert "lr_find" not in second and "curvature" not in second  # first fold only
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Learning-rate range test" in html and "Curvature at the trained weights" in html


@pytest.mark.parametrize(
    ("study", "needle"),
    [
        ({"test": "wilcoxon"}, "study.test"),
        ({"alpha": 1.5}, "study.alpha"),
        ({"alpha": 0}, "study.alpha"),
        ({"rope": -0.01}, "study.rope"),
        ({"test": "5x2cv_f", "splits": {"kind": "kfold", "k": 5}}, "study.test = '5x2cv_f'"),
        ({"test": "5x2cv_t", "splits": {"kind": "stratified_kfold", "k": 10}}, 'kind = "5x2"'),
    ],
)
def test_bad_comparison_settings_exit_2_before_training(tmp_path, capsys, study, needle):
    data = _study()
    data["study"].update(study)
    path = tmp_path / "s.toml"
    path.write_text(config_to_toml(data))
    assert main(["study", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


def test_results_hold_a_comparison_per_variant_and_every_split_score(tmp_path, torch_globals):
    data = _study()
    data["study"]["splits"] = {"kind": "5x2"}
    results = run_study(data, tmp_path / "out", progress=False)
    assert results["test"] == "5x2cv_f"  # the default on 5x2 splits
    baseline = results["baseline"]
    keys = {
        "mean_diff",
        "ci_low",
        "ci_high",
        "test",
        "pvalue",
        "pvalue_holm",
        "p_better",
        "p_equivalent",
        "p_worse",
        "n_splits",
        "n_train",
        "n_test",
    }
    for name, variant in results["variants"].items():
        assert len(variant["folds"]) == 10
        assert all("val_accuracy" in f["scores"] for f in variant["folds"])
        if name == baseline:
            assert "comparison" not in variant
        else:
            assert keys <= set(variant["comparison"]) and variant["comparison"]["n_splits"] == 10
