"""The frame loop's window onto the web: the latest frame, its result, and one shared JPEG.

The loop calls :meth:`LiveView.publish` once per frame. That only swaps references under a lock,
so the loop never waits for a viewer. While someone watches, one encoder thread takes the newest
frame at most :data:`STREAM_FPS` times a second, draws the ROI box and encodes one JPEG that every
stream client sends: 20 viewers cost one encode, and a client that falls behind simply gets the
newest JPEG next (a single slot, never a queue). Nobody watching: no copies, no encoding.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator

import cv2
import numpy as np

from runtime.pipeline import FrameResult

STREAM_FPS = 15.0  # the stream's cap: smooth to watch, a fraction of the loop's 30+ FPS
JPEG_QUALITY = 80  # ~40 KB for a 640x480 frame: light on a Pi's Wi-Fi
STAGES = ("capture", "preprocess", "inference", "smoothing")


def json_safe(obj: object) -> object:
    """``obj`` with NaN/inf floats as None: browsers' JSON.parse rejects NaN."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    return obj


class LiveView:
    """What the server shows: state for ``/api/state``, JPEGs for ``/stream.mjpg``.

    Args:
        labels: the six class names.
        model: static facts about the model for the page (name, format, status, ...).
        capturer: the run's :class:`runtime.capture.Capturer`, or None.
        summary: returns the run's summary so far, as a dict (``/api/summary``).
        mirror: show frames flipped, as the model sees them.
        stream_fps: the stream's frame-rate cap.
    """

    def __init__(
        self,
        labels: list[str],
        model: dict,
        capturer=None,
        summary: Callable[[], dict] | None = None,
        mirror: bool = False,
        stream_fps: float = STREAM_FPS,
    ) -> None:
        self.labels = list(labels)
        self.model = dict(model)
        self.capturer = capturer
        self.summary = summary or dict
        self.mirror = mirror
        self.period = 1.0 / stream_fps
        self._lock = threading.Lock()
        self._new_frame = threading.Condition(self._lock)
        self._jpeg_ready = threading.Condition(threading.Lock())
        self._frame: np.ndarray | None = None
        self._result: FrameResult | None = None
        self._index = -1
        self._frame_seq = 0  # frames published while someone watched
        self._jpeg: bytes | None = None
        self._jpeg_seq = 0
        self._viewers = 0
        self._fps = 0.0
        self._last_t: float | None = None
        self._stage_ms = dict.fromkeys(STAGES, 0.0)
        self._ended: str | None = None
        self._closed = False
        self.jpegs_encoded = 0
        self._encoder = threading.Thread(
            target=self._encode_loop, name="mjpeg-encoder", daemon=True
        )
        self._encoder.start()

    # --- the loop's side ------------------------------------------------------------------

    def publish(
        self, index: int, frame: np.ndarray, result: FrameResult, capture_ms: float
    ) -> None:
        """Record one processed frame. Cheap: no copy, no encoding, no waiting for clients.

        The frame is kept by reference until the next one: sources return a new array per read.
        """
        now = time.perf_counter()
        with self._lock:
            if self._last_t is not None:
                dt = now - self._last_t
                inst = 1.0 / dt if dt > 0 else 0.0
                self._fps = inst if self._fps == 0 else 0.9 * self._fps + 0.1 * inst
            self._last_t = now
            for k, ms in (("capture", capture_ms), *result.times.items()):
                self._stage_ms[k] = 0.9 * self._stage_ms[k] + 0.1 * ms  # steady enough to read
            self._index, self._result = index, result
            if self._viewers:
                self._frame = frame
                self._frame_seq += 1
                self._new_frame.notify()

    def end(self, reason: str) -> None:
        """The loop has stopped (the server may still answer until it is closed)."""
        with self._lock:
            self._ended = reason

    def close(self) -> None:
        """Stop the encoder and release every stream client."""
        with self._lock:
            self._closed = True
            self._new_frame.notify_all()
        with self._jpeg_ready:
            self._jpeg_ready.notify_all()
        self._encoder.join(timeout=2.0)

    # --- the server's side ----------------------------------------------------------------

    @property
    def viewers(self) -> int:
        return self._viewers

    def state(self) -> dict:
        """The latest result, for ``GET /api/state``."""
        with self._lock:
            res, index = self._result, self._index
            fps, stage_ms, ended, viewers = (
                self._fps,
                dict(self._stage_ms),
                self._ended,
                self._viewers,
            )
        label = res.label if res is not None else None
        return json_safe(
            {
                "frame": index,
                "label": label,
                "label_name": self.labels[label] if label is not None else None,
                "confidence": res.confidence if res is not None else None,
                "probs": res.probs.tolist() if res is not None else None,
                "labels": self.labels,
                "fps": fps,
                "latency_ms": stage_ms,
                "viewers": viewers,
                "running": ended is None,
                "ended": ended,
                "model": self.model,
                "capture": self.capturer.status().to_dict() if self.capturer else None,
            }
        )

    def stream(self, timeout: float = 1.0) -> Iterator[bytes]:
        """JPEGs for one client: the newest each time, until :meth:`close` (or the client goes).

        Yields ``b""`` when no new frame came for ``timeout`` s (e.g. the loop has ended), so
        the caller can keep the connection alive or notice that the client has gone.
        """
        with self._lock:
            self._viewers += 1
            self._new_frame.notify()
        try:
            seen = -1
            while not self._closed:
                with self._jpeg_ready:
                    if self._jpeg_seq == seen and not self._closed:
                        self._jpeg_ready.wait(timeout)
                    jpeg, seq = self._jpeg, self._jpeg_seq
                if self._closed:
                    return
                if seq == seen or jpeg is None:
                    yield b""
                    continue
                seen = seq
                yield jpeg
        finally:
            with self._lock:
                self._viewers -= 1

    # --- the encoder thread ----------------------------------------------------------------

    def _encode_loop(self) -> None:
        done = 0
        next_t = 0.0
        while True:
            with self._lock:
                while not self._closed and (self._viewers == 0 or self._frame_seq == done):
                    self._new_frame.wait()
                if self._closed:
                    return
                wait = next_t - time.perf_counter()
            if wait > 0:
                time.sleep(wait)  # the cap: then take the newest frame, not the one that woke us
            with self._lock:
                frame, res, done = self._frame, self._result, self._frame_seq
                self._frame = None  # do not hold a frame nobody will send
            if frame is None or res is None:
                continue
            next_t = time.perf_counter() + self.period
            jpeg = self._encode(frame, res)
            if jpeg is None:
                continue
            with self._jpeg_ready:
                self._jpeg, self._jpeg_seq = jpeg, self._jpeg_seq + 1
                self.jpegs_encoded += 1
                self._jpeg_ready.notify_all()

    def _encode(self, frame: np.ndarray, res: FrameResult) -> bytes | None:
        view = cv2.flip(frame, 1) if self.mirror else frame.copy()
        w = view.shape[1]
        x, y, side = res.box
        if self.mirror:
            x = w - x - side
        colour = (60, 200, 60) if res.label is not None else (170, 170, 170)  # BGR
        cv2.rectangle(view, (x, y), (x + side - 1, y + side - 1), colour, 2)
        with contextlib.suppress(cv2.error):
            ok, buf = cv2.imencode(".jpg", view, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if ok:
                return buf.tobytes()
        return None
