"""The per-frame engine: region of interest, shared preprocessing, inference, smoothing.

``runtime.webcam`` and ``benchmarks`` both drive :class:`FramePipeline`, so the latency the
benchmark quotes is the latency of the loop the user runs. It knows nothing of model formats
(that is :mod:`runtime.backends`) or of cameras and windows (that is :mod:`runtime.webcam`).

Region of interest. By default the largest centred square whose side is 64 * 2**k px: 256 px for
640x480, 512 for 1280x720, 1024 for 1920x1080. Such a side reaches 64x64 through exact 2x
reductions only, OpenCV's SIMD INTER_AREA fast path: here the 256 px ROI of a 640x480 frame
takes ~0.05 ms to preprocess, a 384 px one (2x, then a generic 3x) ~0.2 ms, and the full 480 px
centre square (7.5x, INTER_AREA's generic path) ~0.8 ms, more than the model itself. ``Roi(side)``
asks for any other side (``--roi 384`` for a bigger box, ``--roi 0`` for the full square).

Smoothing. An exponential moving average of the probabilities per frame,
``p = smooth * p + (1 - smooth) * raw``, with ``smooth`` = :data:`DEFAULT_SMOOTH` = 0.6 (0 turns
it off). It is per frame, not per second, so replaying a video is deterministic. With 0.6 one
odd frame cannot flip a steady label (its weight is 0.4), while a real change shows within
2-3 frames and always within 5 (167 ms at 30 fps) once the new sign's raw confidence is at
least 0.6: after n frames the old state keeps weight 0.6**n, 0.078 at n = 5.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from runtime.backends import Backend
from runtime.errors import SettingError
from runtime.preprocess import IMAGE_SIZE, NUM_CLASSES, preprocess

if TYPE_CHECKING:
    from runtime.handsearch import HandSearch

DEFAULT_SMOOTH = 0.6  # EMA weight of the past per frame; see the module docstring
# Below this smoothed probability the loop shows "no sign", unless the model's manifest.json
# carries the value calibrated at training time (runtime.manifest.NoSign).
DEFAULT_MIN_CONFIDENCE = 0.5


def check_min_confidence(min_confidence: float | None) -> None:
    """The one rule for a min-confidence setting; None means "the model's own value".

    Raises:
        SettingError: ``min_confidence`` outside [0, 1].
    """
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise SettingError("min_confidence", min_confidence, "must be in [0, 1]")


def check_smoothing(smooth: float, min_confidence: float | None) -> None:
    """The one rule for the smoothing settings (the webcam's settings and the pipeline use it).

    Raises:
        SettingError: ``smooth`` outside [0, 1) or ``min_confidence`` outside [0, 1].
    """
    if not 0.0 <= smooth < 1.0:
        raise SettingError("smooth", smooth, "must be in [0, 1) (0 = no smoothing)")
    check_min_confidence(min_confidence)


def check_roi(side: int | None) -> None:
    """A requested ROI side before any frame is seen (whether it fits is checked per frame).

    Raises:
        SettingError: a negative side.
    """
    if side is not None and side < 0:
        raise SettingError("roi", side, "must be 0 (full centre square) or a side in px")


@dataclass(frozen=True)
class Roi:
    """A centred square region of interest.

    ``side`` is in pixels; None means the default (the largest 64 * 2**k px that fits, so every
    resize stage is an exact 2x), 0 means the largest centred square of the frame.
    """

    side: int | None = None

    def box(self, width: int, height: int) -> tuple[int, int, int]:
        """(x, y, side) of the square in a ``width`` x ``height`` frame.

        Raises:
            SettingError: the requested side does not fit the frame.
        """
        fit = min(width, height)
        if self.side is None:
            side = IMAGE_SIZE
            while side * 2 <= fit:
                side *= 2
            if fit < IMAGE_SIZE:  # tiny frames: the whole square, upscaled
                side = fit
        elif self.side == 0:
            side = fit
        else:
            side = self.side
            if side > fit:
                raise SettingError(
                    "roi",
                    side,
                    f"a {side} px square does not fit a {width}x{height} frame (at most {fit})",
                )
            if side < IMAGE_SIZE:
                raise SettingError("roi", side, f"the square must be at least {IMAGE_SIZE} px")
        return (width - side) // 2, (height - side) // 2, side


@dataclass(slots=True)
class FrameResult:
    """What one frame produced."""

    label: int | None  # class index shown, None for "no sign" (below min_confidence)
    confidence: float  # smoothed probability of the top class
    probs: np.ndarray  # (6,) float32 smoothed probabilities (a copy, safe to keep)
    raw: np.ndarray  # (6,) float32 probabilities of this frame alone
    times: dict[str, float]  # ms per stage: preprocess, inference, smoothing
    box: tuple[int, int, int]  # the ROI used: x, y, side in frame pixels
    found: bool | None = None  # hand search: a hand found at ``box``; None: search off


class Smoother:
    """Exponential moving average of class probabilities, without per-frame allocations."""

    def __init__(self, smooth: float = DEFAULT_SMOOTH, num_classes: int = NUM_CLASSES) -> None:
        check_smoothing(smooth, 0.0)
        self.smooth = float(smooth)
        self._keep = np.float32(smooth)
        self._take = np.float32(1.0 - smooth)
        self._probs = np.zeros(num_classes, dtype=np.float32)
        self._scratch = np.zeros(num_classes, dtype=np.float32)
        self._primed = False

    def reset(self) -> None:
        self._primed = False

    def update(self, raw: np.ndarray) -> np.ndarray:
        """Fold in one frame's probabilities; returns the internal buffer (copy to keep it)."""
        if not self._primed:
            # Start from the first frame, not from zeros: no ramp-up at start.
            np.copyto(self._probs, raw, casting="same_kind")
            self._primed = True
        elif self._keep:
            np.multiply(raw, self._take, out=self._scratch, casting="same_kind")
            self._probs *= self._keep
            self._probs += self._scratch
        else:
            np.copyto(self._probs, raw, casting="same_kind")
        return self._probs


def decide(probs: np.ndarray, min_confidence: float) -> tuple[int | None, float]:
    """The label to show: the top class, or None when its probability is below the threshold."""
    top = int(probs.argmax())
    conf = float(probs[top])
    return (top if conf >= min_confidence else None), conf


class FramePipeline:
    """ROI crop -> shared preprocessing -> backend -> smoothing, for one BGR frame at a time.

    Args:
        backend: any :class:`runtime.backends.Backend`.
        roi: the region of interest; None for the default centre square (see module docstring).
        smooth: EMA weight of the past, in [0, 1); 0 disables smoothing.
        min_confidence: smoothed top probability below which the label is None ("no sign").
        mirror: flip horizontally (selfie view); the model sees what the user sees. The ROI is
            centred, so flipping the 64x64 model input equals flipping the frame first (tests
            check this for the default ROI) and costs ~1 us instead of a full-frame flip.
        search: a :class:`runtime.handsearch.HandSearch` to find the hand anywhere instead of
            the fixed ROI. Its windows are not mirrored (a mirrored hand shows the same count
            and the model is trained on both); the box is in unmirrored frame pixels.
    """

    def __init__(
        self,
        backend: Backend,
        roi: Roi | None = None,
        smooth: float = DEFAULT_SMOOTH,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        mirror: bool = False,
        search: HandSearch | None = None,
    ) -> None:
        check_smoothing(smooth, min_confidence)
        self.backend = backend
        self.roi = roi or Roi()
        self.smoother = Smoother(smooth)
        self.min_confidence = float(min_confidence)
        self.mirror = mirror
        self.search = search
        self._uniform = np.full(NUM_CLASSES, 1.0 / NUM_CLASSES, dtype=np.float32)
        self._shape: tuple[int, int] | None = None
        self._box = (0, 0, 0)

    def box_for(self, frame: np.ndarray) -> tuple[int, int, int]:
        """The ROI (x, y, side) for a frame of this size."""
        h, w = frame.shape[:2]
        if (h, w) != self._shape:
            self._box = self.roi.box(w, h)
            self._shape = (h, w)
        return self._box

    def step(self, frame_bgr: np.ndarray) -> FrameResult:
        """Classify one H x W x 3 uint8 BGR frame."""
        if self.search is not None:
            return self._search_step(frame_bgr)
        clock = time.perf_counter_ns
        t0 = clock()
        x, y, side = self.box_for(frame_bgr)
        image = preprocess(frame_bgr[y : y + side, x : x + side], bgr=True)
        if self.mirror:
            image = cv2.flip(image, 1)
        t1 = clock()
        raw = self.backend.predict_one(image)
        t2 = clock()
        return self._decided(raw, (t1 - t0) / 1e6, (t2 - t1) / 1e6, self._box, None)

    def _search_step(self, frame_bgr: np.ndarray) -> FrameResult:
        """The hand search's box and probabilities; "no hand" feeds the smoother a uniform
        distribution (the outlier-exposure target), so smoothing and min_confidence decide as
        for the fixed ROI."""
        found = self.search.find(frame_bgr)
        raw = found.probs if found.found else self._uniform
        return self._decided(raw, found.times[0], found.times[1], found.box, found.found)

    def _decided(
        self, raw: np.ndarray, preprocess_ms: float, inference_ms: float, box, found: bool | None
    ) -> FrameResult:
        """Smoothing and the decision, timed, for either way of finding the box."""
        t0 = time.perf_counter_ns()
        probs = self.smoother.update(raw)
        label, conf = decide(probs, self.min_confidence)
        t1 = time.perf_counter_ns()
        return FrameResult(
            label=label,
            confidence=conf,
            probs=probs.copy(),
            raw=raw,
            times={
                "preprocess": preprocess_ms,
                "inference": inference_ms,
                "smoothing": (t1 - t0) / 1e6,
            },
            box=box,
            found=found,
        )
