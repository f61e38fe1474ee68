"""The synthetic 640x480 test video: hand photos where the camera loop looks, on a backdrop.

One definition for the benchmarks' frame-pipeline rows, the arm64 comparison and the tests, so
they all measure and check the same kind of frame: a webcam-sized picture whose default region
of interest (:class:`runtime.pipeline.Roi`) holds a SIGNS image, around it a smooth, textured,
non-uniform backdrop (a wrong crop changes the prediction and is noticed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.errors import SourceError

FRAME_SIZE = (640, 480)  # px, width x height: a typical webcam frame
FPS = 30.0  # frames per second written into the video header


def backdrop(height: int, width: int) -> np.ndarray:
    """A BGR gradient that differs in x, y and along the diagonal."""
    yy, xx = np.mgrid[0:height, 0:width]
    bg = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) * 127 // (width + height) + 64])
    return np.moveaxis(bg, 0, -1).astype(np.uint8)


def write_test_video(
    images: np.ndarray,
    path: str | Path,
    frames: int | None = None,
    *,
    repeat: int = 1,
    codec: str = "MJPG",
    nearest: bool = False,
    mirror_alternate: bool = False,
) -> Path:
    """Write ``frames`` frames (default: every image once x ``repeat``) of ``images`` to ``path``.

    Args:
        images: (N, H, W, 3) uint8 RGB images (a dataset split's ``x``), cycled in order.
        path: the video file.
        frames: how many frames; None = ``len(images) * repeat``.
        repeat: consecutive frames per image (a held sign).
        codec: a fourcc: MJPG (what webcams deliver), FFV1 (lossless: identical pixels wherever
            it is decoded).
        nearest: enlarge with INTER_NEAREST, so the ROI's exact area-resize gives back the
            original pixels (up to codec loss); else INTER_LINEAR, a smoother, camera-like picture.
        mirror_alternate: flip every image on every other pass through ``images``.

    Raises:
        SourceError: OpenCV cannot write this codec here.
    """
    import cv2

    from runtime.pipeline import Roi

    path = Path(path)
    width, height = FRAME_SIZE
    left, top, side = Roi().box(width, height)
    n = len(images) * repeat if frames is None else frames
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), FPS, FRAME_SIZE)
    if not writer.isOpened():
        raise SourceError(f"{path}: OpenCV cannot write {codec} video on this machine")
    bg = backdrop(height, width)
    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    try:
        for k in range(n):
            i = k // repeat
            rgb = images[i % len(images)]
            if mirror_alternate and (i // len(images)) % 2:
                rgb = rgb[:, ::-1]
            frame = bg.copy()
            big = cv2.resize(rgb, (side, side), interpolation=interpolation)
            frame[top : top + side, left : left + side] = big[:, :, ::-1]
            writer.write(frame)
    finally:
        writer.release()
    return path
