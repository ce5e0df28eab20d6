"""Batched image augmentation on (N, C, H, W) tensors through :mod:`kornia.augmentation`.

The notes' augmentation list (seed 000 §1.1.2 "About Augmentation"; GBC ch. 7 "Dataset
Augmentation", seed 001; seed 004 "input noise") is covered by thin wrappers around kornia
wherever kornia has the op (:class:`KorniaOp`); the ops goodfit writes itself for images and
signals alike (multiplicative noise, mixup, cutmix, crop) are in :mod:`goodfit.data.augment_both`,
and the op protocol (:class:`~goodfit.data.augment_base.Augmentation`, randomness) in
:mod:`goodfit.data.augment_base`.

Colour and intensity ops assume images scaled to [0, 1] (kornia clips their output to [0, 1]).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from goodfit.checks import check_int, check_probability, check_real
from goodfit.data.augment_base import Augmentation, check_range

__all__ = [
    "KorniaOp",
    "affine",
    "blur",
    "brightness",
    "channel_shuffle",
    "color_jitter",
    "contrast",
    "crop_image",
    "elastic",
    "erasing",
    "gaussian_noise",
    "glare",
    "hflip",
    "hue_shift",
    "linear_illumination",
    "perspective",
    "rain",
    "resized_crop",
    "rotate",
    "salt_and_pepper",
    "shadow",
    "snow",
    "thin_plate_spline",
    "vflip",
]


class KorniaOp(Augmentation):
    """Wrap a :mod:`kornia.augmentation` module (kornia draws from the global torch RNG).

    Parameters
    ----------
    name : str
        Registry name, used in messages.
    build : callable
        ``build(p, (H, W)) -> kornia module``; called once per image size (crops need the size).
    p : float
        Per-sample probability, passed to kornia.
    params : dict
        Hyperparameters, for ``repr`` only.
    """

    def __init__(
        self, name: str, build: Callable[[float, tuple[int, int]], Any], p: float, **params: Any
    ) -> None:
        self.name = name
        super().__init__(p)
        self._build = build
        self._modules: dict[tuple[int, int], Any] = {}
        self._per_sample: dict[tuple[int, ...], frozenset[str]] = {}
        self.params = params

    def module(self, size: tuple[int, int]) -> Any:
        """The kornia module for images of spatial ``size`` (built lazily, cached)."""
        mod = self._modules.get(size)
        if mod is None:
            mod = self._modules[size] = self._build(self.p, size)
        return mod

    def apply(self, x: Tensor) -> Tensor:
        return self._module_for(x)(x)

    def _module_for(self, x: Tensor) -> Any:
        return self.module((int(x.shape[-2]), int(x.shape[-1])))

    def drawable(self, x: Tensor) -> bool:
        """kornia draws a batch's parameters (``forward_parameters``) before transforming it
        (checked for every kornia op of the registry, ``tests/test_augment.py``)."""
        return True

    def draw(self, x: Tensor) -> dict[str, Any]:
        """kornia's ``forward_parameters`` for ``x``: what ``self(x)`` draws first."""
        return self._module_for(x).forward_parameters(x.shape)

    def apply_drawn(self, x: Tensor, parts: list[dict[str, Any]]) -> Tensor:
        """One kornia call on the whole batch with the parts' parameters joined (the
        per-sample tensors concatenated), or a call per part where they do not join."""
        mod = self._module_for(x)
        joined = join_kornia_params(parts, x.shape, self._per_sample_keys(mod, x))
        if joined is not None:
            return mod(x, params=joined)
        chunks = x.chunk(len(parts))
        return torch.cat([mod(xk, params=q) for xk, q in zip(chunks, parts, strict=True)])

    def _per_sample_keys(self, mod: Any, x: Tensor) -> frozenset[str]:
        """The parameters kornia draws per sample for ``x``'s sample shape: those whose leading
        dimension follows the batch size, found once by drawing for batches of 2 and 3 under
        a forked RNG (a size alone could be a coincidence: a colour jitter's ``order`` holds
        4 entries whatever the batch)."""
        key = tuple(x.shape[1:])
        found = self._per_sample.get(key)
        if found is None:
            with torch.random.fork_rng(devices=[]):
                two, three = (mod.forward_parameters(torch.Size((n, *key))) for n in (2, 3))
            found = frozenset(
                k
                for k, v in two.items()
                if isinstance(v, Tensor) and v.ndim > 0 and v.shape[0] == 2
                and isinstance(three[k], Tensor) and three[k].ndim > 0 and three[k].shape[0] == 3
            )  # fmt: skip
            self._per_sample[key] = found
        return found

    def _params(self) -> dict[str, Any]:
        return {**self.params, "p": self.p}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"KorniaOp({self.name!r}, {args})"


def join_kornia_params(
    parts: list[dict[str, Any]], shape: torch.Size, per_sample: frozenset[str]
) -> dict[str, Any] | None:
    """kornia parameter dicts of equal-sized parts of one batch as one dict for the whole batch
    (``shape``): the ``per_sample`` tensors concatenated, ``forward_input_shape`` set to
    ``shape``, everything else equal across the parts; None where they do not join (ragged
    per-sample tensors, different batch-wide draws: the parts are then transformed one by
    one)."""
    joined: dict[str, Any] = {}
    for key, first in parts[0].items():
        values = [q[key] for q in parts]
        if key == "forward_input_shape":
            joined[key] = torch.tensor(shape, dtype=first.dtype)
        elif key in per_sample:
            if any(v.shape[1:] != first.shape[1:] for v in values[1:]):
                return None
            joined[key] = torch.cat(values)
        elif all(_same(first, v) for v in values[1:]):
            joined[key] = first
        else:
            return None
    return joined


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return a.shape == b.shape and bool(torch.equal(a, b))
    return bool(a == b)


# ----------------------------------------------------------------------------- kornia-backed ops
def _k() -> Any:
    import kornia.augmentation as K

    return K


def hflip(p: float = 0.5) -> KorniaOp:
    """Horizontal flip (mirroring), seed 001 "Horizontal/Vertical Flip"; ``kornia``
    RandomHorizontalFlip."""
    return KorniaOp("hflip", lambda p, s: _k().RandomHorizontalFlip(p=p), p)


def vflip(p: float = 0.5) -> KorniaOp:
    """Vertical flip; ``kornia`` RandomVerticalFlip."""
    return KorniaOp("vflip", lambda p, s: _k().RandomVerticalFlip(p=p), p)


def rotate(degrees: float | Sequence[float] = 15.0, p: float = 1.0) -> KorniaOp:
    """Rotation by an angle ~ U(-degrees, degrees) (or U(lo, hi) for a pair), counter-clockwise
    positive, about the image centre; ``kornia`` RandomRotation. Seed 000 §1.1.2 "Rotation"."""
    rng = check_range("rotate", "degrees", degrees, center=0.0)
    return KorniaOp(
        "rotate", lambda p, s: _k().RandomRotation(degrees=rng, p=p), p, degrees=degrees
    )


def affine(
    degrees: float | Sequence[float] = 0.0,
    translate: float | Sequence[float] | None = None,
    scale: Sequence[float] | None = None,
    shear: float | Sequence[float] | None = None,
    padding_mode: str = "zeros",
    p: float = 1.0,
) -> KorniaOp:
    """Random affine map: rotation, translation (shift), isotropic scaling, shear.

    ``degrees``: rotation range, counter-clockwise positive as in :func:`rotate` (scalar
    d -> U(-d, d)); ``translate``: maximal shift as a fraction
    of width/height (scalar t -> (t, t)); ``scale``: (lo, hi) zoom factor range; ``shear``: shear
    angle range in degrees along x (scalar s -> U(-s, s)). ``kornia`` RandomAffine. Seed 001
    "Translation / Scale / Rotation / Shearing", seed 000 §1.1.2 "Affine transformations".
    """
    op = "affine"
    rng = check_range(op, "degrees", degrees, center=0.0)
    tr = None
    if translate is not None:
        tr = check_range(op, "translate", translate, low=0.0, high=1.0)
        if isinstance(translate, (int, float)):
            tr = (float(translate), float(translate))
    sc = None if scale is None else check_range(op, "scale", scale, low=0.0)
    if sc is not None and sc[0] <= 0.0:
        raise ValueError(f"{op}: scale must be > 0, got {scale!r}")
    sh = None if shear is None else check_range(op, "shear", shear, center=0.0)
    if sh is not None and max(abs(sh[0]), abs(sh[1])) >= 90.0:
        raise ValueError(f"{op}: shear must be < 90 degrees, got {shear!r}")
    if padding_mode not in ("zeros", "border", "reflection"):
        raise ValueError(
            f"{op}: padding_mode must be 'zeros', 'border' or 'reflection', got {padding_mode!r}"
        )

    # kornia 0.9's RandomAffine turns clockwise for positive angles while its RandomRotation
    # turns counter-clockwise; negate so that both of ours are counter-clockwise (torch.rot90)
    ccw = (-rng[1], -rng[0])

    def build(p: float, size: tuple[int, int]) -> Any:
        return _k().RandomAffine(
            degrees=ccw, translate=tr, scale=sc, shear=sh, padding_mode=padding_mode, p=p
        )

    return KorniaOp(
        op,
        build,
        p,
        degrees=degrees,
        translate=translate,
        scale=scale,
        shear=shear,
        padding_mode=padding_mode,
    )


def crop_image(padding: int = 4, padding_mode: str = "constant", p: float = 1.0) -> KorniaOp:
    """Random crop of the original size from the image padded by ``padding`` pixels per side
    (seed 000 "Random cropping"); ``kornia`` RandomCrop. Registered as ``crop``, which also
    accepts signals."""
    check_int("crop: padding", padding, low=0)
    if padding_mode not in ("constant", "reflect", "replicate"):
        raise ValueError(
            f"crop: padding_mode must be 'constant', 'reflect' or 'replicate', got {padding_mode!r}"
        )
    return KorniaOp(
        "crop",
        lambda p, s: _k().RandomCrop(s, padding=padding, padding_mode=padding_mode, p=p),
        p,
        padding=padding,
        padding_mode=padding_mode,
    )


def resized_crop(
    scale: Sequence[float] = (0.08, 1.0), ratio: Sequence[float] = (3 / 4, 4 / 3), p: float = 1.0
) -> KorniaOp:
    """Random crop (area fraction ~ U(scale), aspect ~ log-U(ratio)) scaled back to the input
    size: GBC/seed 001 "Random Crop and then Scale"; ``kornia`` RandomResizedCrop."""
    sc = check_range("resized_crop", "scale", scale, low=0.0, high=1.0)
    if sc[0] <= 0.0:
        raise ValueError(f"resized_crop: scale must be > 0, got {scale!r}")
    ra = check_range("resized_crop", "ratio", ratio, low=0.0)
    if ra[0] <= 0.0:
        raise ValueError(f"resized_crop: ratio must be > 0, got {ratio!r}")
    return KorniaOp(
        "resized_crop",
        lambda p, s: _k().RandomResizedCrop(s, scale=sc, ratio=ra, p=p),
        p,
        scale=scale,
        ratio=ratio,
    )


def _factor(op: str, key: str, value: float | Sequence[float]) -> tuple[float, float]:
    """Scalar f -> (max(0, 1 - f), 1 + f); a pair as it is; factors must be >= 0."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        f = check_real(f"{op}: {key}", value, low=0.0)
        return (max(0.0, 1.0 - f), 1.0 + f)
    return check_range(op, key, value, low=0.0)


def brightness(factor: float | Sequence[float] = 0.2, p: float = 1.0) -> KorniaOp:
    """Brightness shift by a factor ~ U(1 - f, 1 + f) (1 = unchanged); ``kornia``
    RandomBrightness (additive shift ``x + (factor - 1)``, clipped to [0, 1])."""
    rng = _factor("brightness", "factor", factor)
    return KorniaOp(
        "brightness", lambda p, s: _k().RandomBrightness(brightness=rng, p=p), p, factor=factor
    )


def contrast(factor: float | Sequence[float] = 0.2, p: float = 1.0) -> KorniaOp:
    """Contrast change by a factor ~ U(1 - f, 1 + f); ``kornia`` RandomContrast."""
    rng = _factor("contrast", "factor", factor)
    return KorniaOp(
        "contrast", lambda p, s: _k().RandomContrast(contrast=rng, p=p), p, factor=factor
    )


def color_jitter(
    brightness: float = 0.2,
    contrast: float = 0.2,
    saturation: float = 0.0,
    hue: float = 0.0,
    p: float = 1.0,
) -> KorniaOp:
    """Colour/illumination shift: brightness, contrast, saturation, hue jitter in random order
    (seed 001 "Contrast/Brightness/illumination/Color Change"); ``kornia`` ColorJitter.
    ``hue`` in [0, 0.5]; saturation and hue need 3-channel images."""
    op = "color_jitter"
    b = check_real(f"{op}: brightness", brightness, low=0.0)
    c = check_real(f"{op}: contrast", contrast, low=0.0)
    s = check_real(f"{op}: saturation", saturation, low=0.0)
    h = check_real(f"{op}: hue", hue, low=0.0)
    if h > 0.5:
        raise ValueError(f"{op}: hue must be in [0, 0.5], got {hue!r}")

    def build(p: float, size: tuple[int, int]) -> Any:
        mod = _k().ColorJitter(b, c, s, h, p=p)
        # kornia's adjust_hue converts RGB -> HSV -> RGB; hue_shift computes the same map in
        # closed form about 3x faster on CPU (tested equal to kornia.enhance.adjust_hue)
        if getattr(mod, "_hue_fn", None) is not None:
            mod._hue_fn = hue_shift
        return mod

    return KorniaOp(
        op,
        build,
        p,
        brightness=b,
        contrast=c,
        saturation=s,
        hue=h,
    )


def hue_shift(x: Tensor, radians: Tensor | float) -> Tensor:
    """Rotate the hue of RGB images (N, 3, H, W) in [0, 1] by ``radians`` (per sample).

    Same result as ``kornia.enhance.adjust_hue`` (RGB -> HSV, ``H += radians``, HSV -> RGB) in
    closed form: with ``V = max``, ``D = max - min`` and hue sector ``h`` in [0, 6),
    ``channel_n = V - D * clamp(min(k, 4 - k), 0, 1)``, ``k = (n + h) mod 6``, n = 5, 3, 1 for
    R, G, B (the standard HSV -> RGB formula; saturation times value is ``D``).
    """
    r, g, b = x.unbind(-3)
    maxc, idx = x.max(-3)
    delta = maxc - x.min(-3).values
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    h = torch.where(
        idx == 0,
        (g - b) / safe,
        torch.where(idx == 1, (b - r) / safe + 2.0, (r - g) / safe + 4.0),
    )
    rad = torch.as_tensor(radians, dtype=x.dtype, device=x.device)
    h = h + (rad * (3.0 / math.pi)).reshape(-1, *([1] * (h.ndim - 1)))
    out = []
    for n in (5.0, 3.0, 1.0):
        k = torch.remainder(h + n, 6.0)
        out.append(maxc - delta * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0))
    return torch.stack(out, -3)


def blur(
    kernel_size: int = 3, sigma: float | Sequence[float] = (0.1, 2.0), p: float = 1.0
) -> KorniaOp:
    """Gaussian blur with sigma ~ U(sigma) (seed 000 "Blurring"); ``kornia`` RandomGaussianBlur."""
    if (
        isinstance(kernel_size, bool)
        or not isinstance(kernel_size, int)
        or kernel_size < 1
        or kernel_size % 2 == 0
    ):
        raise ValueError(f"blur: kernel_size must be an odd integer >= 1, got {kernel_size!r}")
    sg = check_range("blur", "sigma", sigma, low=0.0)
    if sg[0] <= 0.0:
        raise ValueError(f"blur: sigma must be > 0, got {sigma!r}")
    return KorniaOp(
        "blur",
        lambda p, s: _k().RandomGaussianBlur(kernel_size, sg, p=p),
        p,
        kernel_size=kernel_size,
        sigma=sigma,
    )


def channel_shuffle(p: float = 0.5) -> KorniaOp:
    """Random permutation of the channels (seed 000 "Channel shuffle"); ``kornia``
    RandomChannelShuffle."""
    return KorniaOp("channel_shuffle", lambda p, s: _k().RandomChannelShuffle(p=p), p)


def erasing(
    scale: Sequence[float] = (0.02, 0.33),
    ratio: Sequence[float] = (0.3, 3.3),
    value: float = 0.0,
    p: float = 0.5,
) -> KorniaOp:
    """Random erasing / cutout: a random rectangle (area fraction ~ U(scale), aspect ~ U(ratio))
    set to ``value`` (seed 000 "Random erasing", seed 001 "Random Cutout"); ``kornia``
    RandomErasing."""
    sc = check_range("erasing", "scale", scale, low=0.0, high=1.0)
    ra = check_range("erasing", "ratio", ratio, low=0.0)
    if ra[0] <= 0.0:
        raise ValueError(f"erasing: ratio must be > 0, got {ratio!r}")
    v = float(value)
    return KorniaOp(
        "erasing",
        lambda p, s: _k().RandomErasing(scale=sc, ratio=ra, value=v, p=p),
        p,
        scale=scale,
        ratio=ratio,
        value=v,
    )


def gaussian_noise(std: float = 0.1, mean: float = 0.0, p: float = 1.0) -> KorniaOp:
    """Additive Gaussian noise ``x + N(mean, std^2)`` (seed 001 "Additive Noise", seed 004 input
    noise); ``kornia`` RandomGaussianNoise. For signals use ``white_noise``."""
    s = check_real("gaussian_noise: std", std, low=0.0)
    m = float(mean)
    return KorniaOp(
        "gaussian_noise",
        lambda p, size: _k().RandomGaussianNoise(mean=m, std=s, p=p),
        p,
        std=s,
        mean=m,
    )


def salt_and_pepper(amount: float | Sequence[float] = (0.01, 0.06), p: float = 1.0) -> KorniaOp:
    """Salt-and-pepper noise on a random fraction ``amount`` of pixels; ``kornia``
    RandomSaltAndPepperNoise."""
    am = check_range("salt_and_pepper", "amount", amount, low=0.0, high=1.0)
    return KorniaOp(
        "salt_and_pepper",
        lambda p, s: _k().RandomSaltAndPepperNoise(amount=am, p=p),
        p,
        amount=amount,
    )


def elastic(
    kernel_size: int = 63, sigma: float = 32.0, alpha: float = 1.0, p: float = 1.0
) -> KorniaOp:
    """Elastic transformation (seed 000 "Elastic transformations"; Simard et al. 2003): a random
    displacement field smoothed by a Gaussian of ``sigma`` and scaled by ``alpha``; ``kornia``
    RandomElasticTransform."""
    op = "elastic"
    if (
        isinstance(kernel_size, bool)
        or not isinstance(kernel_size, int)
        or kernel_size < 1
        or kernel_size % 2 == 0
    ):
        raise ValueError(f"{op}: kernel_size must be an odd integer >= 1, got {kernel_size!r}")
    s = check_real(f"{op}: sigma", sigma, low=0.0, low_open=True)
    a = check_real(f"{op}: alpha", alpha, low=0.0)
    return KorniaOp(
        op,
        lambda p, size: _k().RandomElasticTransform(
            kernel_size=(kernel_size, kernel_size), sigma=(s, s), alpha=(a, a), p=p
        ),
        p,
        kernel_size=kernel_size,
        sigma=s,
        alpha=a,
    )


def perspective(distortion: float = 0.3, p: float = 1.0) -> KorniaOp:
    """Random perspective warp of the corners by up to ``distortion`` (fraction of the size);
    ``kornia`` RandomPerspective (a local geometric distortion)."""
    d = check_probability("perspective: distortion", distortion)
    return KorniaOp(
        "perspective",
        lambda p, s: _k().RandomPerspective(distortion_scale=d, p=p),
        p,
        distortion=d,
    )


def thin_plate_spline(scale: float = 0.2, p: float = 1.0) -> KorniaOp:
    """Random thin-plate-spline warp (smooth local distortion); ``kornia`` RandomThinPlateSpline."""
    s = check_real("thin_plate_spline: scale", scale, low=0.0)
    return KorniaOp(
        "thin_plate_spline", lambda p, size: _k().RandomThinPlateSpline(scale=s, p=p), p, scale=s
    )


def rain(
    drops: Sequence[int] = (50, 150),
    drop_height: Sequence[int] = (2, 6),
    drop_width: Sequence[int] = (-2, 2),
    p: float = 1.0,
) -> KorniaOp:
    """Rain streaks (seed 000 "Adding rain effects"); ``kornia`` RandomRain. Defaults are scaled
    for small (28-32 px) images."""
    op = "rain"
    dr = check_range(op, "drops", drops, low=1)
    dh = check_range(op, "drop_height", drop_height, low=1)
    dw = check_range(op, "drop_width", drop_width)
    ints = tuple(tuple(int(v) for v in r) for r in (dr, dh, dw))
    return KorniaOp(
        op,
        lambda p, s: _k().RandomRain(
            number_of_drops=ints[0], drop_height=ints[1], drop_width=ints[2], p=p
        ),
        p,
        drops=drops,
        drop_height=drop_height,
        drop_width=drop_width,
    )


def snow(
    coefficient: Sequence[float] = (0.1, 0.3),
    brightness: Sequence[float] = (1.5, 2.5),
    p: float = 1.0,
) -> KorniaOp:
    """Snow (RGB images only); ``kornia`` RandomSnow."""
    c = check_range("snow", "coefficient", coefficient, low=0.0, high=1.0)
    b = check_range("snow", "brightness", brightness, low=1.0)
    return KorniaOp(
        "snow",
        lambda p, s: _k().RandomSnow(snow_coefficient=c, brightness=b, p=p),
        p,
        coefficient=coefficient,
        brightness=brightness,
    )


def shadow(
    roughness: Sequence[float] = (0.1, 0.7),
    intensity: Sequence[float] = (-1.0, 0.0),
    quantity: Sequence[float] = (0.0, 1.0),
    p: float = 1.0,
) -> KorniaOp:
    """Random shadow from a plasma fractal (seed 000 "local distortions"); ``kornia``
    RandomPlasmaShadow."""
    r = check_range("shadow", "roughness", roughness, low=0.0, high=1.0)
    i = check_range("shadow", "intensity", intensity, low=-1.0, high=0.0)
    q = check_range("shadow", "quantity", quantity, low=0.0, high=1.0)
    return KorniaOp(
        "shadow",
        lambda p, s: _k().RandomPlasmaShadow(roughness=r, shade_intensity=i, shade_quantity=q, p=p),
        p,
        roughness=roughness,
        intensity=intensity,
        quantity=quantity,
    )


def glare(
    gain: Sequence[float] = (0.01, 0.15), sigma: Sequence[float] = (0.2, 1.0), p: float = 1.0
) -> KorniaOp:
    """A bright (or dark) Gaussian light spot at a random centre: the closest kornia has to a
    sun flare / glare (seed 000 "Glare or other local distortions"); ``kornia``
    RandomGaussianIllumination. kornia 0.9 has no lens-flare op."""
    g = check_range("glare", "gain", gain, low=0.0, high=1.0)
    s = check_range("glare", "sigma", sigma, low=0.0)
    return KorniaOp(
        "glare",
        lambda p, size: _k().RandomGaussianIllumination(gain=g, sigma=s, p=p),
        p,
        gain=gain,
        sigma=sigma,
    )


def linear_illumination(gain: Sequence[float] = (0.01, 0.2), p: float = 1.0) -> KorniaOp:
    """Linear illumination gradient across the image; ``kornia`` RandomLinearIllumination."""
    g = check_range("linear_illumination", "gain", gain, low=0.0, high=1.0)
    return KorniaOp(
        "linear_illumination",
        lambda p, s: _k().RandomLinearIllumination(gain=g, p=p),
        p,
        gain=gain,
    )
