"""Keep the found hand, put it on the SIGNS wall: what the network reads after the palm finder.

The SIGNS network reads a hand on clutter far worse than on the light wall it was trained on
(README, "Scene bench": 0.60-0.68 given the hand's exact box). Once the palm detector has found
the palm, its colour is known: the pixels around the palm's centre give a skin model in CIELAB
chroma (a*, b*; lightness left out, so shadows on the fingers stay hand), every pixel whose
Mahalanobis distance to it is under :data:`CHROMA_DISTANCE` is a hand candidate, and the
candidate region connected to the palm is the hand. Everything else becomes :data:`WALL_RGB`, the
colour of the SIGNS photos' wall, with a feathered edge as in training's background replacement
(``train.backgrounds.composite``). The sample's radius and the distance were chosen on the
*val* scenes (README, "Scene bench").

The colour model comes from the area-averaged 64x64 pixels the network sees (one square's, then
shared by all the squares of the frame: one whitening transform for every pixel, ~2 ms a frame
in all). A crop with no palm-coloured pixel under the palm's centre is left as it was.
"""

from __future__ import annotations

import cv2
import numpy as np

from runtime.preprocess import IMAGE_SIZE

# Mean colour of the 1,080 SIGNS training photos' 3-pixel borders (the wall), RGB.
WALL_RGB = np.array([205, 197, 187], np.float32)
CHROMA_SAMPLE = 0.25  # radius of the palm sample, in palm sides
CHROMA_DISTANCE = 5.0  # Mahalanobis distance in (a*, b*) still counted as the palm's colour
CHROMA_FLOOR = 4.0  # added to the sample's variances: a flat palm must not give a zero-width model
MIN_SAMPLE = 5  # pixels; fewer (a tiny palm) and the crop is left as it was
FEATHER_SIGMA = 0.8  # pixels of edge blur, as training's composite
_CLOSE = np.ones((3, 3), np.uint8)


def hand_masks(
    crops: np.ndarray, centres: np.ndarray, radius: float, sample_from: int = 0
) -> np.ndarray:
    """The hand in each crop, from the colour around its palm.

    Args:
        crops: (n, 64, 64, 3) RGB uint8, the squares the network will read.
        centres: (n, 2) the palm's centre in each crop's pixels (x, y); may lie outside it.
        radius: the palm sample's radius, in pixels of crop ``sample_from``.
        sample_from: the crop the palm's colour is sampled from; that one colour model serves
            them all.

    Returns:
        (n, 64, 64) float32 in [0, 1]: 1 on the hand (the palm-coloured region under the palm's
        centre), feathered at its edge; all ones where there is no palm-coloured region under
        the centre (the crop is then read unchanged).
    """
    n, size = len(crops), IMAGE_SIZE
    out = np.ones((n, size, size), np.float32)
    lab = cv2.cvtColor(crops.reshape(n * size, size, 3), cv2.COLOR_RGB2LAB)
    ab = lab[..., 1:].astype(np.float32)  # (n * 64, 64, 2)
    cx, cy = float(centres[sample_from][0]), float(centres[sample_from][1])
    ys, xs = np.ogrid[0:size, 0:size]
    sample = ab[sample_from * size : (sample_from + 1) * size][
        np.square(xs - cx) + np.square(ys - cy) <= radius * radius
    ]
    if len(sample) < MIN_SAMPLE:
        return out
    cov = np.cov(sample.T) + np.eye(2) * CHROMA_FLOOR
    # Whiten: the Mahalanobis distance becomes a Euclidean one, one cv2.transform for all pixels.
    white = np.linalg.cholesky(np.linalg.inv(cov)).T
    shift = -white @ sample.mean(axis=0)
    z = cv2.transform(ab, np.hstack([white, shift[:, None]]).astype(np.float32))
    z *= z
    near = (z[..., 0] + z[..., 1] < CHROMA_DISTANCE**2).astype(np.uint8).reshape(n, size, size)
    seeds = np.clip(np.rint(np.asarray(centres, np.float64)), 0, size - 1).astype(int)
    for i, (x, y) in enumerate(seeds):
        if not near[i, y, x]:
            continue
        _, regions = cv2.connectedComponents(near[i], connectivity=8)
        hand = cv2.morphologyEx(
            (regions == regions[y, x]).astype(np.uint8), cv2.MORPH_CLOSE, _CLOSE
        )
        out[i] = cv2.GaussianBlur(hand.astype(np.float32), (0, 0), FEATHER_SIGMA)
    return out


def on_wall(crops: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Each crop's hand (``masks`` from :func:`hand_masks`) on the SIGNS wall, RGB uint8."""
    n, size = len(crops), IMAGE_SIZE
    flat = crops.reshape(n * size, size, 3)
    wall = np.empty_like(flat)
    wall[:] = np.rint(WALL_RGB).astype(np.uint8)
    a = masks.reshape(n * size, size)
    return cv2.blendLinear(flat, wall, a, 1.0 - a).reshape(crops.shape)
