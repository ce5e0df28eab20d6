"""Validation splits: disjoint and covering, stratified ratios, seed 000's holdout fractions,
leave-p-out guard, parameter validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.model_selection import (
    KFold,
    LeavePOut,
    RepeatedKFold,
    RepeatedStratifiedKFold,
    StratifiedKFold,
)

from goodfit.data.splits import (
    SMALL_DATA_THRESHOLD,
    SPLITTERS,
    make_splits,
    n_splits,
)


def _check_pairs(pairs, n):
    for tr, va in pairs:
        assert tr.dtype == np.int64 and va.dtype == np.int64
        assert len(np.intersect1d(tr, va)) == 0  # disjoint
        assert len(np.unique(tr)) == len(tr) and len(np.unique(va)) == len(va)
        np.testing.assert_array_equal(np.sort(np.concatenate([tr, va])), np.arange(n))  # covering


@pytest.mark.parametrize(
    ("kind", "params", "expected"),
    [
        ("holdout", {}, 1),
        ("kfold", {"k": 7}, 7),
        ("repeated_random", {"n_repeats": 4, "val_fraction": 0.25}, 4),
        ("leave_p_out", {"p": 2, "max_fits": 10_000}, math.comb(23, 2)),
        ("leave_one_out", {}, 23),
    ],
)
def test_pairs_disjoint_and_covering(kind, params, expected):
    n = 23
    pairs = make_splits(kind, n, seed=3, **params)
    assert len(pairs) == expected == n_splits(kind, n, **params)
    _check_pairs(pairs, n)


@pytest.mark.parametrize("kind", ["kfold", "stratified_kfold"])
def test_kfold_validation_parts_partition_the_data(kind):
    n, k = 103, 10
    y = np.arange(n) % 3
    pairs = make_splits(kind, n, y, seed=0, k=k)
    assert len(pairs) == k
    _check_pairs(pairs, n)
    vals = np.concatenate([va for _, va in pairs])
    np.testing.assert_array_equal(np.sort(vals), np.arange(n))  # each sample validated once
    sizes = [len(va) for _, va in pairs]
    assert max(sizes) - min(sizes) <= 1  # "k equal subparts"


def test_kfold_is_sklearn_kfold():
    pairs = make_splits("kfold", 50, seed=11, k=5)
    ref = list(KFold(5, shuffle=True, random_state=11).split(np.zeros((50, 1))))
    for (tr, va), (rtr, rva) in zip(pairs, ref, strict=True):
        np.testing.assert_array_equal(tr, rtr)
        np.testing.assert_array_equal(va, rva)


def test_kfold_default_k_is_10():
    assert len(make_splits("kfold", 100, seed=0)) == 10


def test_stratified_keeps_class_ratios_within_one_sample():
    rng = np.random.default_rng(0)
    y = rng.choice(4, size=517, p=[0.55, 0.25, 0.15, 0.05])
    classes, counts = np.unique(y, return_counts=True)
    k = 10
    for tr, va in make_splits("stratified_kfold", len(y), y, seed=1, k=k):
        for c, total in zip(classes, counts, strict=True):
            in_val = int(np.sum(y[va] == c))
            # each fold holds total/k samples of class c, rounded either way
            assert math.floor(total / k) <= in_val <= math.ceil(total / k)
            assert int(np.sum(y[tr] == c)) == total - in_val


def test_stratified_holdout_and_repeated_keep_ratios():
    y = np.array([0] * 300 + [1] * 100)
    for kind, params in [("holdout", {}), ("repeated_random", {"n_repeats": 3})]:
        for tr, va in make_splits(kind, len(y), y, seed=2, stratify=True, **params):
            assert len(va) == 120  # 30% of 400
            assert abs(np.sum(y[va] == 1) - 30) <= 1  # 25% of 120, to within one sample
            _check_pairs([(tr, va)], len(y))


def test_holdout_fraction_follows_seed_000():
    big = SMALL_DATA_THRESHOLD
    (tr, va) = make_splits("holdout", big, seed=0)[0]
    assert len(va) == math.ceil(0.3 * big) and len(tr) == big - len(va)  # 70/30
    small = SMALL_DATA_THRESHOLD - 1
    (tr, va) = make_splits("holdout", small, seed=0)[0]
    assert len(va) == math.ceil(0.5 * small)  # 50/50 for small data
    (tr, va) = make_splits("holdout", 100, seed=0, val_fraction=0.2)[0]
    assert len(va) == 20


def test_seed_changes_and_fixes_the_split():
    a = make_splits("kfold", 60, seed=0, k=3)
    b = make_splits("kfold", 60, seed=0, k=3)
    c = make_splits("kfold", 60, seed=1, k=3)
    np.testing.assert_array_equal(a[0][1], b[0][1])
    assert not np.array_equal(a[0][1], c[0][1])


def test_leave_p_out_matches_sklearn():
    pairs = make_splits("leave_p_out", 6, seed=0, p=2)
    ref = list(LeavePOut(2).split(np.zeros((6, 1))))
    assert len(pairs) == len(ref) == 15
    for (tr, va), (rtr, rva) in zip(pairs, ref, strict=True):
        np.testing.assert_array_equal(tr, rtr)
        np.testing.assert_array_equal(va, rva)


def test_leave_p_out_guard_names_count_and_suggests_kfold():
    with pytest.raises(ValueError, match=r"comb\(1797, 2\) = 1,613,706 fits") as info:
        make_splits("leave_p_out", 1797, seed=0, p=2)
    assert "max_fits=1,000" in str(info.value) and "kfold" in str(info.value)
    with pytest.raises(ValueError, match="leave_one_out"):
        make_splits("leave_one_out", 1001, seed=0)
    with pytest.raises(ValueError, match="fits"):
        n_splits("leave_p_out", 100, p=3)
    assert len(make_splits("leave_one_out", 1001, seed=0, max_fits=2000)) == 1001


@pytest.mark.parametrize(
    ("kind", "params", "match"),
    [
        ("kfold", {"k": 1}, "k must be an integer >= 2 and <= 50"),
        ("kfold", {"k": 51}, "k must be an integer >= 2 and <= 50"),
        ("stratified_kfold", {"k": 0}, "k must be an integer >= 2"),
        (
            "holdout",
            {"val_fraction": 0.0},
            r"val_fraction must be a finite number > 0 and < 1, got 0.0",
        ),
        ("holdout", {"val_fraction": 1.5}, r"val_fraction must be a finite number > 0 and < 1"),
        (
            "repeated_random",
            {"val_fraction": -0.1},
            r"val_fraction must be a finite number > 0 and < 1",
        ),
        ("repeated_random", {"n_repeats": 0}, "n_repeats must be an integer >= 1"),
        ("leave_p_out", {"p": 50}, "p must be an integer >= 1 and <= 49"),
        ("leave_p_out", {"p": 0}, "p must be an integer >= 1"),
    ],
)
def test_bad_params_raise_value_error(kind, params, match):
    y = np.arange(50) % 2
    with pytest.raises(ValueError, match=match):
        make_splits(kind, 50, y, seed=0, **params)


def test_unknown_kind_and_params():
    with pytest.raises(ValueError, match="splits kind must be one of"):
        make_splits("bootstrap", 10, seed=0)
    with pytest.raises(TypeError):
        make_splits("kfold", 10, seed=0, folds=3)
    with pytest.raises(ValueError, match="needs the class labels"):
        make_splits("stratified_kfold", 10, seed=0, k=2)
    with pytest.raises(ValueError, match="n_samples must be an integer >= 2"):
        make_splits("kfold", 1, seed=0)


def test_n_splits_validates_up_front():
    with pytest.raises(TypeError, match="folds"):
        n_splits("kfold", 100, folds=5)
    with pytest.raises(ValueError, match=r"val_fraction must be a finite number > 0 and < 1"):
        n_splits("holdout", 100, val_fraction=2.0)
    with pytest.raises(ValueError, match="k must be an integer >= 2 and <= 100"):
        n_splits("stratified_kfold", 100, k=101)
    assert n_splits("stratified_kfold", 100, k=5, shuffle=False) == 5


def test_registry_names_are_snake_case():
    assert all(name == name.lower() and " " not in name for name in SPLITTERS)


# -- repeated k-fold and 5x2 -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "params", "expected"),
    [
        ("repeated_kfold", {"k": 3, "repeats": 4}, 12),
        ("repeated_kfold", {}, 100),
        ("repeated_stratified_kfold", {"k": 5, "repeats": 2}, 10),
        ("5x2", {}, 10),
    ],
)
def test_repeated_kinds_count_and_partition_each_repetition(kind, params, expected):
    n = 103
    y = np.arange(n) % 3
    pairs = make_splits(kind, n, y, seed=4, **params)
    assert len(pairs) == expected == n_splits(kind, n, **params)
    _check_pairs(pairs, n)
    k = params.get("k", 2 if kind == "5x2" else 10)
    for r in range(expected // k):  # the validation parts of one repetition partition the data
        vals = np.concatenate([va for _, va in pairs[r * k : (r + 1) * k]])
        np.testing.assert_array_equal(np.sort(vals), np.arange(n))
    assert not np.array_equal(pairs[0][1], pairs[k][1])  # a fresh shuffle per repetition


def test_repeated_kinds_are_sklearn_splitters():
    y = np.arange(60) % 2
    x = np.zeros((60, 1))
    cases = [
        ("repeated_kfold", {}, RepeatedKFold(n_splits=3, n_repeats=2, random_state=7).split(x)),
        (
            "repeated_stratified_kfold",
            {},
            RepeatedStratifiedKFold(n_splits=3, n_repeats=2, random_state=7).split(x, y),
        ),
    ]
    for kind, _, ref in cases:
        pairs = make_splits(kind, 60, y, seed=7, k=3, repeats=2)
        for (tr, va), (rtr, rva) in zip(pairs, ref, strict=True):
            np.testing.assert_array_equal(tr, rtr)
            np.testing.assert_array_equal(va, rva)


def test_5x2_is_five_stratified_two_fold_splits_in_order():
    rng = np.random.default_rng(0)
    y = rng.choice(2, size=300, p=[0.7, 0.3])
    pairs = make_splits("5x2", len(y), y, seed=10)
    ref = [
        s
        for i in range(5)
        for s in StratifiedKFold(2, shuffle=True, random_state=10 + i).split(np.zeros((300, 1)), y)
    ]
    for (tr, va), (rtr, rva) in zip(pairs, ref, strict=True):
        np.testing.assert_array_equal(tr, rtr)
        np.testing.assert_array_equal(va, rva)
    for i in range(5):  # the two folds of a repetition swap roles
        (tr1, va1), (tr2, va2) = pairs[2 * i], pairs[2 * i + 1]
        np.testing.assert_array_equal(np.sort(tr1), np.sort(va2))
        np.testing.assert_array_equal(np.sort(tr2), np.sort(va1))
        assert abs(len(va1) - len(va2)) <= 1
        assert abs(np.sum(y[va1] == 1) - np.sum(y[va2] == 1)) <= 1  # stratified


def test_5x2_without_labels_is_plain_kfold():
    pairs = make_splits("5x2", 51, seed=3)
    ref = [
        s
        for i in range(5)
        for s in KFold(2, shuffle=True, random_state=3 + i).split(np.zeros((51, 1)))
    ]
    for (tr, va), (rtr, rva) in zip(pairs, ref, strict=True):
        np.testing.assert_array_equal(tr, rtr)
        np.testing.assert_array_equal(va, rva)


@pytest.mark.parametrize(
    ("kind", "params", "match"),
    [
        ("repeated_kfold", {"k": 1}, "k must be an integer >= 2 and <= 50"),
        ("repeated_kfold", {"repeats": 0}, "repeats must be an integer >= 1"),
        ("repeated_stratified_kfold", {"k": 51}, "k must be an integer >= 2 and <= 50"),
        ("repeated_stratified_kfold", {"repeats": -1}, "repeats must be an integer >= 1"),
    ],
)
def test_repeated_bad_params(kind, params, match):
    y = np.arange(50) % 2
    with pytest.raises(ValueError, match=match):
        make_splits(kind, 50, y, seed=0, **params)
    with pytest.raises(ValueError, match=match):
        n_splits(kind, 50, **params)


def test_repeated_and_5x2_label_and_size_checks():
    with pytest.raises(ValueError, match="repeated_stratified_kfold needs the class labels"):
        make_splits("repeated_stratified_kfold", 20, seed=0)
    with pytest.raises(ValueError, match="k=5 is larger than the number of samples of every class"):
        make_splits("repeated_stratified_kfold", 8, np.arange(8) % 2, seed=0, k=5)
    with pytest.raises(ValueError, match="5x2 needs n_samples >= 4"):
        make_splits("5x2", 3, seed=0)
    with pytest.raises(ValueError, match="5x2 needs n_samples >= 4"):
        n_splits("5x2", 3)
    with pytest.raises(TypeError, match="'5x2'"):
        n_splits("5x2", 100, k=3)
    with pytest.raises(TypeError):
        make_splits("repeated_kfold", 100, seed=0, n_repeats=3)
