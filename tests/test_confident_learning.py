"""Confident learning (Northcutt, Jiang & Chuang 2021) against a plain-Python transcription of
the paper's rules, and `goodfit clean` end to end: suspects found, written, excluded."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from goodfit.app.build import load_dataset_from_config, prepare_from_config
from goodfit.app.cli import main
from goodfit.app.config import parse_config
from goodfit.data import load_dataset
from goodfit.select.confident_learning import confident_learning


def transcription(labels, probs):
    """The paper's eq. (2) thresholds, eq. (1) confident joint and the off-diagonal issues,
    ranked by self-confidence, with loops (first index wins a tie, as argmax)."""
    n, k = len(probs), len(probs[0])
    t = []
    for j in range(k):
        mine = [probs[i][j] for i in range(n) if labels[i] == j]
        t.append(sum(mine) / len(mine))
    C = [[0] * k for _ in range(k)]
    issues = []
    for i in range(n):
        best, best_p = None, -1.0
        for j in range(k):
            if probs[i][j] >= t[j] and probs[i][j] > best_p:
                best, best_p = j, probs[i][j]
        if best is None:
            continue
        C[labels[i]][best] += 1
        if best != labels[i]:
            issues.append((probs[i][labels[i]], i, best))
    issues.sort(key=lambda item: item[0])  # stable: ties keep index order
    return t, C, [i for _, i, _ in issues], {i: j for _, i, j in issues}


def test_confident_learning_matches_the_transcription():
    rng = np.random.default_rng(0)
    n, k = 300, 4
    labels = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 3.0 * np.eye(k)[labels]
    flip = rng.choice(n, 20, replace=False)
    labels[flip] = (labels[flip] + 1 + rng.integers(0, k - 1, 20)) % k  # noisy given labels
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    probs[5] = [0.25, 0.25, 0.25, 0.25]  # a tie
    got = confident_learning(labels, probs)
    t, C, issues, suggested = transcription(labels.tolist(), probs.tolist())
    np.testing.assert_allclose(got.thresholds, t, rtol=1e-12)
    assert got.confident_joint.tolist() == C
    assert got.issues.tolist() == issues
    assert {int(i): int(got.suggested[i]) for i in got.issues} == suggested
    hits = len(set(issues) & set(flip.tolist()))
    # far above chance (a random pick of as many samples would hit 20/300 of them)
    assert hits / len(flip) > 0.5 and hits / len(issues) > 0.5
    # eq. (3): rows rescaled to the class counts, normalized to sum 1
    counts = np.bincount(labels, minlength=k)
    Cn = np.asarray(C, float)
    Q = Cn / Cn.sum(1, keepdims=True) * counts[:, None]
    np.testing.assert_allclose(got.joint, Q / Q.sum())


def _blobs(path, n=150, flips=6, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n // 3)
    X = rng.normal(size=(n, 5)) + 4.0 * np.eye(3, 5)[y]
    noisy = y.copy()
    idx = rng.choice(n, flips, replace=False)
    noisy[idx] = (y[idx] + 1) % 3
    np.savez(path, X=X, y=noisy, X_test=X[:30], y_test=y[:30])
    return idx


CONFIG = """
[data]
name = "{data}"
val_fraction = 0.2
[model]
kind = "mlp"
widths = [16]
[optimizer]
name = "adam"
lr = 0.02
[train]
epochs = 8
batch_size = 16
[clean]
k = 2
top = 8
"""


def test_goodfit_clean_finds_flipped_labels_and_writes_a_cleaned_npz(tmp_path, torch_globals):
    flipped = _blobs(tmp_path / "blobs.npz")
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.format(data=tmp_path / "blobs.npz"))
    out, npz = tmp_path / "clean", tmp_path / "cleaned.npz"
    assert main(["clean", str(cfg), "--out", str(out), "--write-npz", str(npz)]) == 0
    result = json.loads((out / "clean.json").read_text())
    with open(out / "clean.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["index"]) for r in rows] == [s["index"] for s in result["suspects"]]
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores)  # most suspect first
    ds = load_dataset(tmp_path / "blobs.npz", standardize=False)
    y_given = ds.y_train.numpy()
    probs = np.load(out / "out_of_fold_probs.npy")
    np.testing.assert_allclose(scores, probs[[int(r["index"]) for r in rows],
                                             y_given[[int(r["index"]) for r in rows]]])  # fmt: skip
    # the dataset's own split moved rows: compare flipped samples by their features
    raw = np.load(tmp_path / "blobs.npz")
    flipped_rows = {tuple(np.round(raw["X"][i], 5)) for i in flipped}
    found = {tuple(np.round(ds.X_train[s["index"]].numpy().astype(np.float64), 5))
             for s in result["suspects"]}  # fmt: skip
    assert len(found & flipped_rows) >= 3  # noisy labels among the suspects
    html = (out / "clean.html").read_text()
    assert "Top" in html and "Per-class difficulty" in html
    cleaned = load_dataset(npz, standardize=False)
    assert cleaned.n_train == ds.n_train - len(result["suspects"])
    # the study option: exclude the suspects from the part a run trains on
    clean = {"exclude": True, "suspects": str(out / "clean.json")}
    cfg2 = parse_config({"data": {"name": str(tmp_path / "blobs.npz")}, "clean": clean})
    ds2 = load_dataset_from_config(cfg2.data)
    prepared = prepare_from_config(cfg2, ds2)
    n_kept = len(prepared.train[0]) + len(prepared.val[0])
    assert n_kept == ds.n_train - len(result["suspects"])


def test_clean_refuses_regression_data_and_a_foreign_suspects_file(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\nname = "poly"\n')
    assert main(["clean", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "classification" in capsys.readouterr().err
    (tmp_path / "s.json").write_text(json.dumps({"n_train": 3, "suspects": []}))
    cfg.write_text(
        f'[data]\nname = "wine"\n[clean]\nexclude = true\nsuspects = "{tmp_path}/s.json"\n'
    )
    assert main(["train", str(cfg), "--out", str(tmp_path / "r")]) == 2
    assert "was found on 3 training samples" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["clean.k=1", "clean.exclude=1"])
def test_bad_clean_keys_name_the_key(bad):
    from goodfit.app.config import load_config
    from goodfit.errors import ConfigError

    with pytest.raises(ConfigError, match=bad.split("=")[0]):
        load_config(None, [bad])
