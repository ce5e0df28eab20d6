"""Images per second of a standard augmentation pipeline: goodfit (batched, kornia-backed) vs
albumentations (per image, OpenCV) and torchvision v2 (per batch) where it imports.

Pipeline: horizontal flip (p=0.5) + affine (rotation +-10 deg, shift +-10 %, scale 0.9-1.1,
shear +-5 deg) + colour jitter (brightness/contrast 0.2; saturation 0.2 and hue 0.05 on RGB) +
random erasing (p=0.5), on float32 batches 256x1x28x28 and 256x3x32x32 in [0, 1], on CPU.
One process, ``torch.set_num_threads(2)`` (``--threads``) and ``cv2.setNumThreads(2)``,
warm-up, median of several runs. On an oversubscribed machine torch's 2-thread timings collapse
(its workers wait on each other); compare with ``--threads 1`` there. albumentations gets its
preferred layout (a list of HxWxC numpy arrays) for free; goodfit gets the (N, C, H, W) tensor
a training loop holds.

Run: ``.venv/bin/python benchmarks/augment.py [--repeats 7]``. Needs the benchmark-only
packages ``albumentations`` and ``opencv-python-headless`` (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch

from goodfit.data import augment as A

SHAPES = [(256, 1, 28, 28), (256, 3, 32, 32)]


def goodfit_pipeline(channels: int) -> A.AugmentPipeline:
    rgb = channels == 3
    return A.AugmentPipeline(
        [
            A.hflip(p=0.5),
            A.affine(degrees=10, translate=0.1, scale=(0.9, 1.1), shear=5, p=1.0),
            A.color_jitter(0.2, 0.2, 0.2 if rgb else 0.0, 0.05 if rgb else 0.0, p=1.0),
            A.erasing(scale=(0.02, 0.33), ratio=(0.3, 3.3), p=0.5),
        ]
    )


def albumentations_pipeline(channels: int) -> Callable[[np.ndarray], np.ndarray]:
    import albumentations as alb

    rgb = channels == 3
    tf = alb.Compose(
        [
            alb.HorizontalFlip(p=0.5),
            alb.Affine(
                rotate=(-10, 10),
                translate_percent=(-0.1, 0.1),
                scale=(0.9, 1.1),
                shear=(-5, 5),
                p=1.0,
            ),
            alb.ColorJitter(0.2, 0.2, 0.2 if rgb else 0.0, 0.05 if rgb else 0.0, p=1.0),
            alb.Erasing(scale=(0.02, 0.33), ratio=(0.3, 3.3), p=0.5),
        ]
    )

    def run(batch: list[np.ndarray]) -> np.ndarray:
        return np.stack([tf(image=im)["image"] for im in batch])

    return run


def torchvision_pipeline(channels: int) -> Callable[[torch.Tensor], torch.Tensor] | str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torchvision.transforms import v2
    except Exception as e:  # torchvision wheels are built against one torch release
        return f"{type(e).__name__}: {str(e).splitlines()[0][:70]}"
    rgb = channels == 3
    tf = v2.Compose(
        [
            v2.RandomHorizontalFlip(p=0.5),
            v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=5),
            v2.ColorJitter(0.2, 0.2, 0.2 if rgb else 0.0, 0.05 if rgb else 0.0),
            v2.RandomErasing(p=0.5),
        ]
    )

    # v2 draws one set of parameters per call, so per-sample randomness needs a call per image
    def run(batch: torch.Tensor) -> torch.Tensor:
        return torch.stack([tf(im) for im in batch])

    return run


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (lazy kornia modules, OpenCV caches)
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    try:
        import cv2

        cv2.setNumThreads(2)
    except ImportError:
        cv2 = None
    warnings.filterwarnings("ignore", category=UserWarning)

    rows = []
    notes = []
    for shape in SHAPES:
        n, c = shape[:2]
        x = torch.rand(shape)
        pipe = goodfit_pipeline(c)
        t_gf = median_seconds(lambda pipe=pipe, x=x: pipe(x), args.repeats)
        rows.append((shape, "goodfit (batched)", n / t_gf, 1.0))
        if cv2 is not None:
            batch = [im.permute(1, 2, 0).numpy().copy() for im in x]
            alb = albumentations_pipeline(c)
            t_alb = median_seconds(lambda alb=alb, batch=batch: alb(batch), args.repeats)
            rows.append((shape, "albumentations (per image)", n / t_alb, t_alb / t_gf))
        else:
            notes.append("albumentations/opencv not installed: pip install goodfit[bench]")
        tv = torchvision_pipeline(c)
        if isinstance(tv, str):
            if not any(s.startswith("torchvision") for s in notes):
                notes.append(
                    f"torchvision v2 skipped (does not import beside torch "
                    f"{torch.__version__}): {tv}"
                )
        else:
            t_tv = median_seconds(lambda tv=tv, x=x: tv(x), args.repeats)
            rows.append((shape, "torchvision v2 (per image)", n / t_tv, t_tv / t_gf))

    print(
        f"augmentation pipeline throughput, CPU, torch threads = {args.threads}, "
        f"median of {args.repeats}"
    )
    print(f"{'batch':<18} {'library':<28} {'images/s':>10} {'goodfit speed-up':>17}")
    for shape, lib, ips, ratio in rows:
        sh = "x".join(str(s) for s in shape)
        extra = "" if lib.startswith("goodfit") else f"{ratio:>16.1f}x"
        print(f"{sh:<18} {lib:<28} {ips:>10.0f} {extra:>17}")
    for note in notes:
        print("note:", note)


if __name__ == "__main__":
    main()
