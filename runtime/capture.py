"""Recording the user's own samples from the live loop, for fine-tuning.

One function writes a sample (:func:`save_sample`); one state machine (:class:`Capturer`) turns a
request "K frames of class N" into a burst: a countdown, then one ROI crop every
:data:`INTERVAL_S` seconds until K are written, like Teachable Machine's hold-to-record. The
window's keys 0-5, the headless ``--capture-label N --capture-count K`` and the web view's
``POST /api/capture`` all call :meth:`Capturer.start`; the frame loop calls
:meth:`Capturer.on_frame` after every frame.

Samples are the ROI crops at the ROI's own resolution (not 64x64), so a later change of
preprocessing still applies to them, written atomically as
``<capture-dir>/<label>/<timestamp>_<n>.jpg``: the class-folder layout ``runtime.evaluate`` and
training already read. A sample that cannot be written (disk full, read-only folder) stops that
burst with one warning line; the loop keeps running.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from runtime.dataset import IMAGE_SUFFIXES
from runtime.errors import SignsError
from runtime.hooks import DONE, Action, FrameHook
from runtime.preprocess import NUM_CLASSES

if TYPE_CHECKING:
    from runtime.hooks import FrameEvent

DEFAULT_CAPTURE_DIR = "captures"
DEFAULT_COUNT = 20  # one key press: 20 frames over about 2 s
DEFAULT_COUNTDOWN_S = 3.0  # time to bring the hand into the box after pressing a key
INTERVAL_S = 0.1  # between samples of a burst: consecutive frames are near-duplicates
MAX_COUNT = 1000  # a larger burst is a typo, not a plan (and 100 s of recording)
JPEG_QUALITY = 95  # samples are training data: keep compression artefacts small


class CaptureError(SignsError):
    """A capture request with a label outside 0-5 or an impossible count."""


class CaptureBusy(SignsError):
    """A burst is already counting down or recording."""


class CaptureIncomplete(SignsError):
    """A headless capture run ended before its burst was written (exit code 1)."""

    exit_code = 1


RECORD = "record"  # the action keys 0-5 send: Action(RECORD, label)


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


def check_request(label: object, count: object) -> tuple[int, int]:
    """The (label, count) of a capture request, checked.

    Raises:
        CaptureError: label not an integer 0-5, or count not an integer 1..MAX_COUNT.
    """
    # bool is an int subclass: {"label": true} is a client bug, not class 1.
    if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < NUM_CLASSES:
        raise CaptureError(f"capture label {label!r}: must be a class index 0-{NUM_CLASSES - 1}")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_COUNT:
        raise CaptureError(f"capture count {count!r}: must be an integer from 1 to {MAX_COUNT}")
    return label, count


def roi_crop(frame: np.ndarray, box: tuple[int, int, int], mirror: bool = False) -> np.ndarray:
    """The ROI of a BGR frame at full resolution, flipped when the model sees it flipped."""
    x, y, side = box
    crop = frame[y : y + side, x : x + side]
    return cv2.flip(crop, 1) if mirror else crop


def save_sample(crop: np.ndarray, capture_dir: str | Path, label: int, stamp: str, n: int) -> Path:
    """Write one BGR crop as ``<capture_dir>/<label>/<stamp>_<n>.jpg``, atomically.

    Raises:
        OSError: the folder or file cannot be written, or JPEG encoding failed.
    """
    from runtime.fsutil import write_bytes

    folder = Path(capture_dir) / str(label)
    path = folder / f"{stamp}_{n:03d}.jpg"
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError("JPEG encoding failed")
    folder.mkdir(parents=True, exist_ok=True)
    write_bytes(path, buf.tobytes())
    return path


def count_samples(capture_dir: str | Path) -> list[int]:
    """Images already in each class folder of ``capture_dir`` (zeros when it does not exist)."""
    counts = [0] * NUM_CLASSES
    for label in range(NUM_CLASSES):
        folder = Path(capture_dir) / str(label)
        with contextlib.suppress(OSError):  # no folder yet: zero
            counts[label] = sum(
                1
                for p in folder.iterdir()
                if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
            )
    return counts


@dataclass(frozen=True)
class CaptureStatus:
    """What the window, the page and the log show about capture."""

    state: str  # "idle", "countdown" or "recording"
    label: int | None  # class of the current (or last) burst
    taken: int  # samples written by the current (or last) burst
    count: int  # samples the current (or last) burst asked for
    countdown_s: float  # seconds until recording starts (countdown state)
    counts: list[int]  # samples per class in the capture folder
    bursts: int  # bursts finished (completed or stopped) since start
    error: str | None  # why the last burst stopped early, if it did
    dir: str

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        """Short text lines for an on-screen overlay."""
        counts = "  ".join(f"{i}:{c}" for i, c in enumerate(self.counts))
        if self.state == "countdown":
            head = f"capture class {self.label} in {int(np.ceil(max(self.countdown_s, 0.0)))}"
        elif self.state == "recording":
            head = f"recording class {self.label}: {self.taken}/{self.count}"
        elif self.error:
            head = f"capture stopped: {self.error}"
        else:
            head = "press 0-5 to capture"
        return [head, f"samples {counts}"]


class Capturer:
    """The burst state machine, safe to start from any thread.

    Times passed to :meth:`on_frame` are in the loop's clock: media time (frame index / fps) for
    a video file, so a capture from a file is the same at any processing speed, or
    ``time.monotonic()`` for a camera. The countdown starts at the first frame after
    :meth:`start`, because the thread that asks may not share that clock.

    Args:
        capture_dir: where samples go (created at the first sample).
        countdown_s: seconds between the request and the first sample.
        interval_s: seconds between samples.
        warn: where a write failure is reported (one line).
    """

    def __init__(
        self,
        capture_dir: str | Path = DEFAULT_CAPTURE_DIR,
        countdown_s: float = DEFAULT_COUNTDOWN_S,
        interval_s: float = INTERVAL_S,
        warn: Callable[[str], None] = _warn,
    ) -> None:
        if countdown_s < 0:
            raise CaptureError(f"--capture-countdown {countdown_s:g}: must be 0 or more seconds")
        self.dir = Path(capture_dir)
        self.countdown_s = float(countdown_s)
        self.interval_s = float(interval_s)
        self._warn = warn
        self._lock = threading.Lock()
        self._counts = count_samples(self.dir)
        self._state = "idle"
        self._label: int | None = None
        self._count = 0
        self._taken = 0
        self._bursts = 0
        self._error: str | None = None
        self._start_t: float | None = None  # loop time recording starts
        self._next_t = 0.0
        self._now: float | None = None
        self._stamp = ""

    def start(self, label: object, count: object = DEFAULT_COUNT) -> None:
        """Ask for a burst of ``count`` samples of class ``label``.

        Raises:
            CaptureError: bad label or count.
            CaptureBusy: a burst is already running.
        """
        label, count = check_request(label, count)
        with self._lock:
            if self._state != "idle":
                raise CaptureBusy(
                    f"a capture of class {self._label} is already running "
                    f"({self._taken}/{self._count})"
                )
            self._state, self._label, self._count, self._taken = "countdown", label, count, 0
            self._error = None
            self._start_t = None

    @property
    def busy(self) -> bool:
        return self._state != "idle"

    @property
    def bursts(self) -> int:
        """Bursts finished since start (completed or stopped by an error)."""
        return self._bursts

    def on_frame(
        self, frame: np.ndarray, box: tuple[int, int, int], t: float, mirror: bool = False
    ) -> Path | None:
        """Called by the loop after each frame; writes a sample when one is due.

        Returns:
            The file written, or None.
        """
        if self._state == "idle":  # the common case, without taking the lock
            return None
        with self._lock:
            self._now = t
            if self._start_t is None:
                self._start_t = t + self.countdown_s
                self._next_t = self._start_t
            if t + 1e-6 < self._next_t:  # 1 us: frame times like 69/30 are not exact floats
                return None
            if self._state == "countdown":
                self._state = "recording"
                # One prefix per burst: its files sort together and in order.
                ms = int(time.time() * 1000) % 1000
                self._stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{ms:03d}"
            label, n = self._label, self._taken
            assert label is not None
            try:
                path = save_sample(roi_crop(frame, box, mirror), self.dir, label, self._stamp, n)
            except OSError as exc:
                where = self.dir / str(label)
                self._error = f"cannot write {where}: {exc.strerror or exc}"
                self._warn(
                    f"capture: {self._error}; burst of class {label} stopped after "
                    f"{n} of {self._count}"
                )
                self._finish()
                return None
            self._taken += 1
            self._counts[label] += 1
            # Frames slower than the interval give one sample each, never a catch-up burst.
            self._next_t = max(self._next_t + self.interval_s, t)
            if self._taken >= self._count:
                self._finish()
            return path

    def _finish(self) -> None:
        self._state = "idle"
        self._bursts += 1

    def status(self) -> CaptureStatus:
        with self._lock:
            left = 0.0
            if self._state == "countdown":
                if self._start_t is None or self._now is None:
                    left = self.countdown_s
                else:
                    left = max(self._start_t - self._now, 0.0)
            return CaptureStatus(
                state=self._state,
                label=self._label,
                taken=self._taken,
                count=self._count,
                countdown_s=left,
                counts=list(self._counts),
                bursts=self._bursts,
                error=self._error,
                dir=str(self.dir),
            )


class CaptureHook(FrameHook):
    """Capture bursts in the frame loop: keys 0-5, ``--capture-label`` and the web page.

    Args:
        capturer: the run's one :class:`Capturer` (the web view starts bursts on it too).
        clock: seconds for a frame index (:func:`runtime.replay.media_clock`).
        mirror: the model sees frames flipped; samples are saved as it sees them.
        burst: samples per key press.
        stop_when_done: the run exists to record one burst (headless ``--capture-label``).
    """

    def __init__(
        self,
        capturer: Capturer,
        clock: Callable[[int], float],
        mirror: bool = False,
        burst: int = DEFAULT_COUNT,
        stop_when_done: bool = False,
    ) -> None:
        self.capturer = capturer
        self._clock = clock
        self._mirror = mirror
        self._burst = burst
        self._stop_when_done = stop_when_done

    def on_frame(self, event: FrameEvent) -> Action | None:
        self.capturer.on_frame(
            event.frame, event.result.box, self._clock(event.index), self._mirror
        )
        if self._stop_when_done and self.capturer.bursts:
            return DONE
        return None

    def on_action(self, action: Action, event: FrameEvent) -> None:
        if action.name != RECORD or action.arg is None:
            return
        try:
            self.capturer.start(action.arg, self._burst)
        except CaptureBusy as exc:
            _warn(str(exc))

    def check(self) -> None:
        """After the summary: a headless capture that did not complete is an error.

        Raises:
            CaptureIncomplete: fewer samples than asked were written.
        """
        if not self._stop_when_done:
            return
        st = self.capturer.status()
        if st.bursts == 0 or st.taken < st.count:
            why = st.error or "the source ended first"
            raise CaptureIncomplete(
                f"capture: {st.taken} of {st.count} samples of class {st.label} written to "
                f"{st.dir}/{st.label} ({why})"
            )
        print(f"captured {st.taken} samples of class {st.label} in {st.dir}/{st.label}", flush=True)
