"""Image folders: a PIL-drawn folder of shapes trains through `goodfit train` and a study, is
decoded once (cached, invalidated when a file changes), predicts, and every bad folder exits 2
naming the file or folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from goodfit.app.cli import main
from goodfit.data import images, load_dataset

SHAPES = ("circle", "square", "triangle")


def _draw(shape: str, size: tuple[int, int], rng: np.random.Generator, rgb: bool) -> Image.Image:
    w, h = size
    img = Image.new("RGB" if rgb else "L", size, 0)
    d = ImageDraw.Draw(img)
    x0, y0 = rng.integers(0, w // 3), rng.integers(0, h // 3)
    x1, y1 = x0 + w // 2 + rng.integers(0, w // 6), y0 + h // 2 + rng.integers(0, h // 6)
    fill = (255, 160, 40) if rgb else 255
    if shape == "circle":
        d.ellipse([x0, y0, x1, y1], fill=fill)
    elif shape == "square":
        d.rectangle([x0, y0, x1, y1], fill=fill)
    else:
        d.polygon([(x0, y1), (x1, y1), ((x0 + x1) // 2, y0)], fill=fill)
    return img


def make_folder(root: Path, n: int = 14, seed: int = 0, sizes=((20, 20), (24, 18))) -> Path:
    """Three classes of PIL-drawn shapes, in two sizes, as PNG and JPEG, grey and RGB."""
    rng = np.random.default_rng(seed)
    for shape in SHAPES:
        (root / shape).mkdir(parents=True)
        for i in range(n):
            img = _draw(shape, sizes[i % len(sizes)], rng, rgb=i % 3 == 0)
            img.save(root / shape / f"{i}.{'jpg' if i % 4 == 0 else 'png'}")
    return root


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GOODFIT_CACHE", str(tmp_path / "cache"))
    calls = []
    decode = images._decode

    def counting(path, color, size):
        calls.append(path)
        return decode(path, color, size)

    monkeypatch.setattr(images, "_decode", counting)
    return calls


CONFIG = """
[data]
name = "{folder}"
image_size = [12, 12]
val_fraction = 0.25
[model]
kind = "cnn2d"
channels = [4]
hidden = [8]
[train]
epochs = 2
batch_size = 8
"""


def test_an_image_folder_trains_predicts_and_is_decoded_once(tmp_path, cache, torch_globals):
    folder = make_folder(tmp_path / "shapes")
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.format(folder=folder))
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 0
    assert len(cache) == 42  # every image decoded once
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary["dataset"] == str(folder) and "test_balanced_accuracy" in summary
    ds = load_dataset(folder, standardize=False, image_size=[12, 12])
    assert len(cache) == 42  # the cache was reused
    assert ds.input_shape == (3, 12, 12) and ds.classes == SHAPES  # some images are RGB
    assert float(ds.X_train.min()) >= 0 and float(ds.X_train.max()) <= 1
    # the arrays are Pillow's: resize then scale, one file checked by hand
    first = sorted((folder / "circle").glob("*"))[1]
    ref = np.asarray(Image.open(first).convert("RGB").resize((12, 12), Image.Resampling.BILINEAR))
    got = images._decode(first, "rgb", (12, 12))
    np.testing.assert_array_equal(got, ref.transpose(2, 0, 1).astype(np.float32) / 255)
    out = tmp_path / "pred.csv"
    assert main(["predict", str(tmp_path / "run"), str(folder), "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 43
    # a changed file is a new cache key: decoded again
    _draw("square", (20, 20), np.random.default_rng(9), rgb=False).save(folder / "circle/1.png")
    n = len(cache)
    load_dataset(folder, standardize=False, image_size=[12, 12])
    assert len(cache) == n + 42


def test_grey_images_are_one_channel_and_a_test_sibling_is_the_test_set(tmp_path, cache):
    make_folder(tmp_path / "d/train", n=6, sizes=((16, 16),))
    make_folder(tmp_path / "d/test", n=3, seed=1, sizes=((16, 16),))
    for p in (tmp_path / "d").rglob("*.png"):  # make all grey
        Image.open(p).convert("L").save(p)
    for p in (tmp_path / "d").rglob("*.jpg"):
        p.unlink()
    ds = load_dataset(tmp_path / "d", standardize=False)
    ds2 = load_dataset(tmp_path / "d/train", standardize=False)
    assert ds.input_shape == (1, 16, 16) and ds.n_test == ds2.n_test == 3 * 2
    assert torch.equal(ds.X_test, ds2.X_test)


def _bad(tmp_path: Path, case: str) -> tuple[Path, str]:
    root = tmp_path / "bad"
    if case == "unreadable":
        make_folder(root, n=3, sizes=((16, 16),))
        (root / "square/broken.png").write_bytes(b"not an image")
        return root, "square/broken.png: not a readable image"
    if case == "empty class":
        make_folder(root, n=3)
        (root / "hexagon").mkdir()
        return root, "hexagon: empty class folder"
    if case == "mixed sizes":
        make_folder(root, n=3)
        return root, "images have different sizes"
    (root / "circle").mkdir(parents=True)
    _draw("circle", (16, 16), np.random.default_rng(0), False).save(root / "circle/a.png")
    return root, "only one class folder ('circle')"


@pytest.mark.parametrize("case", ["unreadable", "empty class", "mixed sizes", "single class"])
def test_a_bad_image_folder_exits_2_naming_it(tmp_path, cache, capsys, case):
    root, message = _bad(tmp_path, case)
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.format(folder=root).replace("image_size = [12, 12]\n", ""))
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing written before the error


STUDY = """
[study]
splits = { kind = "stratified_kfold", k = 2 }
metric = "val_balanced_accuracy"
gradient_flow = false
[[study.variants]]
name = "plain"
[[study.variants]]
name = "balanced"
set = { "train.sampler" = "balanced", "train.class_weights" = "balanced" }
"""


def test_an_image_folder_runs_through_a_study_decoded_once(tmp_path, cache, torch_globals):
    folder = make_folder(tmp_path / "shapes", n=8)
    cfg = tmp_path / "s.toml"
    cfg.write_text(CONFIG.format(folder=folder).replace("epochs = 2", "epochs = 1") + STUDY)
    assert main(["study", str(cfg), "--out", str(tmp_path / "study")]) == 0
    assert len(cache) == 24  # the study loads its dataset once; folds reuse it
    results = json.loads((tmp_path / "study/results.json").read_text())
    fold = results["variants"]["balanced"]["folds"][0]
    assert np.sum(fold["confusion_matrix"]) == fold["n_test"]
    assert "val_macro_f1" in fold["scores"] and results["metric"] == "val_balanced_accuracy"
    assert "Confusion matrices" in (tmp_path / "study/report.html").read_text()
