"""MediaPipe's palm detector through LiteRT: is there a hand in the frame, where, which way up.

The model is ``palm_detection_full.tflite`` from the ``mediapipe`` 0.10.21 wheel (Apache-2.0),
fetched once by ``python -m runtime.palm`` (:mod:`runtime.palm.fetch`); mediapipe itself is
never imported or installed. Input: a 192x192 RGB image in [0, 1], the frame letterboxed (black
bars keep its aspect ratio). Output: for each of 2,016 fixed anchors (a 24x24 grid at stride 8
with 2 anchors a cell, a 12x12 grid at stride 16 with 6) one logit and 18 numbers: the palm box
(centre offset and size, in input pixels) and 7 keypoints. The decoding below is MediaPipe's own
(``palm_detection_cpu.pbtxt``: SsdAnchorsCalculator and TensorsToDetectionsCalculator with
``fixed_anchor_size``, ``reverse_output_order``, scales 192). One hand is enough for this
product, so the best anchor of a view is kept and no non-maximum suppression is needed.

A 640x480 frame shrunk to 192x192 leaves a hand at arm's length 45-100 px, small for this model:
:meth:`PalmDetector.views` also looks at the two squares at the ends of the frame's long side,
each 1.33x larger in the model's input (README, "Scene bench").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from runtime.errors import ModelError

INPUT_SIZE = 192
NUM_ANCHORS = 2016
# Palm score that calls it a hand in any view. Chosen on the dev scenes (validation hands on the
# training backgrounds; README, "Scene bench"): with three views, 0.7 leaves as many empty scenes
# silent as one view at MediaPipe's default of 0.5, and finds more hands.
MIN_SCORE = 0.7
WRIST, MIDDLE_KNUCKLE = 0, 2  # keypoint indices: the wrist and the middle finger's base


def anchors() -> np.ndarray:
    """(2016, 2) anchor centres in [0, 1] (x, y), in the model's output order."""
    out = []
    for stride, per_cell in ((8, 2), (16, 6)):
        n = INPUT_SIZE // stride
        ys, xs = np.mgrid[0:n, 0:n]
        centres = np.stack([(xs + 0.5) / n, (ys + 0.5) / n], axis=-1).reshape(-1, 2)
        out.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(out).astype(np.float32)


@dataclass(frozen=True)
class Palm:
    """The best palm of one frame, in frame pixels."""

    score: float  # detection probability (sigmoid of the logit)
    centre: tuple[float, float]  # palm box centre, x and y
    side: float  # the palm box's longer side
    up: tuple[float, float]  # unit vector from the wrist to the middle finger's base


class PalmDetector:
    """The palm model in a LiteRT interpreter.

    Args:
        path: ``palm_detection_full.tflite`` (see :mod:`runtime.palm.fetch`).
        threads: interpreter threads.

    Raises:
        ModelError: the file is missing, not a TFLite model, or not the palm model's shapes.
    """

    def __init__(self, path: str | Path, threads: int | None = 1) -> None:
        from runtime.backends import tflite_interpreter_class

        self.path, self.threads = Path(path), threads
        if not self.path.is_file():
            raise ModelError(
                f"{self.path}: palm detector not found; fetch it with python -m runtime.palm"
            )
        cls, self.runtime = tflite_interpreter_class()
        try:
            self._it = cls(model_path=str(self.path), num_threads=threads)
            self._it.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{self.path}: not a TFLite model ({exc})") from None
        inp = self._it.get_input_details()
        outs = {tuple(d["shape"]): d["index"] for d in self._it.get_output_details()}
        want = (1, INPUT_SIZE, INPUT_SIZE, 3)
        if (
            len(inp) != 1
            or tuple(inp[0]["shape"]) != want
            or inp[0]["dtype"] != np.float32
            or set(outs) != {(1, NUM_ANCHORS, 18), (1, NUM_ANCHORS, 1)}
        ):
            raise ModelError(
                f"{self.path}: not the palm detector (input {inp[0]['shape'].tolist()}, "
                f"outputs {sorted(outs)}; expected {list(want)} float32 -> "
                f"[1, {NUM_ANCHORS}, 18] and [1, {NUM_ANCHORS}, 1])"
            )
        self._input = inp[0]["index"]
        self._boxes = outs[(1, NUM_ANCHORS, 18)]
        self._logits = outs[(1, NUM_ANCHORS, 1)]
        self._anchors = anchors()
        self._canvas = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.float32)

    def views(self, frame_bgr: np.ndarray) -> list[Palm]:
        """The best palm of the whole frame, then of the square at each end of its long side
        (none for a square frame), all in frame pixels."""
        h, w = frame_bgr.shape[:2]
        palms = [self.detect(frame_bgr)]
        side = min(h, w)
        for end in (0, max(h, w) - side) if h != w else ():
            x0, y0 = (end, 0) if w > h else (0, end)
            p = self.detect(frame_bgr[y0 : y0 + side, x0 : x0 + side])
            palms.append(Palm(p.score, (p.centre[0] + x0, p.centre[1] + y0), p.side, p.up))
        return palms

    def detect(self, frame_bgr: np.ndarray) -> Palm:
        """The most confident palm of a BGR frame (check its ``score`` against MIN_SCORE)."""
        h, w = frame_bgr.shape[:2]
        scale = INPUT_SIZE / max(h, w)
        rw, rh = max(1, round(w * scale)), max(1, round(h * scale))
        ox, oy = (INPUT_SIZE - rw) // 2, (INPUT_SIZE - rh) // 2
        small = cv2.resize(frame_bgr, (rw, rh), interpolation=cv2.INTER_AREA)
        self._canvas[:] = 0.0
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        self._canvas[oy : oy + rh, ox : ox + rw] = rgb * np.float32(1 / 255)
        self._it.set_tensor(self._input, self._canvas[None])
        self._it.invoke()
        logits = self._it.get_tensor(self._logits)[0, :, 0]
        i = int(logits.argmax())
        raw = self._it.get_tensor(self._boxes)[0, i] / INPUT_SIZE
        anchor = self._anchors[i]
        # Input [0, 1] coordinates -> frame pixels (undo the letterbox).
        to_frame = INPUT_SIZE / scale

        def point(x: float, y: float) -> np.ndarray:
            return np.array([x * to_frame - ox / scale, y * to_frame - oy / scale])

        centre = point(raw[0] + anchor[0], raw[1] + anchor[1])
        kp = raw[4:].reshape(7, 2) + anchor
        up = point(*kp[MIDDLE_KNUCKLE]) - point(*kp[WRIST])
        up = up / max(float(np.hypot(*up)), 1e-6)
        score = float(1.0 / (1.0 + np.exp(-np.clip(logits[i], -80.0, 80.0))))
        side = float(max(raw[2], raw[3]) * to_frame)
        return Palm(score, (float(centre[0]), float(centre[1])), side, (float(up[0]), float(up[1])))
