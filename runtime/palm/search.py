"""``--find-hand`` with the palm detector: find the hand, then let the SIGNS network count.

The palm detector (:mod:`runtime.palm.detector`) says whether a hand is in the frame and where
its palm is; the SIGNS classifier then reads a square around the whole hand. The square's size
and position relative to the palm were measured on the *val* scenes (validation hands placed on
the val backgrounds; ``python -m benchmarks.scenes make --split val``), never on test scenes:
the SIGNS photo around a detected palm is :data:`CROP_SCALE` palm sides wide (median 2.84,
quartiles 2.64-3.19) and its centre lies :data:`CROP_SHIFT` palm sides from the palm's centre
towards the fingers (median 0.51; sideways -0.04). Because one square is a guess, the network
reads :data:`OFFSETS` x :data:`SCALES` squares around it (15, two batched calls) and the most
confident reading wins: on the val scenes that read 0.89 of the hands against 0.84 for the
single square. Before the network reads them, each square keeps only the hand, found by the
palm's colour, and puts it on the SIGNS wall (:mod:`runtime.palm.segment`).

No palm (score below :data:`runtime.palm.detector.MIN_SCORE`) means no hand: the pipeline then
feeds the uniform distribution and shows "no sign", whatever the classifier would have said.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from runtime.backends import Backend
from runtime.handsearch import Found, predict_batched, smoothed_box
from runtime.palm.detector import MIN_SCORE, Palm, PalmDetector
from runtime.palm.segment import CHROMA_SAMPLE, hand_masks, on_wall
from runtime.preprocess import IMAGE_SIZE, NUM_CLASSES, area_resize

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
            f"palm detector {self.detector.path.name} ({self.detector.runtime}), score >= "
            f"{self.min_score:g}, then {len(OFFSETS) * len(SCALES)} squares around the hand, "
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
        palm = self.detector.detect(frame_bgr)
        h, w = frame_bgr.shape[:2]
        if palm.score < self.min_score:
            self._last, self.classified = None, 0
            ms = (time.perf_counter_ns() - t0) / 1e6
            side = min(h, w)
            box = ((w - side) // 2, (h - side) // 2, side)
            uniform = np.full(NUM_CLASSES, 1 / NUM_CLASSES, np.float32)
            return Found(box, uniform, palm.score, False, 0, (ms, 0.0))
        boxes = self.squares(frame_bgr, palm)
        rgb = [
            cv2.cvtColor(frame_bgr[y : y + s, x : x + s], cv2.COLOR_BGR2RGB) for x, y, s in boxes
        ]
        batch = self.hand_on_wall(np.stack([area_resize(sq) for sq in rgb]), boxes, palm)
        t1 = time.perf_counter_ns()
        probs = predict_batched(self.backend, batch)
        best = int(probs.max(axis=1).argmax())
        self.classified = len(batch)
        self._last, shown = smoothed_box(self._last, boxes[best], True, w, h)
        t2 = time.perf_counter_ns()
        times = ((t1 - t0) / 1e6, (t2 - t1) / 1e6)
        return Found(shown, probs[best].astype(np.float32), palm.score, True, len(batch), times)
