"""``--find-hand`` with the palm detector: find the hand, then let the SIGNS network count.

The palm detector (:mod:`runtime.palm.detector`) says whether a hand is in the frame and where
its palm is, in three views (the whole frame and the squares at its two ends); the SIGNS
classifier then reads a square around the whole hand. The square's size and position relative
to the palm were measured on the *val* scenes (validation hands placed on the val backgrounds;
``python -m benchmarks.scenes make --split val``), never on test scenes: the SIGNS photo around
a detected palm is :data:`CROP_SCALE` palm sides wide (median 2.84, quartiles 2.64-3.19) and its
centre lies :data:`CROP_SHIFT` palm sides from the palm's centre towards the fingers (median
0.51; sideways -0.04). Because one square is a guess, the network reads :data:`OFFSETS` x
:data:`SCALES` squares around it (15) and the most confident reading wins: on the val scenes
that read 0.89 of the hands against 0.84 for the single square. Every view whose palm passes
the score gets its 15 squares, and the most confident of them all wins. Before the network
reads them, each square keeps only the hand, found by the palm's colour, and puts it on the
SIGNS wall (:mod:`runtime.palm.segment`).

No palm in any view (score below :data:`runtime.palm.detector.MIN_SCORE`) means no hand: the
pipeline then feeds the uniform distribution and shows "no sign", whatever the classifier would
have said.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from runtime.backends import Backend
from runtime.handsearch import Found, predict_batched, smoothed_box
from runtime.palm.detector import MIN_SCORE, Palm, PalmDetector
from runtime.palm.segment import CHROMA_SAMPLE, hand_masks, on_wall
from runtime.preprocess import IMAGE_SIZE, NUM_CLASSES

CROP_SCALE = 2.84  # the hand's square, in palm sides (val scenes' median)
CROP_SHIFT = 0.51  # its centre, palm sides from the palm's towards the fingers (val median)
# Squares read around the first guess: shifts (in palm sides, a tenth of the square) and size
# factors.
OFFSETS = ((0.0, 0.0), (0.25, 0.0), (-0.25, 0.0), (0.0, 0.25), (0.0, -0.25))
SCALES = (0.85, 1.0, 1.2)


class PalmSearch:
    """Palm detector + the SIGNS classifier, with :class:`runtime.handsearch.HandSearch`'s
    interface (``find``, ``reset``, ``describe``, ``classified``), so the frame pipeline, the
    window, the web view and the scene bench take either.

    Args:
        backend: the SIGNS classifier.
        detector: the palm detector.
        min_score: palm score needed to call it a hand.
    """

    def __init__(
        self, backend: Backend, detector: PalmDetector, min_score: float = MIN_SCORE
    ) -> None:
        self.backend, self.detector, self.min_score = backend, detector, float(min_score)
        self._last: np.ndarray | None = None  # smoothed box (cx, cy, side)
        self.classified = 0

    def describe(self) -> str:
        return (
            f"palm detector {self.detector.path.name} ({self.detector.runtime}, threads "
            f"{self.detector.threads or 'auto'}) on the frame and "
            f"its two end squares, score >= {self.min_score:g}, then "
            f"{len(OFFSETS) * len(SCALES)} squares around each palm found, "
            "the hand kept by its palm's colour and put on the SIGNS wall"
        )

    def reset(self) -> None:
        self._last = None

    def squares(self, frame_bgr: np.ndarray, palm) -> np.ndarray:
        """(n, 3) candidate squares (x, y, side) in frame pixels, inside the frame."""
        h, w = frame_bgr.shape[:2]
        side0 = CROP_SCALE * palm.side
        cx = palm.centre[0] + CROP_SHIFT * palm.side * palm.up[0]
        cy = palm.centre[1] + CROP_SHIFT * palm.side * palm.up[1]
        out = []
        for dx, dy in OFFSETS:
            for f in SCALES:
                side = int(round(min(max(side0 * f, IMAGE_SIZE), h, w)))
                x = int(np.clip(round(cx + dx * palm.side - side / 2), 0, w - side))
                y = int(np.clip(round(cy + dy * palm.side - side / 2), 0, h - side))
                out.append((x, y, side))
        return np.array(out, np.int64)

    @staticmethod
    def crops(rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(n, 64, 64, 3) crops of an RGB frame's (x, y, side) squares.

        Squares of one side share one area resize of the region they cover and are cut from it:
        3 resizes a palm instead of 15, because OpenCV's area resize is slow at these factors
        (~0.3 ms a square). A crop then sits within half a pixel of the square's own resize.
        """
        out = np.empty((len(boxes), IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
        for side in np.unique(boxes[:, 2]):
            same = np.flatnonzero(boxes[:, 2] == side)
            (x0, y0), (x1, y1) = boxes[same, :2].min(axis=0), boxes[same, :2].max(axis=0) + side
            r = IMAGE_SIZE / side
            # fx, fy (not a size): the region is scaled by exactly r, whatever its size rounds to.
            region = cv2.resize(rgb[y0:y1, x0:x1], None, fx=r, fy=r, interpolation=cv2.INTER_AREA)
            h, w = region.shape[:2]
            for i in same:
                cx = min(round((boxes[i, 0] - x0) * r), w - IMAGE_SIZE)
                cy = min(round((boxes[i, 1] - y0) * r), h - IMAGE_SIZE)
                out[i] = region[cy : cy + IMAGE_SIZE, cx : cx + IMAGE_SIZE]
        return out

    @staticmethod
    def hand_on_wall(crops: np.ndarray, boxes: np.ndarray, palm: Palm) -> np.ndarray:
        """The crops with everything but the hand replaced by the SIGNS wall
        (:mod:`runtime.palm.segment`); ``boxes`` are the crops' squares in frame pixels."""
        per_px = IMAGE_SIZE / boxes[:, 2].astype(np.float64)  # crop pixels per frame pixel
        centres = (np.asarray(palm.centre) - boxes[:, :2]) * per_px[:, None]
        # The palm's colour comes from the first guess's square: OFFSETS[0] (no offset) at size
        # factor 1 (squares() goes offset by offset, size by size).
        first = SCALES.index(1.0)
        radius = CHROMA_SAMPLE * palm.side * per_px[first]
        return on_wall(crops, hand_masks(crops, centres, radius, sample_from=first))

    def find(self, frame_bgr: np.ndarray) -> Found:
        t0 = time.perf_counter_ns()
        views = self.detector.views(frame_bgr)
        palms = [p for p in views if p.score >= self.min_score]
        h, w = frame_bgr.shape[:2]
        if not palms:
            self._last, self.classified = None, 0
            ms = (time.perf_counter_ns() - t0) / 1e6
            side = min(h, w)
            box = ((w - side) // 2, (h - side) // 2, side)
            uniform = np.full(NUM_CLASSES, 1 / NUM_CLASSES, np.float32)
            best_score = max(p.score for p in views)
            return Found(box, uniform, best_score, False, 0, (ms, 0.0))
        rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
        per_palm = [self.squares(frame_bgr, palm) for palm in palms]
        batch = np.concatenate(
            [
                self.hand_on_wall(self.crops(rgb, boxes), boxes, palm)
                for palm, boxes in zip(palms, per_palm, strict=True)
            ]
        )
        t1 = time.perf_counter_ns()
        probs = predict_batched(self.backend, batch)
        # The most confident square of any palm's: one hand seen in two views gives two slightly
        # different palms, and the better-placed squares read more confidently (README).
        best = int(probs.max(axis=1).argmax())
        owner = np.repeat(np.arange(len(palms)), [len(b) for b in per_palm])  # square -> palm
        palm = palms[owner[best]]
        self.classified = len(batch)
        self._last, shown = smoothed_box(self._last, np.concatenate(per_palm)[best], True, w, h)
        t2 = time.perf_counter_ns()
        times = ((t1 - t0) / 1e6, (t2 - t1) / 1e6)
        return Found(shown, probs[best].astype(np.float32), palm.score, True, len(batch), times)
