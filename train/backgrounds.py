"""Hand masks for SIGNS photos, background material, and compositing (training and bench only).

Numpy + OpenCV (+ scikit-image's bundled sample images), never TensorFlow, so the robustness
report and the synthetic-scene bench use exactly what training uses.

- :func:`hand_mask`: SIGNS hands are photographed against a light, nearly grey wall. A pixel is
  "hand" when its colour is far from the wall's: chroma distance in CIELAB from the border's
  median colour (skin is reddish, the wall is neutral, shadows on the wall stay neutral), plus
  how much darker it is than a plane fitted to the border's lightness (the wall is lit
  unevenly). Otsu picks the threshold per image; GrabCut refines the edges from that seed;
  morphology and "keep the large components" remove specks.
- Background material, all seeded: crops of scikit-image's sample images (split by *image* into
  train / val / test groups, so the report and calibration see scenes training never saw),
  patches of the SIGNS wall (from whichever images the caller passes), and synthetic textures.
- :func:`composite`: a hand onto a background with a feathered mask.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import cv2
import numpy as np

SIZE = 64
MASK_VERSION = "lab-grabcut-1"  # change when hand_mask changes: invalidates cached masks
GC_ITERS = 1  # one GrabCut pass: 15 ms an image, masks within 1% IoU of three passes

# scikit-image sample images (files inside the wheel's skimage/data, no download), split by
# image so held-out scenes are really new. train: varied natural photos, textures and
# graphics; val (min-confidence calibration, checkpoint choice): one of each kind; test (the
# robustness report and the synthetic-scene bench only).
NATURAL_IMAGES = {
    "train": (
        "astronaut.png", "brick.png", "camera.png", "chelsea.png", "coins.png", "grass.png",
        "moon.png", "text.png", "clock_motion.png", "chessboard_RGB.png", "ihc.png",
        "color.png", "logo.png", "retina.jpg",
    ),
    "val": ("rocket.jpg", "page.png", "cell.png"),
    "test": ("coffee.png", "gravel.png", "motorcycle_left.png", "hubble_deep_field.jpg"),
}  # fmt: skip

TEXTURES = ("solid", "gradient", "radial", "noise", "blobs", "stripes", "checker")


def _skimage_data_dir() -> Path:
    try:
        import skimage
    except ImportError as exc:  # the `train` extra; the device runtime never needs it
        raise ImportError("scikit-image is needed: pip install -e '.[train]'") from exc
    return Path(skimage.__file__).parent / "data"


@cache
def natural_images(split: str) -> tuple[np.ndarray, ...]:
    """The scikit-image sample images of one split, as RGB uint8 (grey ones replicated)."""
    if split not in NATURAL_IMAGES:
        raise ValueError(f"split {split!r}: expected one of {sorted(NATURAL_IMAGES)}")
    folder = _skimage_data_dir()
    out = []
    for name in NATURAL_IMAGES[split]:
        img = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)  # BGR; grey -> 3 channels
        if img is None:
            raise FileNotFoundError(f"{folder / name}: missing from scikit-image's data")
        out.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    return tuple(out)


# --- the hand mask --------------------------------------------------------------------------


def _border(a: np.ndarray, width: int = 3) -> np.ndarray:
    """Boolean mask of the top, left and right borders (the bottom usually holds the arm)."""
    m = np.zeros(a.shape[:2], dtype=bool)
    m[:width] = True
    m[:, :width] = True
    m[:, -width:] = True
    return m


def hand_score(image: np.ndarray) -> np.ndarray:
    """Per-pixel "not wall" score (float32, H x W) of an RGB uint8 SIGNS photo."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    h, w = lab.shape[:2]
    border = _border(lab)
    # The wall is the brighter part of the border (an arm or finger may touch it).
    light = lab[..., 0]
    bvals = light[border]
    wall = border & (light >= np.percentile(bvals, 40))
    a0, b0 = np.median(lab[..., 1][wall]), np.median(lab[..., 2][wall])
    chroma = np.hypot(lab[..., 1] - a0, lab[..., 2] - b0)
    # Lightness plane through the wall pixels: L ~ c0 + c1 x + c2 y (least squares).
    ys, xs = np.nonzero(wall)
    design = np.stack([np.ones_like(xs), xs, ys], axis=1).astype(np.float32)
    coef, *_ = np.linalg.lstsq(design, light[wall], rcond=None)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    plane = coef[0] + coef[1] * xx + coef[2] * yy
    darker = np.clip(plane - light, 0, None)
    # Chroma counts more: OpenCV's 8-bit Lab stretches L to 0..255 but a/b barely move.
    return (2.5 * chroma + 0.5 * darker).astype(np.float32)


def hand_mask(image: np.ndarray, *, grabcut: bool = True) -> np.ndarray:
    """Binary hand mask (uint8 0/1, H x W) of an RGB uint8 photo of a hand on a light wall."""
    score = cv2.GaussianBlur(hand_score(image), (3, 3), 0)
    s8 = np.clip(score * (255.0 / max(float(score.max()), 1e-6)), 0, 255).astype(np.uint8)
    t, _ = cv2.threshold(s8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # A floor keeps Otsu from splitting a hand-free (pure wall) image into two wall halves.
    floor = 18.0 * 255.0 / max(float(score.max()), 1e-6)
    t = max(t, floor)
    fg = s8 > t
    if grabcut and 0.02 < fg.mean() < 0.9:
        gc = np.where(fg, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
        gc[s8 > min(255, 1.6 * t)] = cv2.GC_FGD
        gc[s8 < 0.4 * t] = cv2.GC_BGD
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        cv2.setRNGSeed(0)  # GrabCut's k-means init is random; keep masks reproducible
        cv2.grabCut(bgr, gc, None, bgd, fgd, GC_ITERS, cv2.GC_INIT_WITH_MASK)
        fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    m = fg.astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, kernel)
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, kernel)
    return _clean(m)


def _clean(m: np.ndarray) -> np.ndarray:
    """Keep components of at least a fifth of the largest; fill holes smaller than 1% of it.

    Big holes stay open: the "0" sign's ring encloses real wall.
    """
    n, lab, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n <= 1:
        return m
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= 0.2 * areas.max()) + 1
    m = np.isin(lab, keep).astype(np.uint8)
    inv = 1 - m
    n, lab, stats, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
    small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < max(4, 0.01 * m.sum()))
    m[np.isin(lab, small) & (inv == 1)] = 1
    return m


def hand_masks(images: np.ndarray, cache: bool = False) -> np.ndarray:
    """:func:`hand_mask` of every image: (N, H, W) uint8 0/1 (about 15 ms per 64x64 image).

    With ``cache``, the masks are kept in ``$XDG_CACHE_HOME/signs-edge`` (default
    ``~/.cache/signs-edge``) under a hash of the images and of this module's mask version, so
    repeated training runs on the same data do not recompute them.
    """
    if not len(images):
        return np.zeros((0, *images.shape[1:3]), np.uint8)
    if not cache:
        return np.stack([hand_mask(im) for im in images])
    import hashlib
    import os

    digest = hashlib.sha256(images.tobytes() + MASK_VERSION.encode()).hexdigest()[:24]
    from runtime.fsutil import cache_dir

    root = cache_dir()
    path = root / f"masks-{digest}.npy"
    if path.is_file():
        masks = np.load(path)
        if masks.shape == images.shape[:3]:
            return masks
    masks = hand_masks(images)
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, masks)
        tmp.replace(path)
    except OSError:
        pass  # a read-only home only costs the recomputation
    return masks


# --- background material --------------------------------------------------------------------


def natural_crop(images: tuple[np.ndarray, ...], rng: np.random.Generator) -> np.ndarray:
    """A random square crop (side 48-320 px, as a camera ROI sees a scene) resized to 64x64."""
    img = images[rng.integers(len(images))]
    h, w = img.shape[:2]
    side = int(rng.integers(48, min(320, h, w) + 1))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = cv2.resize(img[y : y + side, x : x + side], (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop)


def wall_patch(
    images: np.ndarray, masks: np.ndarray, rng: np.random.Generator, tries: int = 20
) -> np.ndarray:
    """A hand-free square (side 12-40 px) of a SIGNS photo's wall, resized to 64x64."""
    for _ in range(tries):
        i = int(rng.integers(len(images)))
        h, w = images[i].shape[:2]
        side = int(rng.integers(12, min(40, h, w) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        if masks[i, y : y + side, x : x + side].mean() < 0.01:
            crop = images[i][y : y + side, x : x + side]
            return cv2.resize(crop, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    # Nothing free found (hand everywhere): the wall's median colour as a flat patch.
    wall = images[i][masks[i] == 0]
    colour = np.median(wall, axis=0) if len(wall) else np.full(3, 220.0)
    return np.broadcast_to(colour.astype(np.uint8), (SIZE, SIZE, 3)).copy()


def synthetic_texture(rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """One 64x64 RGB uint8 texture: solid, gradient, radial, noise, blobs, stripes or checker."""
    kind = kind or TEXTURES[rng.integers(len(TEXTURES))]
    c1, c2 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / (SIZE - 1)
    if kind == "solid":
        t = np.zeros((SIZE, SIZE), np.float32)
    elif kind == "gradient":
        a = rng.uniform(0, 2 * np.pi)
        t = np.cos(a) * xx + np.sin(a) * yy
        t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    elif kind == "radial":
        cx, cy = rng.uniform(0, 1, 2)
        t = np.clip(np.hypot(xx - cx, yy - cy) / rng.uniform(0.4, 1.2), 0, 1)
    elif kind == "noise":
        img = c1 + rng.normal(0, rng.uniform(10, 80), (SIZE, SIZE, 3))
        return np.clip(img, 0, 255).astype(np.uint8)
    elif kind == "blobs":  # smooth low-frequency noise, like an out-of-focus room
        k = int(rng.integers(3, 9))
        small = rng.uniform(0, 255, (k, k, 3)).astype(np.float32)
        big = cv2.resize(small, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
        return np.clip(big, 0, 255).astype(np.uint8)
    elif kind == "stripes":
        a, period = rng.uniform(0, np.pi), rng.uniform(4, 24)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * (np.cos(a) * xx + np.sin(a) * yy) * SIZE / period)
    elif kind == "checker":
        cell = int(rng.integers(4, 17))
        iy, ix = np.mgrid[0:SIZE, 0:SIZE] // cell
        t = ((iy + ix) % 2).astype(np.float32)
    else:
        raise ValueError(f"texture {kind!r}: expected one of {TEXTURES}")
    img = c1 * (1 - t[..., None]) + c2 * t[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def backgrounds(
    n: int,
    seed: int,
    split: str = "train",
    walls: tuple[np.ndarray, np.ndarray] | None = None,
    mix: tuple[float, float, float] = (0.5, 0.2, 0.3),
) -> np.ndarray:
    """``n`` seeded 64x64 RGB uint8 backgrounds: natural crops, wall patches and textures.

    Args:
        n: how many.
        seed: the same seed gives the same backgrounds.
        split: which scikit-image images to crop ("train", "val" or "test").
        walls: (images, masks) to cut SIGNS wall patches from; None: no wall patches (their
            share goes to natural crops).
        mix: fractions of natural crops, wall patches and synthetic textures.
    """
    rng = np.random.default_rng(seed)
    images = natural_images(split)
    p = np.asarray(mix, dtype=np.float64)
    if walls is None:
        p = np.array([p[0] + p[1], 0.0, p[2]])
    kinds = rng.choice(3, size=n, p=p / p.sum())
    out = np.empty((n, SIZE, SIZE, 3), np.uint8)
    for i, k in enumerate(kinds):
        if k == 0:
            out[i] = natural_crop(images, rng)
        elif k == 1:
            out[i] = wall_patch(walls[0], walls[1], rng)
        else:
            out[i] = synthetic_texture(rng)
    return out


# --- compositing ----------------------------------------------------------------------------


def feather(mask: np.ndarray, sigma: float = 0.8) -> np.ndarray:
    """A 0/1 mask -> float32 alpha in [0, 1] with softened edges (no hard cut-out halo)."""
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma)


def composite(hand: np.ndarray, mask: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Put the masked hand onto ``background`` (same H x W): uint8 RGB out.

    ``mask`` is 0/1 (feathered here) or an already-soft float alpha.
    """
    alpha = feather(mask) if mask.dtype == np.uint8 else mask.astype(np.float32)
    a = alpha[..., None]
    out = hand.astype(np.float32) * a + background.astype(np.float32) * (1.0 - a)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
