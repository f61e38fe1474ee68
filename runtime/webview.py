"""What the frame loop does besides classifying: capture bursts, the web view, file pacing.

:class:`LoopHooks` bundles them behind three calls, so the loop stays one readable ``while``:
``before_read()`` (pace a file in serve mode), ``after_frame(...)`` (capture, publish to the
page) and ``finished`` (a headless capture burst is complete). ``close(reason)`` stops the server.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from runtime.capture import MAX_COUNT, CaptureBusy, Capturer
from runtime.dataset import NUM_CLASSES
from runtime.errors import SignsError
from runtime.replay import LoopingSource, Pacer, media_clock

if TYPE_CHECKING:
    from runtime.backends import Backend
    from runtime.manifest import ModelInfo
    from runtime.pipeline import FrameResult
    from runtime.server import WebServer
    from runtime.sources import FrameSource


class CaptureIncomplete(SignsError):
    """A headless capture run ended before its burst was written (exit code 1)."""

    exit_code = 1


def check_capture_flags(label: int | None, count: int, countdown: float) -> None:
    """Raises SignsError for a capture flag out of range."""
    if label is not None and not 0 <= label < NUM_CLASSES:
        raise SignsError(f"--capture-label {label}: must be a class index 0-{NUM_CLASSES - 1}")
    if not 1 <= count <= MAX_COUNT:
        raise SignsError(f"--capture-count {count}: must be from 1 to {MAX_COUNT}")
    if countdown < 0:
        raise SignsError(f"--capture-countdown {countdown:g}: must be 0 or more seconds")


def model_facts(info: ModelInfo, backend: Backend, threads: int | None) -> dict:
    """What the page says about the model: name, format, export status, accuracy, runtime."""
    entry = info.entry
    return {
        "name": info.path.name,
        "path": str(info.path),
        "format": entry.format if entry else info.path.suffix.lstrip("."),
        "status": entry.status if entry else "no manifest",
        "accuracy": entry.accuracy if entry else None,
        "runtime": backend.runtime,
        "threads": threads,
        "warnings": list(info.warnings),
    }


def loop_source(open_source: Callable[[], FrameSource]) -> FrameSource:
    """``--loop``: the source replayed from the start whenever it ends.

    Raises:
        SignsError: the source is a camera (it has no end to loop from).
    """
    src = open_source()
    if src.live:
        src.close()
        raise SignsError("--loop: only for a video file or image folder (--source)")
    src.close()
    return LoopingSource(open_source)


class LoopHooks:
    """Capture, web view and pacing around one run of the frame loop.

    Args:
        capturer: the run's capture state machine (keys, headless flag and page all use it).
        source: the opened source (for its clock and frame rate).
        mirror: whether the model sees frames flipped (samples are saved as it sees them).
        server: the started web server, or None.
        pace: sleep to the file's own frame rate (serve mode without a window).
        headless_capture: the run exists to record one burst; it ends when the burst does.
    """

    def __init__(
        self,
        capturer: Capturer,
        source: FrameSource,
        mirror: bool = False,
        server: WebServer | None = None,
        pace: bool = False,
        headless_capture: bool = False,
    ) -> None:
        self.capturer = capturer
        self.server = server
        self.live = server.live if server is not None else None
        self.mirror = mirror
        self._clock = media_clock(source)
        self._pacer = Pacer(source.fps) if pace and not source.live else None
        self._headless_capture = headless_capture

    def before_read(self) -> None:
        if self._pacer is not None:
            self._pacer.wait()

    def after_frame(
        self, index: int, frame: np.ndarray, res: FrameResult, capture_ms: float
    ) -> None:
        self.capturer.on_frame(frame, res.box, self._clock(index), self.mirror)
        if self.live is not None:
            self.live.publish(index, frame, res, capture_ms)

    def key(self, label: int, count: int) -> None:
        """A 0-5 key in the window: start a burst, or say why not."""
        try:
            self.capturer.start(label, count)
        except CaptureBusy as exc:
            print(f"warning: {exc}", file=sys.stderr, flush=True)

    @property
    def finished(self) -> bool:
        """A headless capture run has its burst (or the burst failed)."""
        return self._headless_capture and self.capturer.bursts > 0

    def close(self, ended: str) -> None:
        """Stop the server (stream clients are released) after the loop ended."""
        if self.server is not None:
            self.live.end(ended)
            self.server.stop()

    def check_capture(self) -> None:
        """After the summary: a headless capture that did not complete is an error.

        Raises:
            CaptureIncomplete: fewer samples than asked were written.
        """
        if not self._headless_capture:
            return
        st = self.capturer.status()
        if st.bursts == 0 or st.taken < st.count:
            why = st.error or "the source ended first"
            raise CaptureIncomplete(
                f"capture: {st.taken} of {st.count} samples of class {st.label} written to "
                f"{st.dir}/{st.label} ({why})"
            )
        print(f"captured {st.taken} samples of class {st.label} in {st.dir}/{st.label}", flush=True)
