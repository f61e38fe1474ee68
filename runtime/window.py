"""The OpenCV window of ``runtime.webcam``: ROI box, label and confidence bar, FPS, stage
latencies; keys become :class:`runtime.hooks.Action` values the loop dispatches."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from runtime.errors import SignsError
from runtime.hooks import QUIT, SAVE, Action, FrameEvent, FrameHook

# Key code -> action. Extend this table (e.g. digits for a labelled capture) rather than the loop.
KEYS: dict[int, Action] = {ord("q"): QUIT, ord("Q"): QUIT, 27: QUIT, ord("s"): SAVE, ord("S"): SAVE}
KEYS.update(
    {ord(str(n)): Action("record", n) for n in range(6)}
)  # capture bursts (runtime.capture)


class Window:
    """Draws each frame and polls the keyboard; :meth:`show` returns the actions asked for."""

    TITLE = "signs-edge (q/ESC quit, s save, 0-5 capture)"

    def __init__(self, labels: list[str], mirror: bool = False) -> None:
        import cv2

        if sys.platform.startswith("linux") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        ):
            # Qt would abort the process without a display; say so instead.
            raise SignsError("no display (DISPLAY is not set): use --headless")
        self.cv2 = cv2
        self.labels = labels
        self.mirror = mirror
        self.keys = dict(KEYS)
        # Lines drawn along the bottom (the capture countdown and counts), set by the loop.
        self.status: Callable[[], list[str]] | None = None
        self._fps = 0.0
        self._last = None
        self._period = None
        self._due = 0.0
        self._stage_ms = dict.fromkeys(("capture", "preprocess", "inference", "smoothing"), 0.0)

    def open(self, source) -> None:
        cv2 = self.cv2
        try:
            # GUI_NORMAL: no Qt toolbar or status bar, just the picture.
            cv2.namedWindow(self.TITLE, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
        except cv2.error as exc:
            raise SignsError(
                f"cannot open a window ({str(exc).strip().splitlines()[-1]}): use --headless "
                "or install opencv-python (not -headless)"
            ) from None
        # A file plays at its own frame rate in a window; a camera paces itself.
        if not source.live:
            self._period = 1.0 / (source.fps or 30.0)
            self._due = time.perf_counter()

    def show(self, index: int, frame: np.ndarray, res, capture_ms: float) -> list[Action]:
        """Draw the frame, wait for its display slot, return the actions of the keys pressed."""
        self._update_rates(capture_ms, res.times)
        self.cv2.imshow(self.TITLE, self.draw(index, frame, res))
        return self._poll()

    def _update_rates(self, capture_ms: float, times: dict[str, float]) -> None:
        now = time.perf_counter()
        if self._last is not None:
            dt = now - self._last
            inst = 1.0 / dt if dt > 0 else 0.0
            self._fps = inst if self._fps == 0 else 0.9 * self._fps + 0.1 * inst
        self._last = now
        for k, ms in (("capture", capture_ms), *times.items()):
            self._stage_ms[k] = 0.9 * self._stage_ms[k] + 0.1 * ms  # steady enough to read

    def draw(self, index: int, frame: np.ndarray, res) -> np.ndarray:
        """The overlay: a new image, the frame itself is left as captured."""
        cv2 = self.cv2
        view = cv2.flip(frame, 1) if self.mirror else frame.copy()
        h, w = view.shape[:2]
        x, y, side = res.box
        if self.mirror:
            x = w - x - side
        known = res.label is not None
        colour = (60, 200, 60) if known else (170, 170, 170)  # BGR: green, or grey for no sign
        font = cv2.FONT_HERSHEY_SIMPLEX
        # --find-hand with no hand found: a thin box at the best candidate.
        thickness = 1 if res.found is False else 2
        cv2.rectangle(view, (x, y), (x + side - 1, y + side - 1), colour, thickness)
        # Label and confidence bar in a dark band under the ROI (over its bottom edge if the
        # frame has no room), so the picture the model sees stays visible.
        band = min(44, side // 3)
        top = y + side + 2 if y + side + 2 + band <= h else y + side - band
        cv2.rectangle(view, (x, top), (x + side - 1, top + band), (30, 30, 30), -1)
        text = self.labels[res.label] if known else "no sign"
        cv2.putText(view, text, (x + 8, top + band - 10), font, 1.0, colour, 2, cv2.LINE_AA)
        bar_x0, bar_x1 = x + side // 3, x + side - 10
        bar_y0, bar_y1 = top + band // 2 - 6, top + band // 2 + 6
        fill = int(round((bar_x1 - bar_x0) * min(max(res.confidence, 0.0), 1.0)))
        cv2.rectangle(view, (bar_x0, bar_y0), (bar_x1, bar_y1), (90, 90, 90), 1)
        cv2.rectangle(view, (bar_x0, bar_y0), (bar_x0 + fill, bar_y1), colour, -1)
        # FPS and per-stage latency in a band along the top of the frame.
        lines = [
            f"{self._fps:5.1f} FPS   frame {index}   confidence {res.confidence:.2f}",
            "capture {capture:.2f}  preprocess {preprocess:.2f}  inference {inference:.2f}  "
            "smoothing {smoothing:.3f} ms".format(**self._stage_ms),
        ]
        cv2.rectangle(view, (0, 0), (w - 1, 46), (0, 0, 0), -1)
        for i, line in enumerate(lines):
            cv2.putText(view, line, (8, 18 + 20 * i), font, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        if self.status is not None:
            bottom = self.status()
            cv2.rectangle(view, (0, h - 8 - 20 * len(bottom)), (w - 1, h - 1), (0, 0, 0), -1)
            for i, line in enumerate(reversed(bottom)):
                y = h - 10 - 20 * i
                cv2.putText(view, line, (8, y), font, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        return view

    def _poll(self) -> list[Action]:
        cv2 = self.cv2
        delay = 1
        if self._period is not None:
            self._due += self._period
            delay = max(1, int((self._due - time.perf_counter()) * 1000))
            self._due = max(self._due, time.perf_counter() - self._period)  # no catch-up bursts
        key = cv2.waitKey(delay) & 0xFF
        actions = [self.keys[key]] if key in self.keys else []
        if cv2.getWindowProperty(self.TITLE, cv2.WND_PROP_VISIBLE) < 1:
            actions.append(QUIT)  # closed with the window manager's button
        return actions

    def close(self) -> None:
        with contextlib.suppress(self.cv2.error):
            self.cv2.destroyAllWindows()


class FrameSaver(FrameHook):
    """The ``s`` key: save the frame as captured (no overlay, not mirrored), atomically."""

    def __init__(self, save_dir: str | Path) -> None:
        self.save_dir = Path(save_dir)

    def on_action(self, action: Action, event: FrameEvent) -> None:
        if action != SAVE:
            return
        import cv2

        from runtime.fsutil import write_bytes

        path = self.save_dir / f"frame-{event.index:06d}.png"
        ok, buf = cv2.imencode(".png", event.frame)
        try:
            if not ok:
                raise OSError("PNG encoding failed")
            self.save_dir.mkdir(parents=True, exist_ok=True)
            write_bytes(path, buf.tobytes())
        except OSError as exc:
            print(f"warning: could not save {path}: {exc}", file=sys.stderr, flush=True)
            return
        print(f"saved {path}", flush=True)
