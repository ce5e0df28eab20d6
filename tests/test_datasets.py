"""Tests for goodfit.data (datasets, builtin, files): built-ins, user files, validation, leak-free
standardization."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from sklearn import datasets as skd
from sklearn.preprocessing import StandardScaler

import goodfit.data as gd
from goodfit.data import (
    DATASETS,
    Dataset,
    apply_standardizer,
    describe_datasets,
    fit_standardizer,
    load_dataset,
)
from goodfit.errors import DataError

FAST_BUILTINS = ["digits", "breast_cancer", "wine", "moons", "spirals", "poly"]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's real cache; each test sees an empty one unless it sets its own."""
    monkeypatch.setenv("GOODFIT_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def mnist1d_run(tmp_path_factory):
    """Generate MNIST-1D once per session into a fresh cache (the only generation, ~5 s).

    ``mnist1d.data.make_dataset`` is wrapped to record the arguments it was called with and
    the package's own output, the reference the loaded tensors are compared with."""
    import mnist1d.data

    real = mnist1d.data.make_dataset
    calls = []

    def recording_make_dataset(args=None, *a, **k):
        out = real(args, *a, **k)
        calls.append(
            (dict(vars(args)), {key: np.copy(out[key]) for key in ("x", "x_test", "y", "y_test")})
        )
        return out

    cache = tmp_path_factory.mktemp("mnist1d_cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("GOODFIT_CACHE", str(cache))
    mp.setattr(mnist1d.data, "make_dataset", recording_make_dataset)
    try:
        random.seed(123)
        np.random.seed(123)
        py_before, np_before = random.random(), np.random.random()
        random.seed(123)
        np.random.seed(123)
        first = load_dataset("mnist1d", standardize=False)
        py_after, np_after = random.random(), np.random.random()
        files = sorted(p.name for p in cache.iterdir())
        second = load_dataset("mnist1d", standardize=False)
    finally:
        mp.undo()
    return {
        "first": first,
        "second": second,
        "calls": calls,
        "files": files,
        "rng_unchanged": (py_before, np_before) == (py_after, np_after),
    }


def _check_common(ds: Dataset, name: str) -> None:
    info = DATASETS[name]
    assert ds.task == info.task
    assert (ds.n_train, ds.n_test) == (info.n_train, info.n_test)
    assert ds.input_shape == info.input_shape
    assert ds.num_classes == info.num_classes
    assert ds.num_outputs == info.num_outputs
    assert ds.X_train.shape == (info.n_train, *info.input_shape)
    assert ds.X_test.shape == (info.n_test, *info.input_shape)
    assert ds.X_train.dtype == ds.X_test.dtype == torch.float32
    if ds.task == "classification":
        assert ds.y_train.dtype == ds.y_test.dtype == torch.int64
        assert ds.y_train.shape == (info.n_train,) and ds.y_test.shape == (info.n_test,)
        for y in (ds.y_train, ds.y_test):
            assert int(y.min()) >= 0 and int(y.max()) < ds.num_classes
        # every class appears in both parts (the splits are stratified / balanced)
        assert set(ds.y_train.tolist()) == set(range(ds.num_classes))
        assert set(ds.y_test.tolist()) == set(range(ds.num_classes))
    else:
        assert ds.y_train.dtype == ds.y_test.dtype == torch.float32
        assert ds.y_train.shape == (info.n_train, info.num_outputs)
    assert torch.isfinite(ds.X_train).all() and torch.isfinite(ds.X_test).all()


def _rows(X: torch.Tensor) -> set[bytes]:
    return {r.tobytes() for r in X.reshape(len(X), -1).numpy()}


@pytest.mark.parametrize("name", FAST_BUILTINS)
def test_builtin_shapes_dtypes_sizes(name):
    _check_common(load_dataset(name), name)


@pytest.mark.parametrize("name", FAST_BUILTINS)
def test_builtin_split_fixed_and_disjoint(name):
    a = load_dataset(name, standardize=False)
    b = load_dataset(name, standardize=False)
    for t in ("X_train", "y_train", "X_test", "y_test"):
        assert torch.equal(getattr(a, t), getattr(b, t)), t
    # disjoint: no sample is in both parts (every built-in has distinct samples, so the
    # number of distinct rows in each part equals its size)
    rows_tr, rows_te = _rows(a.X_train), _rows(a.X_test)
    assert len(rows_tr) == a.n_train and len(rows_te) == a.n_test
    assert not rows_tr & rows_te


@pytest.mark.parametrize(
    ("name", "loader", "scale"),
    [
        ("digits", skd.load_digits, 16.0),
        ("breast_cancer", skd.load_breast_cancer, 1.0),
        ("wine", skd.load_wine, 1.0),
    ],
)
def test_sklearn_sets_are_a_partition_of_the_source(name, loader, scale):
    X, y = loader(return_X_y=True)
    ds = load_dataset(name, standardize=False)
    got_X = torch.cat([ds.X_train, ds.X_test]).reshape(len(X), -1).numpy()
    got_y = torch.cat([ds.y_train, ds.y_test]).numpy()
    # same multiset of (features, label) rows as the source (pixels scaled by 1/16 for digits)
    src_X = (X / scale).astype(np.float32)
    key = lambda A, b: sorted(A[i].tobytes() + bytes([b[i]]) for i in range(len(b)))  # noqa: E731
    assert key(got_X, got_y) == key(src_X, y)
    # stratified: class proportions in train and test within one sample of the whole set's
    for k in np.unique(y):
        expected = (y == k).mean() * ds.n_test
        assert abs(int((ds.y_test == k).sum()) - expected) <= 1


def test_digits_pixels_in_unit_interval_and_split_independent_of_other_seeds():
    torch.manual_seed(999)
    np.random.seed(999)
    a = load_dataset("digits", standardize=False)
    torch.manual_seed(1)
    np.random.seed(1)
    b = load_dataset("digits", standardize=False)
    assert torch.equal(a.X_test, b.X_test)
    assert float(a.X_train.min()) == 0.0 and float(a.X_train.max()) == 1.0


def test_data_seed_changes_split():
    a = load_dataset("wine", standardize=False)
    b = load_dataset("wine", standardize=False, seed=5)
    assert not torch.equal(a.y_test, b.y_test) or not torch.equal(a.X_test, b.X_test)
    assert b.n_test == a.n_test


def test_test_fraction_option():
    ds = load_dataset("moons", test_fraction=0.5)
    assert (ds.n_train, ds.n_test) == (500, 500)
    with pytest.raises(ValueError, match="test_fraction"):
        load_dataset("moons", test_fraction=1.0)


def test_describe_datasets_matches_registry():
    rows = describe_datasets()
    assert [r["name"] for r in rows] == list(DATASETS)
    for r in rows:
        for key in ("task", "n_train", "n_test", "input_shape", "num_classes", "description"):
            assert key in r


# ----------------------------------------------------------------------------------- mnist1d


def test_mnist1d_matches_package_and_is_cached(mnist1d_run):
    from mnist1d.data import get_dataset_args

    ds = mnist1d_run["first"]
    _check_common(ds, "mnist1d")
    # generated exactly once (the second load hit the cache), with the package's default args
    assert len(mnist1d_run["calls"]) == 1
    args, ref = mnist1d_run["calls"][0]
    assert args == get_dataset_args(as_dict=True)
    np.testing.assert_allclose(ds.X_train[:, 0].numpy(), ref["x"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ds.X_test[:, 0].numpy(), ref["x_test"], rtol=1e-6, atol=1e-6)
    assert np.array_equal(ds.y_train.numpy(), ref["y"])
    assert np.array_equal(ds.y_test.numpy(), ref["y_test"])
    assert not _rows(ds.X_train) & _rows(ds.X_test)
    # exactly one cache file, no temporary files left behind
    assert len(mnist1d_run["files"]) == 1 and mnist1d_run["files"][0].endswith(".npz")
    second = mnist1d_run["second"]
    for t in ("X_train", "y_train", "X_test", "y_test"):
        assert torch.equal(getattr(ds, t), getattr(second, t))


def test_mnist1d_generation_leaves_global_rng_alone(mnist1d_run):
    assert mnist1d_run["rng_unchanged"]


def test_mnist1d_corrupt_cache_is_regenerated(mnist1d_run, tmp_path, monkeypatch):
    monkeypatch.setenv("GOODFIT_CACHE", str(tmp_path))
    src = gd.cache_dir()
    assert src == tmp_path
    name = next(n for n in mnist1d_run["files"])
    # a correct cache file planted by hand is used as is (no regeneration)
    first = mnist1d_run["first"]
    x = torch.cat([first.X_train, first.X_test])[:, 0].double().numpy()
    y = torch.cat([first.y_train, first.y_test]).numpy()
    np.savez(tmp_path / name, x=x + 1.0, y=y, t=np.zeros(40))
    planted = load_dataset("mnist1d", standardize=False)
    assert torch.allclose(planted.X_train, first.X_train + 1.0)
    # with a corrupt file it would have to regenerate; just check it is detected as unreadable
    (tmp_path / name).write_bytes(b"not an npz")
    from goodfit.data.builtin import _mnist1d_arrays

    called = {}

    def fake_make_dataset(args):
        called["seed"] = args.seed
        return {"x": x[:4000], "x_test": x[4000:], "y": y[:4000], "y_test": y[4000:], "t": 0}

    monkeypatch.setattr("mnist1d.data.make_dataset", fake_make_dataset)
    xx, yy, _ = _mnist1d_arrays(42)
    assert called == {"seed": 42}
    assert np.array_equal(xx, x) and np.array_equal(yy, y)
    with np.load(tmp_path / name) as z:  # rewritten atomically with good content
        assert np.array_equal(z["x"], x)


# --------------------------------------------------------------------------- synthetic sets


def test_label_noise_flips_exact_fraction_of_training_labels_only():
    clean = load_dataset("moons", standardize=False)
    noisy = load_dataset("moons", standardize=False, label_noise=0.25)
    assert torch.equal(clean.X_train, noisy.X_train)
    assert torch.equal(clean.y_test, noisy.y_test)  # test labels stay clean
    flipped = int((clean.y_train != noisy.y_train).sum())
    assert flipped == round(0.25 * clean.n_train)


def test_spirals_label_noise_moves_to_other_class():
    clean = load_dataset("spirals", standardize=False, num_classes=3)
    noisy = load_dataset("spirals", standardize=False, num_classes=3, label_noise=0.5)
    assert noisy.num_classes == 3
    changed = clean.y_train != noisy.y_train
    assert int(changed.sum()) == round(0.5 * clean.n_train)


def test_synthetic_noise_option_changes_points_and_seed_changes_data():
    a = load_dataset("spirals", standardize=False, noise=0.0)
    b = load_dataset("spirals", standardize=False, noise=0.3)
    c = load_dataset("spirals", standardize=False, noise=0.0, seed=1)
    assert not torch.equal(a.X_train, b.X_train)
    assert not torch.equal(a.X_train, c.X_train)
    # without noise every point lies on its arm: radius in [0, 1]
    assert float(a.X_train.norm(dim=1).max()) <= 1.0 + 1e-6


def test_poly_targets_follow_the_polynomial():
    ds = load_dataset("poly", standardize=False, noise=0.0, degree=4, n_samples=50)
    coef = np.asarray(ds.info["coefficients"])
    assert len(coef) == 5
    x = ds.X_train.double().numpy()[:, 0]
    expected = np.polynomial.polynomial.polyval(x, coef)
    np.testing.assert_allclose(ds.y_train.numpy()[:, 0], expected, rtol=1e-5, atol=1e-5)
    # rescaled to unit std of p over [-1, 1]
    grid = np.linspace(-1, 1, 2001)
    assert np.polynomial.polynomial.polyval(grid, coef).std() == pytest.approx(1.0)
    explicit = load_dataset("poly", standardize=False, noise=0.0, coefficients=[1.0, 0.0, -2.0])
    xe = explicit.X_test.double().numpy()[:, 0]
    np.testing.assert_allclose(explicit.y_test.numpy()[:, 0], 1 - 2 * xe**2, atol=1e-5)


def test_poly_noise_level():
    ds = load_dataset("poly", standardize=False, noise=0.5, n_samples=4000)
    coef = np.asarray(ds.info["coefficients"])
    x = ds.X_train.double().numpy()[:, 0]
    resid = ds.y_train.double().numpy()[:, 0] - np.polynomial.polynomial.polyval(x, coef)
    # 2000 N(0, 0.25) residuals: the sample std has sd ~ 0.5/sqrt(4000) ~ 0.008; 0.05 is > 6 sd
    assert resid.std() == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize(
    ("name", "opts", "match"),
    [
        ("moons", {"noise": -1}, "noise"),
        ("moons", {"label_noise": 1.5}, "label_noise"),
        ("spirals", {"num_classes": 1}, "num_classes"),
        ("poly", {"degree": -1}, "degree"),
        ("poly", {"n_samples": 1}, "n_samples"),
    ],
)
def test_bad_option_values_raise_value_error(name, opts, match):
    with pytest.raises(ValueError, match=match):
        load_dataset(name, **opts)


def test_unknown_options_raise_type_error():
    with pytest.raises(TypeError, match="noize"):
        load_dataset("moons", noize=0.1)
    with pytest.raises(TypeError, match="noise"):
        load_dataset("digits", noise=0.1)


# ------------------------------------------------------------------------- standardization


def test_fit_standardizer_matches_sklearn_per_feature():
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, [1.0, 5.0, 0.1], size=(200, 3))
    X[:, 1] = 7.0  # constant feature: std replaced by 1 as sklearn does
    s = fit_standardizer(torch.tensor(X, dtype=torch.float32))
    ref = StandardScaler().fit(X)
    np.testing.assert_allclose(s.mean.numpy().ravel(), ref.mean_, rtol=1e-6)
    np.testing.assert_allclose(s.std.numpy().ravel(), ref.scale_, rtol=1e-5)
    Z = apply_standardizer(torch.tensor(X, dtype=torch.float32), s)
    np.testing.assert_allclose(Z.numpy(), ref.transform(X), atol=1e-5)


def test_fit_standardizer_per_channel_for_images():
    rng = np.random.default_rng(1)
    X = torch.tensor(rng.normal(size=(50, 2, 4, 4)) + np.array([1.0, -3.0])[None, :, None, None])
    s = fit_standardizer(X)
    assert s.mean.shape == (1, 2, 1, 1)
    for c in range(2):
        assert s.mean[0, c].item() == pytest.approx(X[:, c].mean().item(), rel=1e-6)
        assert s.std[0, c].item() == pytest.approx(X[:, c].std(correction=0).item(), rel=1e-6)
    g = fit_standardizer(X, per="global")
    assert g.mean.numel() == 1
    with pytest.raises(ValueError, match="per"):
        fit_standardizer(X, per="pixel")


def test_standardization_uses_training_statistics_only(tmp_path):
    # train ~ mean 10, test ~ mean -10: any leak of test statistics moves the fitted mean
    rng = np.random.default_rng(0)
    X = rng.normal(10.0, 2.0, size=(60, 3))
    X_test = rng.normal(-10.0, 7.0, size=(40, 3))
    y, y_test = np.arange(60) % 2, np.arange(40) % 2
    path = tmp_path / "shift.npz"
    np.savez(path, X=X, y=y, X_test=X_test, y_test=y_test)
    ds = load_dataset(path)
    mu, sd = X.mean(0), X.std(0)
    np.testing.assert_allclose(ds.X_train.numpy(), (X - mu) / sd, atol=1e-5)
    np.testing.assert_allclose(ds.X_test.numpy(), (X_test - mu) / sd, atol=1e-5)
    np.testing.assert_allclose(ds.standardizer.mean.numpy().ravel(), mu, rtol=1e-6)
    # refitting on a subset of the training part (a CV fold) uses that subset only
    raw = load_dataset(path, standardize=False)
    fold = np.arange(0, 60, 3)
    sub = raw.standardize(fit_on=fold)
    mu_f, sd_f = X[fold].mean(0), X[fold].std(0)
    np.testing.assert_allclose(sub.X_train.numpy(), (X - mu_f) / sd_f, atol=1e-5)
    np.testing.assert_allclose(sub.X_test.numpy(), (X_test - mu_f) / sd_f, atol=1e-5)
    with pytest.raises(ValueError, match="already standardized"):
        ds.standardize()


def test_builtin_standardization_fitted_on_train():
    raw = load_dataset("breast_cancer", standardize=False)
    std = load_dataset("breast_cancer")
    ref = StandardScaler().fit(raw.X_train.double().numpy())
    np.testing.assert_allclose(
        std.X_test.numpy(), ref.transform(raw.X_test.double().numpy()), atol=1e-4
    )
    assert torch.equal(std.y_test, raw.y_test)


# ------------------------------------------------------------------------------ user files


def test_npz_without_test_part_gets_fixed_stratified_split(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 4))
    y = np.repeat([3, 7], 50)  # labels remapped to 0..K-1, originals kept in classes
    path = tmp_path / "d.npz"
    np.savez(path, X=X, y=y)
    a = load_dataset(str(path), standardize=False)
    b = load_dataset(str(path), standardize=False)
    assert a.task == "classification" and a.num_classes == 2 and a.classes == (3, 7)
    assert (a.n_train, a.n_test) == (80, 20)
    assert torch.equal(a.X_test, b.X_test) and torch.equal(a.y_train, b.y_train)
    assert int((a.y_test == 1).sum()) == 10
    assert not _rows(a.X_train) & _rows(a.X_test)
    # the split partitions the file's rows and keeps (x, y) pairs together
    orig = {X[i].astype(np.float32).tobytes(): y[i] for i in range(100)}
    for Xp, yp in (a.train, a.test):
        for xr, yr in zip(Xp.numpy(), yp.numpy(), strict=True):
            assert a.classes[yr] == orig[xr.tobytes()]


def test_npz_regression_inferred_and_overridable(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    path = tmp_path / "r.npz"
    np.savez(path, X=X, y=rng.normal(size=30))
    ds = load_dataset(path, standardize=False)
    assert ds.task == "regression" and ds.num_classes is None and ds.num_outputs == 1
    assert ds.y_train.shape == (24, 1) and ds.y_train.dtype == torch.float32
    path2 = tmp_path / "r2.npz"
    np.savez(path2, X=X, y=np.arange(30) % 3, X_test=X[:5], y_test=np.arange(5) % 3)
    assert load_dataset(path2).task == "classification"
    forced = load_dataset(path2, task="regression")
    assert forced.task == "regression" and forced.n_test == 5
    multi = tmp_path / "m.npz"
    np.savez(multi, X=X, y=rng.normal(size=(30, 3)))
    assert load_dataset(multi).num_outputs == 3


def test_npz_num_classes_keeps_labels(tmp_path):
    path = tmp_path / "k.npz"
    X = np.random.default_rng(0).normal(size=(40, 2))
    np.savez(path, X=X, y=np.arange(40) % 3)
    ds = load_dataset(path, num_classes=5)
    assert ds.num_classes == 5 and ds.classes == (0, 1, 2, 3, 4)
    assert set(ds.y_train.tolist()) == {0, 1, 2}


def test_csv_label_column_default_and_named(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    labels = np.where(X[:, 0] > 0, "yes", "no")
    lines = ["a,b,label,c"] + [f"{X[i, 0]},{X[i, 1]},{labels[i]},{X[i, 2]}" for i in range(50)]
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    ds = load_dataset(path, standardize=False)
    assert ds.task == "classification" and ds.classes == ("no", "yes")
    assert ds.feature_names == ("a", "b", "c") and ds.input_shape == (3,)
    assert (ds.n_train, ds.n_test) == (40, 10)
    for Xp, yp in (ds.train, ds.test):  # label follows the sign of column a
        assert torch.equal(yp, (Xp[:, 0] > 0).long())
    # no "label" column: the last one is the target; a named one via option label=
    lines = ["a,b,target"] + [f"{X[i, 0]},{X[i, 1]},{X[i, 2]}" for i in range(50)]
    p2 = tmp_path / "r.csv"
    p2.write_text("\n".join(lines))
    reg = load_dataset(p2, standardize=False)
    assert reg.task == "regression" and reg.feature_names == ("a", "b")
    named = load_dataset(p2, label="a", standardize=False)
    assert named.feature_names == ("b", "target")
    allv = torch.cat([named.y_train, named.y_test])[:, 0].double().numpy()
    np.testing.assert_allclose(np.sort(allv), np.sort(X[:, 0]), rtol=1e-6)


# --------------------------------------------------------------------------- malformed data


def _npz(tmp_path, name="bad.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


X10 = np.random.default_rng(0).normal(size=(10, 2))
Y10 = np.arange(10) % 2


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"X": X10}, r"missing array 'y'"),
        ({"y": Y10}, r"missing array 'X'"),
        ({"X": np.where(np.arange(20).reshape(10, 2) == 5, np.nan, X10), "y": Y10},
         r"X contains 1 non-finite.*sample 2"),
        ({"X": np.where(np.arange(20).reshape(10, 2) == 7, np.inf, X10), "y": Y10},
         r"X contains 1 non-finite"),
        ({"X": X10, "y": np.where(np.arange(10) == 4, np.nan, Y10)}, r"y contains 1 NaN"),
        ({"X": X10, "y": Y10[:9]}, r"X has 10 samples but y has 9"),
        ({"X": np.zeros((0, 2)), "y": np.zeros(0)}, r"X is empty"),
        ({"X": X10, "y": Y10, "X_test": X10}, r"'X_test' but no 'y_test'"),
        ({"X": X10, "y": Y10, "X_test": X10[:3], "y_test": Y10[:2]},
         r"X_test has 3 samples but y_test has 2"),
        ({"X": X10, "y": Y10, "X_test": X10[:, :1], "y_test": Y10},
         r"X_test has per-sample shape"),
        ({"X": X10, "y": np.full(10, 4)}, r"at least 2 classes"),
        ({"X": np.array(["a"] * 10), "y": Y10}, r"X must be numeric"),
    ],
)  # fmt: skip
def test_malformed_npz_raises_data_error(tmp_path, arrays, match):
    path = _npz(tmp_path, **arrays)
    with pytest.raises(DataError, match=match) as exc:
        load_dataset(path)
    assert str(path) in str(exc.value)


def test_classification_label_errors(tmp_path):
    path = _npz(tmp_path, X=X10, y=Y10 + 0.5)
    with pytest.raises(DataError, match=r"labels must be integers.*0\.5"):
        load_dataset(path, task="classification")
    path = _npz(tmp_path, "range.npz", X=X10, y=np.arange(10) % 4)
    with pytest.raises(DataError, match=r"label 3 .*out of range for num_classes=3"):
        load_dataset(path, num_classes=3)
    path = _npz(tmp_path, "neg.npz", X=X10, y=np.arange(10) % 3 - 1)
    with pytest.raises(DataError, match=r"label -1 .*out of range"):
        load_dataset(path, num_classes=3)
    path = _npz(tmp_path, "str.npz", X=X10, y=np.array(["a", "b"] * 5))
    with pytest.raises(DataError, match="must be numbers"):
        load_dataset(path, task="regression")


def test_file_level_errors(tmp_path):
    with pytest.raises(DataError, match=r"data file not found: .*nope\.npz"):
        load_dataset(tmp_path / "nope.npz")
    (tmp_path / "d.txt").write_text("1,2\n")
    with pytest.raises(DataError, match=r"unsupported file type '\.txt'"):
        load_dataset(tmp_path / "d.txt")
    with pytest.raises(DataError, match=r"unknown dataset 'digitz'"):
        load_dataset("digitz")
    (tmp_path / "junk.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"junk\.npz: not a readable \.npz"):
        load_dataset(tmp_path / "junk.npz")
    np.savez(tmp_path / "obj.npz", X=np.array([object()] * 3, dtype=object), y=np.arange(3))
    with pytest.raises(DataError, match=r"obj\.npz: cannot read arrays without pickle"):
        load_dataset(tmp_path / "obj.npz")
    with pytest.raises(TypeError, match="label"):
        load_dataset(_npz(tmp_path, X=X10, y=Y10), label="y")


@pytest.mark.parametrize(
    ("text", "opts", "match"),
    [
        ("", {}, "empty file"),
        ("a,b,label\n", {}, "no data rows"),
        ("a,b,label\n1,2,0\n3,4\n", {}, r"row 3 has 2 fields but the header has 3"),
        ("a,b,label\n1,2,0\n3,4,1\n", {"label": "y"}, r"no label column 'y' \(columns: a, b"),
        ("a,b,label\n1,x,0\n3,4,1\n", {}, r"column 'b' row 2: 'x' is not a number"),
        ("a,b,label\n1,,0\n3,4,1\n", {}, r"features contains 1 non-finite.*sample 0"),
        ("a,b,label\n1,nan,0\n3,4,1\n", {}, r"non-finite"),
        ("a,b,label\n1,2,\n3,4,1\n", {}, r"label column 'label' is empty in row 2"),
        ("a,b,label\n1,2,nan\n3,4,1\n", {}, r"label column 'label' contains 1 NaN"),
        ("a,b,label\n1,2,0.5\n3,4,1\n", {"task": "classification"}, r"must be integers"),
        ("label\n1\n2\n", {}, "at least one feature column"),
    ],
)
def test_malformed_csv_raises_data_error(tmp_path, text, opts, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=match) as exc:
        load_dataset(path, **opts)
    assert str(path) in str(exc.value)


def test_data_error_is_value_error():
    assert issubclass(DataError, ValueError)


def test_data_seed_validated_to_the_range_every_consumer_accepts():
    for bad in (-1, True, 2**32, 1.5):
        with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*32 - 1\]"):
            load_dataset("moons", seed=bad, n_samples=50)
    a = load_dataset("moons", seed=2**32 - 1, n_samples=50, standardize=False)
    b = load_dataset("moons", seed=np.int64(2**32 - 1), n_samples=50, standardize=False)
    assert torch.equal(a.X_train, b.X_train)


def test_package_exports_and_module_homes():
    import goodfit.data.builtin as builtin
    import goodfit.data.datasets as datasets
    import goodfit.data.standardize as standardize

    assert set(gd.__all__) == {*builtin.__all__, *datasets.__all__, *standardize.__all__} - {
        "load_builtin"
    }
    assert gd.Dataset is datasets.Dataset and gd.load_dataset is datasets.load_dataset
    assert gd.DATASETS is builtin.DATASETS and gd.fit_standardizer is standardize.fit_standardizer
    assert datasets.__all__ == ["Dataset", "load_dataset"]  # no re-exported standardizer names
