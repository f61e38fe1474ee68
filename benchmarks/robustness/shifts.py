"""Seeded, label-preserving image shifts for the robustness report (numpy + OpenCV only).

Each shift maps a 64x64x3 uint8 RGB image to another of the same shape and dtype. The random
part (a direction, a background) comes from a generator seeded by (seed, shift, severity, image
index), so an image gets the same shift for every model and on every run. Severity 0 is the
identity. None of the shifts changes how many fingers a hand shows: geometry keeps the whole
hand (a mirrored or rotated hand shows the same count), colour and noise shifts move pixels
only, and background replacement keeps the masked hand's pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from train import backgrounds as bg

Shift = Callable[[np.ndarray, float, np.random.Generator, np.ndarray | None], np.ndarray]


def _sign(rng: np.random.Generator) -> float:
    return 1.0 if rng.random() < 0.5 else -1.0


def _affine(image: np.ndarray, angle: float = 0.0, scale: float = 1.0, dx=0.0, dy=0.0):
    """Rotate/scale about the centre and translate (pixels); the edge pixels fill the rest
    (SIGNS's border is wall or arm, so replicating it looks like more wall or more arm)."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, scale)
    m[:, 2] += (dx, dy)
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def rotate(x, degrees, rng, mask=None):
    return _affine(x, angle=_sign(rng) * degrees)


def zoom_out(x, factor, rng, mask=None):
    """The hand sits smaller in the frame: ``factor`` is the shrink (1.5 -> 2/3 size)."""
    return _affine(x, scale=1.0 / factor)


def zoom_in(x, factor, rng, mask=None):
    """The hand fills more of the frame, as in a webcam ROI held close; centre crop."""
    return _affine(x, scale=factor)


def translate(x, fraction, rng, mask=None):
    a = rng.uniform(0, 2 * np.pi)
    d = fraction * x.shape[0]
    return _affine(x, dx=d * np.cos(a), dy=d * np.sin(a))


def _lut(x: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    table = np.clip(np.rint(fn(np.arange(256, dtype=np.float64))), 0, 255).astype(np.uint8)
    return cv2.LUT(x, table)


def brightness(x, factor, rng, mask=None):
    """Multiply by (1 + factor) or divide by it: a brighter or darker exposure."""
    f = (1.0 + factor) ** _sign(rng)
    return _lut(x, lambda p: p * f)


def contrast(x, factor, rng, mask=None):
    """Scale the distance from the image's mean grey by (1 + factor) or 1 / (1 + factor)."""
    f = (1.0 + factor) ** _sign(rng)
    mean = float(x.mean())
    return _lut(x, lambda p: mean + (p - mean) * f)


def gamma(x, g, rng, mask=None):
    e = g ** _sign(rng)
    return _lut(x, lambda p: 255.0 * (p / 255.0) ** e)


def temperature(x, t, rng, mask=None):
    """Warmer or cooler light: red up and blue down by ``t`` (or the reverse)."""
    s = _sign(rng) * t
    gains = np.array([1.0 + s, 1.0, 1.0 - s], dtype=np.float32)
    return np.clip(x.astype(np.float32) * gains + 0.5, 0, 255).astype(np.uint8)


def hue(x, degrees, rng, mask=None):
    hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)  # OpenCV hue is 0..179, 2 degrees a step
    h = (hsv[..., 0].astype(np.int32) + int(round(_sign(rng) * degrees / 2))) % 180
    hsv[..., 0] = h.astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def saturation(x, factor, rng, mask=None):
    """Saturation times (1 + factor) or divided by it; grey stays grey."""
    f = (1.0 + factor) ** _sign(rng)
    grey = cv2.cvtColor(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    out = grey.astype(np.float32) + (x.astype(np.float32) - grey) * f
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def blur(x, sigma, rng, mask=None):
    return cv2.GaussianBlur(x, (0, 0), sigma)


def noise(x, std, rng, mask=None):
    """Sensor noise: Gaussian, independent per pixel and channel, ``std`` grey levels."""
    return np.clip(x + rng.normal(0, std, x.shape) + 0.5, 0, 255).astype(np.uint8)


def jpeg(x, quality, rng, mask=None):
    bgr = cv2.cvtColor(x, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    assert ok
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def mirror(x, _on, rng, mask=None):
    return np.ascontiguousarray(x[:, ::-1])


def background(x, kind, rng, mask=None):
    """The hand cut out with its mask onto a solid colour, gradient, texture or natural crop.

    ``kind`` 1: solid colour; 2: linear or radial gradient; 3: synthetic texture (noise,
    blobs, stripes, checks); 4: a crop of a held-out scikit-image photo (the "test" split).
    """
    if mask is None:
        raise ValueError("background replacement needs the hand mask")
    k = int(kind)
    if k == 1:
        back = bg.synthetic_texture(rng, "solid")
    elif k == 2:
        back = bg.synthetic_texture(rng, "gradient" if rng.random() < 0.5 else "radial")
    elif k == 3:
        back = bg.synthetic_texture(rng, str(rng.choice(["noise", "blobs", "stripes", "checker"])))
    else:
        back = bg.natural_crop(bg.natural_images("test"), rng)
    return bg.composite(x, mask, back)


@dataclass(frozen=True)
class ShiftSpec:
    name: str
    fn: Shift
    severities: tuple[float, ...]  # parameter at severity 1, 2, 3 (0 is the identity)
    unit: str  # what the parameter means, for the report
    needs_mask: bool = False


# The severities are chosen so that level 1 is mild (a good model should shrug it off) and the
# last level is what a webcam can really produce (a hand tilted 45 degrees, half the frame, a
# dim room, a warm lamp, a cheap sensor).
SHIFTS: tuple[ShiftSpec, ...] = (
    ShiftSpec("rotate", rotate, (15, 30, 45), "degrees, either direction"),
    ShiftSpec("zoom-out", zoom_out, (1.25, 1.5, 2.0), "hand shrunk by this factor"),
    ShiftSpec("zoom-in", zoom_in, (1.15, 1.3, 1.45), "centre crop magnified by this factor"),
    ShiftSpec("translate", translate, (0.08, 0.15, 0.22), "fraction of the side, any direction"),
    ShiftSpec("brightness", brightness, (0.3, 0.6, 1.0), "x or / (1 + s)"),
    ShiftSpec("contrast", contrast, (0.3, 0.6, 1.0), "x or / (1 + s) about the mean"),
    ShiftSpec("gamma", gamma, (1.3, 1.7, 2.2), "exponent s or 1/s"),
    ShiftSpec("temperature", temperature, (0.1, 0.2, 0.3), "red +s, blue -s (or reverse)"),
    ShiftSpec("hue", hue, (10, 20, 35), "degrees, either direction"),
    ShiftSpec("saturation", saturation, (0.5, 1.0, 2.0), "x or / (1 + s)"),
    ShiftSpec("blur", blur, (0.7, 1.2, 2.0), "Gaussian sigma, pixels"),
    ShiftSpec("noise", noise, (6, 12, 24), "Gaussian std, grey levels"),
    ShiftSpec("jpeg", jpeg, (40, 20, 8), "JPEG quality"),
    ShiftSpec("background", background, (1, 2, 3, 4), "solid, gradient, texture, photo", True),
    ShiftSpec("mirror", mirror, (1,), "left/right flip"),
)
SHIFT_NAMES = tuple(s.name for s in SHIFTS)
_BY_NAME = {s.name: s for s in SHIFTS}


def spec(name: str) -> ShiftSpec:
    if name not in _BY_NAME:
        raise ValueError(f"shift {name!r}: expected one of {', '.join(SHIFT_NAMES)}")
    return _BY_NAME[name]


def apply_shift(
    images: np.ndarray,
    name: str,
    severity: int,
    seed: int = 0,
    masks: np.ndarray | None = None,
) -> np.ndarray:
    """``images`` (N, 64, 64, 3) uint8 under one shift at one severity (0 = unchanged).

    The randomness of image i depends only on (seed, shift, severity, i).
    """
    s = spec(name)
    if not 0 <= severity <= len(s.severities):
        raise ValueError(f"{name}: severity {severity} outside 0..{len(s.severities)}")
    if severity == 0:
        return images.copy()
    if s.needs_mask and masks is None:
        masks = bg.hand_masks(images)
    param = s.severities[severity - 1]
    sid = SHIFT_NAMES.index(name)
    out = np.empty_like(images)
    for i, x in enumerate(images):
        rng = np.random.default_rng([seed, sid, severity, i])
        out[i] = s.fn(x, param, rng, None if masks is None else masks[i])
    return out


def random_shift(
    images: np.ndarray, seed: int, masks: np.ndarray | None = None
) -> tuple[np.ndarray, list[str]]:
    """Each image under one shift at a random severity (the shifted validation split).

    Returns the images and, per image, "name:severity".
    """
    rng = np.random.default_rng([seed, 7919])
    out = np.empty_like(images)
    tags = []
    for i, x in enumerate(images):
        s = SHIFTS[rng.integers(len(SHIFTS))]
        level = int(rng.integers(1, len(s.severities) + 1))
        r = np.random.default_rng([seed, SHIFT_NAMES.index(s.name), level, i])
        m = None
        if s.needs_mask:
            m = masks[i] if masks is not None else bg.hand_mask(x)
        out[i] = s.fn(x, s.severities[level - 1], r, m)
        tags.append(f"{s.name}:{level}")
    return out, tags
