"""Bias/variance diagnosis (seed 001's table) and overfitting onset, on crafted numbers."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from goodfit.diagnose.bias_variance import SEED_TABLE, diagnose, diagnose_variants
from goodfit.diagnose.overfitting import overfitting_onset, smooth_median

SEED_001 = next(Path(__file__).resolve().parents[2].glob("shared/seeds/001_*.txt"), None)


@pytest.mark.skipif(SEED_001 is None, reason="seed notes not available")
def test_table_is_transcribed_from_the_seed():
    lines = SEED_001.read_text().splitlines()
    header = lines.index("Training Error\tValid Error\tCause\tSolution")
    rows = [line.split("\t") for line in lines[header + 1 : header + 4]]
    assert len(rows) == len(SEED_TABLE)
    for (train, val, cause, solutions), row in zip(SEED_TABLE, rows, strict=True):
        assert row[:3] == [train, val, cause]
        plain = re.sub(r"<[^>]+>", "", row[3]).replace(" )", ")")  # drop <b><u> markup
        items = [" ".join(item.split()) for item in plain.split("- ") if item.strip()]
        assert list(solutions) == items


# (train_error, val_error, reference, expected) with the default thresholds 0.02 / 0.02
CASES = [
    (0.15, 0.16, 0.01, "high_bias"),  # row 1: High / High, small gap
    (0.00, 0.08, 0.01, "high_variance"),  # row 2: Low / High
    (0.01, 0.02, 0.01, "good_fit"),  # row 3: Low / Low
    (0.15, 0.30, 0.01, "high_bias_high_variance"),  # both, not in the table
    (0.05, 0.02, 0.01, "good_fit"),  # train above ref but val at ref (dropout during training)
    (0.029, 0.031, 0.0, "high_bias"),  # bias 0.029 > 0.02 and gap 0.002
    (0.019, 0.038, 0.0, "good_fit"),  # bias 0.019 <= 0.02, gap 0.019 <= 0.02
    (0.019, 0.040, 0.0, "high_variance"),  # gap 0.021
]


@pytest.mark.parametrize(("tr", "va", "ref", "expected"), CASES)
def test_diagnose_follows_the_table(tr, va, ref, expected):
    d = diagnose(tr, va, ref)
    assert d["diagnosis"] == expected
    assert d["bias"] == pytest.approx(max(tr - ref, 0.0))
    assert d["variance"] == pytest.approx(va - tr)
    assert d["bias_below_reference"] == (tr < ref)  # clipped, and said so: never a negative bias


def test_remedies_in_words():
    bias = diagnose(0.15, 0.16, 0.01)
    assert bias["cause"] == "High bias"
    assert bias["remedies"] == ["Increase model complexity", "Train for more epochs"]
    assert (bias["train_level"], bias["val_level"]) == ("high", "high")
    var = diagnose(0.0, 0.1, 0.0)
    assert var["cause"] == "High variance" and (var["train_level"], var["val_level"]) == (
        "low",
        "high",
    )
    assert var["remedies"] == [
        "Add more training data (e.g., dataset augmentation)",
        "Use regularization",
        "Use early stopping (train less)",
    ]
    both = diagnose(0.15, 0.30, 0.0)
    assert both["remedies"] == bias["remedies"] + var["remedies"]
    good = diagnose(0.0, 0.0, 0.0)
    assert good["cause"] == "Perfect tradeoff" and good["remedies"] == ["You are done!"]


def test_thresholds_are_configurable_and_validated():
    assert diagnose(0.0, 0.05, 0.0, variance_threshold=0.1)["diagnosis"] == "good_fit"
    assert diagnose(0.06, 0.07, 0.0, bias_threshold=0.1)["diagnosis"] == "good_fit"
    with pytest.raises(ValueError, match=r"bias_threshold must be a finite number >= 0, got -0\.1"):
        diagnose(0.1, 0.1, bias_threshold=-0.1)
    with pytest.raises(ValueError, match="val_error must be a finite number"):
        diagnose(0.1, math.nan)


def test_diagnose_variants_default_reference_is_best_val_error():
    out = diagnose_variants({"base": (0.00, 0.10), "l2": (0.02, 0.03), "tiny": (0.12, 0.13)})
    assert out["l2"]["reference_error"] == 0.03
    assert out["base"]["diagnosis"] == "high_variance"
    assert out["l2"]["diagnosis"] == "good_fit"
    assert out["tiny"]["diagnosis"] == "high_bias"
    given = diagnose_variants({"l2": (0.02, 0.03)}, reference_error=0.0)
    assert given["l2"]["reference_error"] == 0.0


def _history(train, val):
    return [
        {"epoch": i, "train_loss": float(t), "val_loss": float(v)}
        for i, (t, v) in enumerate(zip(train, val, strict=True))
    ]


def test_onset_on_a_crafted_u_curve_with_noise():
    epochs = np.arange(40)
    train = np.exp(-epochs / 10)
    val = 0.3 + 0.002 * (epochs - 15.0) ** 2 / 10  # minimum at epoch 15
    noise = 0.004 * np.where(epochs % 2 == 0, 1.0, -1.0)  # zig-zag noise
    noise[9] = 0.5  # one spike far from the minimum (a median ignores it)
    hist = _history(train, val + noise)
    onset = overfitting_onset(hist)
    # the exact minimum is at 15; the zig-zag shifts the smoothed argmin by at most one epoch
    assert onset is not None and abs(onset - 15) <= 1
    assert overfitting_onset(hist, window=1) in (14, 15, 16)


def test_no_onset_when_validation_keeps_falling_or_training_stops_falling():
    epochs = np.arange(30)
    down = np.exp(-epochs / 10)
    assert overfitting_onset(_history(down, 0.1 + down)) is None
    # validation turns up but training loss rises too: that is not overfitting
    val = 0.3 + 0.001 * (epochs - 10.0) ** 2
    assert overfitting_onset(_history(1 - down, val)) is None
    # minimum one epoch before the end: fewer than `patience` epochs follow it
    val = 0.3 + 0.01 * (epochs - 28.0) ** 2
    assert overfitting_onset(_history(down, val)) is None
    assert overfitting_onset(_history(down, val), patience=1, window=1) == 28
    assert overfitting_onset([]) is None


def test_onset_skips_records_without_validation_and_uses_epoch_numbers():
    val = [1.0, 0.6, 0.4, 0.35, 0.38, 0.45, 0.55, 0.7]
    hist = [
        {"epoch": 10 + i, "train_loss": 1.0 / (i + 1), "val_loss": v} for i, v in enumerate(val)
    ]
    hist.insert(2, {"epoch": 99, "train_loss": 0.5})  # no validation that epoch
    assert overfitting_onset(hist, window=1) == 13
    with pytest.raises(ValueError, match="window must be an odd int"):
        smooth_median([1.0, 2.0], 2)


def test_smooth_median_matches_plain_median():
    x = [5.0, 1.0, 9.0, 2.0, 7.0, 3.0]
    expected = [
        5.0,
        np.median(x[0:3]),
        np.median(x[1:4]),
        np.median(x[2:5]),
        np.median(x[3:6]),
        3.0,
    ]
    np.testing.assert_allclose(smooth_median(x, 3), expected)
