"""Image folders as datasets: one subfolder per class, read with Pillow, decoded once and cached.

The layout torchvision's ``ImageFolder`` and Keras' ``image_dataset_from_directory`` read::

    shapes/                 data.name = "shapes"
        circle/  a.png b.jpg ...
        square/  ...

A test set is, in this order: ``shapes/train/<class>`` with ``shapes/test/<class>``; a
``test/`` sibling of a folder named ``train`` (``data.name = "data/train"`` with ``data/test``);
else a fixed split of ``test_fraction`` (default 0.2, stratified, data seed 0) as for user files.

Files ending in ``.png``, ``.jpg``, ``.jpeg`` or ``.bmp`` (any case) are images; hidden files and
other files are skipped. Every image is converted to ``color`` (``"gray"``: Pillow mode ``L``,
one channel; ``"rgb"``: three; default gray if every image is grey, else rgb) and, with
``image_size = (height, width)`` (or one int, square), resized with bilinear filtering; without
it all images must have one size. ``X`` is float32 in [0, 1], shaped ``(N, C, H, W)``.

Decoding happens once: the arrays are cached (written atomically) in
``<cache>/images/<key>.npz``, the key being a SHA-256 of every image file's relative path and
bytes plus the size and colour asked for, so a study's folds and processes reuse them and a
changed, added or removed file means a new key. ``cache`` is :func:`goodfit.data.cache_dir`.

An unreadable image, an empty class folder, a folder with fewer than two classes, or mixed sizes
without ``image_size`` raise :class:`goodfit.errors.DataError` naming the file or folder.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from goodfit.data.raw import RawData, fixed_split
from goodfit.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "load_image_folder", "read_images_for_prediction"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp"})
_CACHE_VERSION = 1


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _class_folders(root: Path) -> list[Path]:
    """The class subfolders of ``root`` (sorted, hidden ones skipped), each holding images."""
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(
            f"{root}: an image folder needs one subfolder per class (e.g. {root}/cat/1.png), "
            "found none"
        )
    for folder in folders:
        if not _images_in(folder):
            raise DataError(
                f"{folder}: empty class folder (no .png/.jpg/.jpeg/.bmp image); add images "
                "or remove the folder"
            )
    if len(folders) < 2:
        raise DataError(
            f"{root}: only one class folder ({folders[0].name!r}); classification needs at "
            "least two"
        )
    return folders


def _layout(root: Path) -> tuple[Path, Path | None]:
    """(training root, test root or ``None``) of an image folder."""
    if (root / "train").is_dir() and (root / "test").is_dir():
        return root / "train", root / "test"
    if root.name == "train" and (root.parent / "test").is_dir():
        return root, root.parent / "test"
    return root, None


def _open(path: Path) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: not a readable image ({err})") from None
    return img


def _decode(path: Path, color: str, size: tuple[int, int] | None) -> np.ndarray:
    """One image as float32 ``(C, H, W)`` in [0, 1]: converted to ``color``, resized to
    ``size = (height, width)`` (bilinear) when given."""
    from PIL import Image

    img = _open(path).convert("L" if color == "gray" else "RGB")
    if size is not None and img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _check_sizes(files: Sequence[Path], size: tuple[int, int] | None) -> tuple[int, int]:
    """The common size of ``files`` (headers only) when no ``image_size`` is given."""
    from PIL import Image

    if size is not None:
        return size
    first: tuple[Path, tuple[int, int]] | None = None
    for path in files:
        try:
            with Image.open(path) as img:
                wh = img.size
        except Exception as err:  # Pillow raises many kinds on a damaged file
            raise DataError(f"{path}: not a readable image ({err})") from None
        if first is None:
            first = (path, wh)
        elif wh != first[1]:
            raise DataError(
                f"images have different sizes: {first[0]} is {first[1][0]}x{first[1][1]} but "
                f"{path} is {wh[0]}x{wh[1]} (width x height); set data.image_size = "
                "[height, width] to resize them all"
            )
    assert first is not None
    return first[1][1], first[1][0]


def _decode_all(files: Sequence[Path], color: str, size: tuple[int, int]) -> np.ndarray:
    """Every file decoded, with a progress bar on a terminal."""
    from rich.console import Console
    from rich.progress import track

    console = Console(stderr=True)
    items = track(
        files,
        description=f"decoding {len(files)} images",
        console=console,
        transient=True,
        disable=not sys.stderr.isatty(),
    )
    return np.stack([_decode(p, color, size) for p in items])


def _cache_key(files: Sequence[Path], base: Path, color: str | None, size: Any) -> str:
    h = hashlib.sha256(f"v{_CACHE_VERSION}|{color}|{size}".encode())
    for path in files:
        h.update(str(path.relative_to(base)).encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:32]


def _image_size(image_size: Any) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        image_size = [image_size, image_size]
    size = tuple(int(s) for s in image_size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"image_size must be [height, width] of positive ints, got {image_size!r}")
    return size  # type: ignore[return-value]


def _decoded(
    files: list[Path], base: Path, color: str | None, size: tuple[int, int] | None
) -> tuple[np.ndarray, str]:
    """All ``files`` decoded (from the cache when it holds them) and the colour used."""
    from goodfit.atomic import atomic_write
    from goodfit.data.builtin import cache_dir

    path = cache_dir() / "images" / f"{_cache_key(files, base, color, size)}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                return f["X"], str(f["color"])
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is decoded again and replaced
    if color not in (None, "gray", "rgb"):
        raise ValueError(f"color must be 'gray' or 'rgb', got {color!r}")
    X = _decode_all(files, color or "rgb", _check_sizes(files, size))
    if color is None:  # grey when every pixel of every image is (R = G = B)
        gray = bool((X[:, 1:] == X[:, :1]).all())
        X, color = (np.ascontiguousarray(X[:, :1]), "gray") if gray else (X, "rgb")
    buf = io.BytesIO()
    np.savez(buf, X=X, color=np.array(color))
    atomic_write(path, lambda handle: handle.write(buf.getvalue()))
    return X, color


def load_image_folder(
    root: str | Path, seed: int | None, test_fraction: float | None, options: dict[str, Any]
) -> RawData:
    """An image folder (see the module docstring) as :class:`RawData`; ``options``:
    ``image_size`` and ``color``; others raise ``TypeError``."""
    unknown = sorted(set(options) - {"image_size", "color"})
    if unknown:
        raise TypeError(
            f"an image folder got unexpected option(s) {', '.join(map(repr, unknown))}; "
            "allowed: image_size, color"
        )
    root = Path(root).expanduser()
    size = _image_size(options.get("image_size"))
    train_root, test_root = _layout(root)
    folders = _class_folders(train_root)
    classes = tuple(f.name for f in folders)
    parts = [(train_root, folders)]
    if test_root is not None:
        test_folders = _class_folders(test_root)
        extra = sorted({f.name for f in test_folders} - set(classes))
        if extra:
            raise DataError(f"{test_root}: classes {extra} are not in {train_root}")
        parts.append((test_root, test_folders))
    files, labels, is_test = [], [], []
    for k, (_, fs) in enumerate(parts):
        for folder in fs:
            for path in _images_in(folder):
                files.append(path)
                labels.append(classes.index(folder.name))
                is_test.append(k == 1)
    base = Path(os.path.commonpath([train_root, test_root or train_root]))
    X, color = _decoded(files, base, options.get("color"), size)
    y, test = np.asarray(labels, dtype=np.int64), np.asarray(is_test)
    if test_root is None:
        X_tr, y_tr, X_te, y_te = fixed_split(
            X, y, 0.2 if test_fraction is None else test_fraction, 0 if seed is None else seed,
            True, str(root),
        )  # fmt: skip
    else:
        X_tr, y_tr, X_te, y_te = X[~test], y[~test], X[test], y[test]
    desc = f"image folder {root}: {len(files)} images, {len(classes)} classes, {color}"
    return RawData(
        X_tr, y_tr, X_te, y_te, "classification", len(classes), desc, str(root), None, classes,
        {"image_folder": str(root), "color": color},
    )  # fmt: skip


def read_images_for_prediction(
    root: str | Path, input_shape: Sequence[int]
) -> tuple[np.ndarray, list[str] | None]:
    """Images to predict on, shaped like a run's inputs ``(C, H, W)``: class subfolders give the
    labels (their names); images directly in ``root`` have none."""
    root = Path(root).expanduser()
    c, h, w = (int(s) for s in input_shape)
    color = "gray" if c == 1 else "rgb"
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}")
    direct = _images_in(root)
    files: list[Path] = direct
    labels: list[str] | None = None
    if not direct:
        labels = []
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            if folder.name.startswith("."):
                continue
            for path in _images_in(folder):
                files.append(path)
                labels.append(folder.name)
    if not files:
        raise DataError(f"{root}: no .png/.jpg/.jpeg/.bmp image to predict on")
    return _decode_all(files, color, (h, w)), labels
