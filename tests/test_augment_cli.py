"""`goodfit augment preview` end to end, its user errors, and [augment] reaching fit() through
`goodfit train`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from goodfit.app.build import load_dataset_from_config, prepare_from_config
from goodfit.app.cli import main
from goodfit.app.config import load_config
from goodfit.data.augment import AugmentPipeline

DIGITS = """
[data]
name = "digits"
val_fraction = 0.2

[model]
kind = "cnn2d"
channels = [4]
hidden = [8]

[train]
epochs = 2
batch_size = 256
seed = 0
"""

MNIST1D = """
[data]
name = "mnist1d"
val_fraction = 0.1

[train]
seed = 0
"""

AFFINE = """
[augment]
ops = [{ name = "affine", degrees = 10, translate = 0.1, padding_mode = "border" },
       { name = "erasing", p = 0.5 }]
"""


def _png_pixels(path):
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return imread(path)


def _user_error(capsys, argv):
    """Run the CLI, expect exit status 2 and one message line without a traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("base", "augment", "n"),
    [
        (DIGITS, AFFINE, 6),
        (
            MNIST1D,
            '[augment]\nops = [{ name = "shift", max_shift = 5 }, { name = "white_noise" }]\n',
            4,
        ),
    ],
    ids=["digits-images", "mnist1d-signals"],
)
def test_preview_writes_png(write_toml, tmp_path, capsys, base, augment, n):
    cfg = write_toml(base + augment)
    out = tmp_path / "sub" / "preview.png"
    assert main(["augment", "preview", str(cfg), "--out", str(out), "-n", str(n)]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed
    img = _png_pixels(out)
    # the grid is n samples wide, two rows high (Figure(figsize=(1.6 n, 3.6)), dpi=100)
    assert img.shape[:2] == (360, round(160 * n))
    assert img[..., :3].std() > 0.05  # something is drawn, not a blank canvas


def test_preview_shows_the_pipeline_output_on_standardized_training_data(
    write_toml, tmp_path, monkeypatch
):
    """The preview feeds the pipeline the first n samples of the training part as training
    sees them (prepare_data: split + standardization), with the RNG seeded from train.seed."""
    cfg_path = write_toml(DIGITS + AFFINE)
    seen = {}
    original_call = AugmentPipeline.__call__

    def spy(self, x, y=None):
        seen["x"], seen["y"] = x.clone(), y.clone()
        seen["rng"] = torch.get_rng_state()
        return original_call(self, x, y)

    monkeypatch.setattr(AugmentPipeline, "__call__", spy)
    assert main(["augment", "preview", str(cfg_path), "--out", str(tmp_path / "p.png")]) == 0
    cfg = load_config(cfg_path)
    X, y = prepare_from_config(cfg, load_dataset_from_config(cfg.data)).train
    torch.testing.assert_close(seen["x"], X[:8], rtol=0, atol=0)
    torch.testing.assert_close(seen["y"], y[:8], rtol=0, atol=0)
    torch.manual_seed(cfg.train.seed)
    assert torch.equal(seen["rng"], torch.get_rng_state())


@pytest.mark.parametrize(
    ("base", "augment", "match"),
    [
        (DIGITS, "", "has no [augment] section"),
        (DIGITS, "[augment]\nops = []\n", "has no [augment] section"),
        (DIGITS, '[augment]\nops = [{ name = "twirl" }]\n', "unknown augmentation 'twirl'"),
        (DIGITS, '[augment]\nops = [{ name = "hflip", p = 1.5 }]\n', "p must be a probability"),
        (DIGITS, '[augment]\nops = [{ name = "hflip", p = -0.1 }]\n', "p must be a probability"),
        (DIGITS, '[augment]\nops = [{ name = "rotate", degrees = -5 }]\n', "degrees"),
        (DIGITS, '[augment]\nops = [{ name = "hflip", q = 1 }]\n', "'q'"),
        (MNIST1D, '[augment]\nops = [{ name = "affine", degrees = 5 }]\n', "signals (C, L)"),
        (DIGITS, '[augment]\nops = [{ name = "shift" }]\n', "images (C, H, W)"),
        # colour ops clip to [0, 1]; the training batches are standardized before augmentation
        (DIGITS, '[augment]\nops = [{ name = "brightness" }]\n', "data.standardize = false"),
    ],
)
def test_bad_input_exits_2_with_one_message(write_toml, tmp_path, capsys, base, augment, match):
    cfg = write_toml(base + augment)
    out = tmp_path / "p.png"
    message = _user_error(capsys, ["augment", "preview", str(cfg), "--out", str(out)])
    assert message.startswith("goodfit augment: error:")
    assert match in message
    assert not out.exists()


def test_bad_n_and_missing_file(write_toml, tmp_path, capsys):
    cfg = write_toml(DIGITS + AFFINE)
    assert "-n must be an integer from 1 to 64" in _user_error(
        capsys, ["augment", "preview", str(cfg), "-n", "0", "--out", str(tmp_path / "p.png")]
    )
    _user_error(capsys, ["augment", "preview", str(tmp_path / "nope.toml")])


def test_colour_op_works_on_unstandardized_images(write_toml, tmp_path):
    """The digits images are in [0, 1]: without standardization brightness is allowed."""
    cfg = write_toml(DIGITS + '[augment]\nops = [{ name = "brightness", factor = 0.3 }]\n')
    out = tmp_path / "p.png"
    argv = ["augment", "preview", str(cfg), "--set", "data.standardize=false", "--out", str(out)]
    assert main(argv) == 0
    assert out.exists()


def test_train_applies_augment_section_to_training_batches(
    write_toml, tmp_path, monkeypatch, torch_globals
):
    """`goodfit train` with [augment]: the pipeline sees every training batch of every epoch
    (and nothing else: not the validation or test data), and it changes the result."""
    calls = []
    original_call = AugmentPipeline.__call__

    def spy(self, x, y=None):
        calls.append(x.shape[0])
        return original_call(self, x, y)

    monkeypatch.setattr(AugmentPipeline, "__call__", spy)
    cfg = write_toml(DIGITS + AFFINE)
    assert main(["train", str(cfg), "--out", str(tmp_path / "aug")]) == 0
    loaded = load_config(cfg)
    n_train = len(prepare_from_config(loaded, load_dataset_from_config(loaded.data)).train[0])
    per_epoch = [min(256, n_train - s) for s in range(0, n_train, 256)]
    assert sorted(calls) == sorted(per_epoch * 2)  # 2 epochs, every batch, nothing else

    monkeypatch.setattr(AugmentPipeline, "__call__", original_call)
    assert main(["train", str(write_toml(DIGITS, "plain.toml")), "--out", str(tmp_path / "p")]) == 0
    with_aug = json.loads((tmp_path / "aug" / "summary.json").read_text())
    without = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert not np.isclose(with_aug["final_train_loss"], without["final_train_loss"], rtol=1e-6)
