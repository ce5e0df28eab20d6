"""Tests of goodfit.data.augment: geometry against exact references (torch.rot90, flips, padding
crops), p=0 identities, mixup/cutmix soft targets against the lambda / area actually used,
mnist1d/scipy equivalence of the 1-D ops, seeding, config validation and the preview PNG."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import scipy.ndimage
import torch
import torch.nn.functional as F

from goodfit.data import augment as A

# mnist1d/__init__ re-exports a *function* named transform, hiding the module of that name
m1d = importlib.import_module("mnist1d.transform")

IMG = (1, 12, 12)
SIG = (1, 40)


def images(n=6, c=1, h=12, w=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, h, w, generator=g) * 0.8 + 0.1  # in (0.1, 0.9): zeros are "filled"


def signals(n=6, c=1, length=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, length, generator=g)


# ----------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("factory", [A.rotate, A.affine])
def test_rotation_by_90_equals_rot90(factory):
    x = images(c=3)
    out = factory(degrees=(90.0, 90.0), p=1.0)(x)
    # counter-clockwise positive, like torch.rot90(k=1) on the (H, W) axes; bilinear sampling of
    # a quarter turn lands on pixel centres, so only float rounding (cos(pi/2) ~ 4e-8) remains
    torch.testing.assert_close(out, torch.rot90(x, 1, dims=(-2, -1)), atol=1e-5, rtol=0)


def test_flip_twice_is_identity_and_flip_is_exact():
    x = images(c=3)
    for op, dim in ((A.hflip(p=1.0), -1), (A.vflip(p=1.0), -2)):
        once = op(x)
        assert torch.equal(once, x.flip(dim))
        assert torch.equal(op(once), x)


def test_identity_affine_leaves_batch_unchanged():
    x = images(c=3)
    op = A.affine(degrees=0.0, translate=0.0, scale=(1.0, 1.0), shear=0.0, p=1.0)
    torch.testing.assert_close(op(x), x, atol=1e-5, rtol=0)


def test_crop_with_padding_is_an_integer_shift_with_zero_fill():
    x = images(n=5)
    pad = 2
    out = A.crop(padding=pad, p=1.0)(x)
    padded = F.pad(x, (pad, pad, pad, pad))
    h, w = x.shape[-2:]
    for i in range(x.shape[0]):
        windows = [
            padded[i, :, dy : dy + h, dx : dx + w]
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
        ]
        assert any(torch.allclose(out[i], win, atol=1e-6) for win in windows), i


def test_erasing_blacks_out_one_rectangle():
    x = images(n=8)
    out = A.erasing(scale=(0.1, 0.3), value=0.0, p=1.0)(x)
    for i in range(x.shape[0]):
        changed = (out[i, 0] != x[i, 0]).nonzero()
        assert changed.numel() > 0
        r0, c0 = changed.min(0).values.tolist()
        r1, c1 = changed.max(0).values.tolist()
        box = torch.zeros_like(out[i, 0], dtype=torch.bool)
        box[r0 : r1 + 1, c0 : c1 + 1] = True
        assert torch.equal(box, out[i, 0] != x[i, 0])  # the changed set is a full rectangle
        assert torch.all(out[i, 0][box] == 0.0)
        assert torch.equal(out[i, 0][~box], x[i, 0][~box])


def test_multiplicative_noise_matches_its_formula():
    x = images()
    torch.manual_seed(3)
    out = A.MultiplicativeNoise(std=0.2, p=1.0)(x)
    torch.manual_seed(3)
    eps = torch.randn_like(x)
    torch.testing.assert_close(out, x * (1 + 0.2 * eps))


def test_hue_shift_equals_kornia_adjust_hue():
    import kornia.enhance

    x = images(n=8, c=3)
    x[0] = 0.5  # grey: no hue
    x[1, 1] = x[1, 0]  # ties between the maximal channels
    rad = (torch.rand(8, generator=torch.Generator().manual_seed(0)) - 0.5) * 2 * torch.pi
    # the two differ only by float32 rounding of the same closed-form map
    torch.testing.assert_close(
        A.hue_shift(x, rad), kornia.enhance.adjust_hue(x, rad), atol=1e-5, rtol=0
    )


def test_color_jitter_equals_kornia_color_jitter():
    import kornia.augmentation

    x = images(n=16, c=3)
    torch.manual_seed(4)
    ours = A.color_jitter(0.2, 0.2, 0.3, 0.1, p=0.8)(x)
    torch.manual_seed(4)
    ref = kornia.augmentation.ColorJitter(0.2, 0.2, 0.3, 0.1, p=0.8)(x)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    assert not torch.allclose(ours, x)


# ----------------------------------------------------------------------------- identities
def _all_ops_with_p0():
    for name, factory in A.AUGMENTATIONS.items():
        op = factory(p=0.0)
        yield name, op


@pytest.mark.parametrize("name", sorted(A.AUGMENTATIONS))
def test_every_op_at_p0_is_an_exact_identity(name):
    op = A.AUGMENTATIONS[name](p=0.0)
    x = images(c=3) if 2 in op.dims else signals()
    y = torch.arange(x.shape[0])
    state = torch.get_rng_state()
    pipe = A.AugmentPipeline([op], num_classes=x.shape[0])
    xo, yo = pipe(x, y)
    assert xo is x and yo is y
    assert torch.equal(torch.get_rng_state(), state)  # p=0 consumes no randomness either


def test_p0_pipeline_of_many_ops_is_identity():
    ops = [
        A.hflip(p=0),
        A.affine(degrees=30, translate=0.2, p=0),
        A.color_jitter(p=0),
        A.erasing(p=0),
        A.elastic(p=0),
        A.MixUp(p=0),
        A.CutMix(p=0),
    ]
    x, y = images(), torch.arange(6)
    xo, yo = A.AugmentPipeline(ops, num_classes=6)(x, y)
    assert xo is x and yo is y


def test_pipeline_without_blending_returns_labels_untouched():
    x, y = images(), torch.arange(6)
    xo, yo = A.AugmentPipeline([A.hflip(p=1.0)])(x, y)
    assert yo is y and torch.equal(xo, x.flip(-1))
    assert A.AugmentPipeline.train_only is True


# ----------------------------------------------------------------------------- blending
def test_mixup_soft_targets_match_lambda_used():
    torch.manual_seed(0)
    n, k = 16, 5
    x = images(n=n)
    y = torch.arange(n) % k
    op = A.MixUp(alpha=0.4, p=0.75)
    xo, yo = A.AugmentPipeline([op], num_classes=k)(x, y)
    lam, perm = op.last_lambda, op.last_permutation
    assert lam.shape == (n,) and torch.all((lam >= 0) & (lam <= 1))
    assert (lam == 1).any() and (lam < 1).any()  # p=0.75 on 16 samples: both kinds (seeded)
    onehot = torch.eye(k)[y]
    lf = lam.float()
    expect_y = lf[:, None] * onehot + (1 - lf[:, None]) * onehot[perm]
    expect_x = lf.view(-1, 1, 1, 1) * x + (1 - lf.view(-1, 1, 1, 1)) * x[perm]
    torch.testing.assert_close(yo, expect_y)
    torch.testing.assert_close(xo, expect_x)
    torch.testing.assert_close(yo.sum(1), torch.ones(n))


@pytest.mark.parametrize("layout", ["image", "signal"])
def test_cutmix_labels_equal_pasted_area(layout):
    torch.manual_seed(1)
    n = 12
    shape = (n, 2, 10, 14) if layout == "image" else (n, 2, 50)
    # sample i is the constant i + 1, so each output pixel tells which sample it came from
    x = (torch.arange(n, dtype=torch.float32) + 1).view(-1, *([1] * (len(shape) - 1)))
    x = x.expand(shape).clone()
    op = A.CutMix(alpha=1.0, p=1.0)
    xo, yo = A.AugmentPipeline([op], num_classes=n)(x, torch.arange(n))
    src = (xo - 1).round().long()  # source sample of every element
    frac = F.one_hot(src.flatten(1), n).float().mean(1)  # (N, n): fraction from each sample
    torch.testing.assert_close(yo, frac)
    torch.testing.assert_close(yo.sum(1), torch.ones(n))
    # last_lambda is the share kept by the sample itself (1 - pasted area)
    own = torch.where(op.last_permutation == torch.arange(n), 1.0, op.last_lambda.float())
    torch.testing.assert_close(yo[torch.arange(n), torch.arange(n)], own)
    assert (op.last_lambda < 1).any()


def test_blending_needs_num_classes_and_labels():
    with pytest.raises(ValueError, match="num_classes"):
        A.AugmentPipeline([A.MixUp()])
    with pytest.raises(ValueError, match="labels"):
        A.AugmentPipeline([A.CutMix()], num_classes=3)(images(), torch.tensor([0, 1, 2, 3, 4, 5]))


# ----------------------------------------------------------------------------- seeding
def _standard_pipeline():
    ops = [
        A.hflip(),
        A.affine(degrees=15, translate=0.1, scale=(0.9, 1.1), shear=5),
        A.crop(padding=2),
        A.color_jitter(0.2, 0.2, 0.2, 0.05),
        A.erasing(p=0.5),
        A.gaussian_noise(std=0.05),
        A.elastic(kernel_size=5, sigma=4.0),
        A.MixUp(alpha=0.4),
    ]
    return A.AugmentPipeline(ops, num_classes=4)


def test_same_seed_same_batch_different_seed_differs():
    x, y = images(n=8, c=3), torch.arange(8) % 4
    outs = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        outs.append(_standard_pipeline()(x, y))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    assert not torch.equal(outs[0][0], outs[2][0])
    sig = signals()
    ops = [
        A.Shift(5),
        A.AmplitudeScale(),
        A.TimeStretch(),
        A.WhiteNoise(),
        A.CorrelatedNoise(),
        A.Trend(),
        A.crop(padding=3),
        A.CutMix(),
    ]
    res = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        res.append(A.AugmentPipeline(ops, num_classes=6)(sig, torch.arange(6))[0])
    assert torch.equal(res[0], res[1]) and not torch.equal(res[0], res[2])


# ----------------------------------------------------------------------------- 1-D signal ops
def test_shift_matches_mnist1d_translate_and_zero_fill():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 1, 30))
    ks = [0, 3, 17, 29]
    for i, k in enumerate(ks):
        np.random.seed(k)
        want_k = np.random.choice(30)  # what mnist1d's translate draws with this seed
        np.random.seed(k)
        ref = m1d.translate(x[i, 0], 30)
        got = A.shift_signal(torch.tensor(x[i : i + 1]), torch.tensor([want_k]))
        np.testing.assert_allclose(got[0, 0].numpy(), ref)
    # zero fill == crop of the zero-padded signal at offset padding - k
    xt = torch.tensor(x)
    shifts = torch.tensor([-4, -1, 2, 4])
    got = A.shift_signal(xt, shifts, circular=False)
    padded = F.pad(xt, (4, 4))
    for i, k in enumerate(shifts.tolist()):
        torch.testing.assert_close(got[i], padded[i, :, 4 - k : 4 - k + 30])


def test_trend_matches_mnist1d_shear():
    x = np.random.default_rng(1).standard_normal(40)
    np.random.seed(5)
    ref = m1d.shear(x, scale=0.75)
    np.random.seed(5)
    coeff = 0.75 * (np.random.rand() - 0.5)
    got = A.trend(torch.tensor(x).view(1, 1, -1), torch.tensor([coeff], dtype=torch.float64))
    np.testing.assert_allclose(got[0, 0].numpy(), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("sigma", "length"), [(2.0, 40), (0.7, 9), (3.0, 5)])
def test_gaussian_filter1d_matches_scipy(sigma, length):
    x = np.random.default_rng(2).standard_normal((3, 2, length))
    got = A.gaussian_filter1d(torch.tensor(x), sigma)
    ref = scipy.ndimage.gaussian_filter1d(x, sigma, axis=-1)  # mode='reflect', truncate=4
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=1e-12)


def test_correlated_noise_is_mnist1d_corr_noise():
    x = np.zeros(40)
    np.random.seed(11)
    ref = m1d.corr_noise_like(x, 0.25)
    np.random.seed(11)
    white = 0.25 * np.random.randn(40)
    got = A.gaussian_filter1d(torch.tensor(white).view(1, 1, -1), 2.0)
    np.testing.assert_allclose(got[0, 0].numpy(), ref, rtol=1e-10, atol=1e-12)


def test_stretch_signal_against_numpy_interp():
    x = np.random.default_rng(3).standard_normal((2, 1, 25))
    s = np.array([0.8, 1.25])
    got = A.stretch_signal(torch.tensor(x), torch.tensor(s))
    t = np.arange(25.0)
    c = 12.0
    tz = np.arange(-1.0, 26.0)  # the signal extended by zeros, linearly interpolated
    for i in range(2):
        xz = np.concatenate([[0.0], x[i, 0], [0.0]])
        ref = np.interp(c + (t - c) / s[i], tz, xz, left=0.0, right=0.0)
        np.testing.assert_allclose(got[i, 0].numpy(), ref, atol=1e-12)
    torch.testing.assert_close(A.stretch_signal(torch.tensor(x), torch.ones(2)), torch.tensor(x))


def test_amplitude_scale_is_a_per_sample_factor_in_range():
    torch.manual_seed(0)
    x = signals(n=64)
    out = A.AmplitudeScale(coeff=0.4, p=1.0)(x)
    ratio = out / x
    per = ratio[:, :, :1]
    torch.testing.assert_close(ratio, per.expand_as(ratio))
    assert torch.all((per >= 0.8) & (per <= 1.2))


def test_ops_refuse_data_of_the_other_dimension():
    with pytest.raises(ValueError, match="'hflip' works on images"):
        A.hflip()(signals())  # a 2-D op called on 1-D data
    with pytest.raises(ValueError, match="'shift' works on signals"):
        A.Shift()(images())


# ----------------------------------------------------------------------------- preview
@pytest.mark.parametrize("layout", ["image", "signal"])
def test_preview_writes_png(tmp_path, layout):
    if layout == "image":
        pipe = A.AugmentPipeline([A.hflip(p=1.0), A.MixUp()], num_classes=6)
        x = images(c=3)
    else:
        pipe = A.AugmentPipeline([A.Shift(5)])
        x = signals(c=2)
    path = A.preview(pipe, x, torch.arange(6), tmp_path / "grid.png", n=4)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


# ----------------------------------------------------------------------------- through fit()
class _Recorder(torch.nn.Module):
    """A linear classifier that records every input batch and whether it was in training mode."""

    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(features, classes))
        self.seen: list[tuple[bool, torch.Tensor]] = []

    def forward(self, x):
        self.seen.append((self.training, x.detach().clone()))
        return self.net(x)


def _rows_in(batch, pool):
    """For each row of ``batch``: does it equal (exactly) some row of ``pool``?"""
    eq = (batch.flatten(1)[:, None, :] == pool.flatten(1)[None, :, :]).all(-1)
    return eq.any(1)


def test_fit_applies_pipeline_to_training_batches_only():
    from goodfit.train.loop import fit

    X, y = images(n=24, h=4, w=4), torch.arange(24) % 3
    Xv, yv = images(n=9, h=4, w=4, seed=1), torch.arange(9) % 3
    model = _Recorder(16, 3)
    pipe = A.AugmentPipeline([A.hflip(p=1.0)])
    fit(
        model,
        (X, y),
        (Xv, yv),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        epochs=2,
        batch_size=8,
        augment=pipe,
        progress=False,
    )
    train_in = torch.cat([x for training, x in model.seen if training])
    eval_in = torch.cat([x for training, x in model.seen if not training])
    assert len(train_in) == 2 * 24 and len(eval_in) >= 9
    # every training input is a flipped training sample, never an original one (X is not
    # mirror-symmetric: continuous random pixels); every evaluation input is an untouched sample
    assert _rows_in(train_in, X.flip(-1)).all() and not _rows_in(train_in, X).any()
    assert _rows_in(eval_in, Xv).all()


def test_fit_trains_on_mixup_soft_targets():
    from goodfit.train.loop import fit

    X, y = images(n=32, h=4, w=4), torch.arange(32) % 4
    model = _Recorder(16, 4)
    pipe = A.AugmentPipeline([A.MixUp(alpha=0.4), A.CutMix(alpha=1.0, p=0.5)], num_classes=4)
    hist = fit(
        model,
        (X, y),
        (X, y),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        epochs=2,
        batch_size=16,
        augment=pipe,
        progress=False,
    )
    record = hist.records[-1]
    assert np.isfinite(record["train_loss"]) and np.isfinite(record["val_loss"])


@pytest.mark.parametrize("size", [4, 3])
def test_kornia_ops_draw_apart(size):
    """Every kornia op of the registry draws all of its randomness before transforming: three
    parts of a batch drawn from three RNG states and transformed at once (``apply_drawn``:
    joined parameters, or part by part where they do not join) equal the three parts through
    the op one by one, bit for bit. Part size 4 matches the length of a colour jitter's
    batch-wide ``order``, which must not be taken for a per-sample parameter."""
    from goodfit.data.augment_image import KorniaOp

    x = torch.rand(3 * size, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    checked = 0
    for name, make in A.AUGMENTATIONS.items():
        op = make()
        inner = getattr(op, "ops", {2: op}).get(2)
        if not isinstance(inner, KorniaOp):
            continue
        assert op.drawable(x), name
        parts = [x[k * size : (k + 1) * size] for k in range(3)]
        with torch.random.fork_rng(devices=[]):
            one_by_one = []
            for k, xk in enumerate(parts):
                torch.manual_seed(100 + k)
                one_by_one.append(op(xk))
            drawn = []
            for k, xk in enumerate(parts):
                torch.manual_seed(100 + k)
                drawn.append(op.draw(xk))
        assert torch.equal(op.apply_drawn(x, drawn), torch.cat(one_by_one)), name
        checked += 1
    assert checked >= 20
