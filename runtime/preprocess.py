"""The one preprocessing path for every image the project feeds a model.

Training-time evaluation, export validation, ``runtime.evaluate`` and the camera loop all call
:func:`preprocess` (image -> 64x64 RGB uint8) and :func:`to_model_input` (uint8 -> float32 in
[0, 1]), so what the model sees on the device is what it saw in training. Scaling to [0, 1]
happens only in :func:`to_model_input` (float models) or, for int8 models, in the quantization
parameters of the model's input tensor (scale 1/255, zero point -128), which
``runtime.backends`` applies from the model itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

# The model's interface, defined here once: every module that needs it imports it from here.
IMAGE_SIZE = 64  # pixels; the SIGNS CNN's input is 64x64x3
INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 3)  # height, width, RGB
NUM_CLASSES = 6  # 0 to 5 fingers
INPUT_SCALE = np.float32(1.0 / 255.0)  # uint8 pixel -> [0, 1] float, as in the notebook


@dataclass(frozen=True)
class PreprocessConfig:
    """What :func:`preprocess` does, recorded in the export manifest for the runtime."""

    size: int = IMAGE_SIZE  # output side, pixels
    crop: str = "center-square"  # the largest centred square of the image
    interpolation: str = "area"  # cv2.INTER_AREA semantics (staged exact 2x steps where possible)
    color: str = "RGB"  # channel order the model was trained on; OpenCV frames are BGR
    scale: float = float(INPUT_SCALE)  # float models: x = pixel * scale
    dtype: str = "uint8"  # preprocess output; scaling is the backend's job

    def to_dict(self) -> dict:
        return asdict(self)


def center_square(image: np.ndarray) -> np.ndarray:
    """The largest centred square of ``image`` (a view, no copy)."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image[top : top + side, left : left + side]


def area_resize(square: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """Resize a square image to ``size`` x ``size`` with area averaging, cheaply.

    OpenCV's INTER_AREA has a SIMD fast path only for exact 2x reductions; other factors take
    a generic path that costs ~0.5-0.9 ms for a 480x480 camera crop. While the remaining factor
    is an even integer we halve with that fast path: averaging 2x2 blocks and then k x k blocks
    is exactly averaging 2k x 2k blocks, so the result equals a direct INTER_AREA resize up to
    one grey level of rounding per stage (tests check this).
    """
    side = square.shape[0]
    if side == size:
        return square
    if side < size:
        return cv2.resize(square, (size, size), interpolation=cv2.INTER_LINEAR)
    while side % (2 * size) == 0 and side // size > 2:
        side //= 2
        square = cv2.resize(square, (side, side), interpolation=cv2.INTER_AREA)
    return cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)


def preprocess(image: np.ndarray, *, bgr: bool) -> np.ndarray:
    """Any H x W x 3 uint8 image -> the model's 64x64x3 RGB uint8 input.

    Args:
        image: H x W x 3 uint8, BGR if it came from OpenCV (``bgr=True``), else RGB.
        bgr: whether the channels are in OpenCV's BGR order.

    Returns:
        A C-contiguous (64, 64, 3) uint8 RGB array.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"expected an H x W x 3 uint8 image, got shape {image.shape} dtype {image.dtype}"
        )
    small = area_resize(center_square(image), IMAGE_SIZE)
    if bgr:
        # Convert after the resize: 64x64 pixels instead of the whole frame.
        return cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(small)


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 pixels (any shape) -> float32 in [0, 1]: the float models' input scaling."""
    return images.astype(np.float32) * INPUT_SCALE
