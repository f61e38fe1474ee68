"""Where frames come from: a camera, a video file, or a folder of images.

Every source yields ``(index, frame)``: ``index`` is the 0-based position in the source (a
skipped unreadable image leaves a gap), ``frame`` an H x W x 3 uint8 BGR array, as OpenCV
delivers it. ``read()`` returns None at the normal end (end of a video or folder).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from runtime.dataset import IMAGE_SUFFIXES, decode_image, is_image_file
from runtime.errors import DataError, SourceError

DEFAULT_RETRY_S = 1.0  # seconds a camera may go without a frame before the run ends


class FramesStopped(SourceError):
    """A live camera stopped delivering frames mid-run (the run still ends with its summary)."""

    exit_code = 1


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


def quiet_opencv() -> None:
    """Silence OpenCV's own logging: a missing camera would otherwise print a dozen lines of
    backend probing around our one-line error."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


class FrameSource:
    """Base class: ``read() -> (index, frame) | None``; use as a context manager."""

    name: str  # for messages: "camera 0", a file or folder path
    live = False  # a camera: frames arrive in real time and may stop
    fps: float | None = None  # nominal frame rate, when the source knows it

    def read(self) -> tuple[int, np.ndarray] | None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CameraSource(FrameSource):
    """``cv2.VideoCapture(index)``: a USB webcam (V4L2 on Linux) or a laptop camera."""

    live = True

    def __init__(
        self,
        index: int,
        retry_s: float = DEFAULT_RETRY_S,
        capture: cv2.VideoCapture | None = None,
    ) -> None:
        """Open camera ``index``, or wrap an already opened ``capture`` (e.g. a GStreamer
        pipeline for a Pi camera) with the same retry-then-stop behaviour."""
        self.name = f"camera {index}"
        self.index = index
        self.retry_s = retry_s
        self._next = 0
        quiet_opencv()
        if capture is None:
            # V4L2 directly on Linux: skips probing FFmpeg and other backends for an index.
            api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
            capture = cv2.VideoCapture(index, api)
        self._cap = capture
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(
                f"camera {index}: cannot be opened (no such device, or it is in use); "
                "try another --camera index or --source FILE"
            )
        # A blocked read must not outlast the retry window (backends that do not support the
        # property ignore it).
        self._cap.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, max(1.0, retry_s * 1000.0))
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and fps > 0 else None

    def read(self) -> tuple[int, np.ndarray]:
        """The next frame; retries for ``retry_s`` seconds, then raises :class:`FramesStopped`."""
        deadline = None
        while True:
            ok, frame = self._cap.read()
            if ok and frame is not None:
                i = self._next
                self._next += 1
                return i, frame
            now = time.monotonic()
            if deadline is None:
                deadline = now + self.retry_s
            elif now >= deadline:
                raise FramesStopped(
                    f"{self.name}: no frame for {self.retry_s:g} s after {self._next} frames "
                    "(camera unplugged or stalled)"
                )
            time.sleep(0.02)

    def close(self) -> None:
        self._cap.release()


class VideoSource(FrameSource):
    """A video file through ``cv2.VideoCapture`` (FFmpeg); its end is a normal end."""

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        self._next = 0
        quiet_opencv()
        self._cap = cv2.VideoCapture(str(path))
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(f"{path}: cannot be opened as a video (unsupported or corrupt file)")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and fps > 0 else None

    def read(self) -> tuple[int, np.ndarray] | None:
        ok, frame = self._cap.read()
        if not ok or frame is None:
            return None
        i = self._next
        self._next += 1
        return i, frame

    def close(self) -> None:
        self._cap.release()


class ImageFolderSource(FrameSource):
    """The images of a folder (or one image file), in name order; unreadable ones are skipped
    with a one-line warning."""

    def __init__(self, path: Path, warn: Callable[[str], None] = _warn) -> None:
        self.name = str(path)
        if path.is_dir():
            self.files = sorted(p for p in path.iterdir() if is_image_file(p))
            if not self.files:
                raise SourceError(
                    f"{path}: no images in this folder "
                    f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
                )
        else:
            self.files = [path]
        self._warn = warn
        self._next = 0

    def read(self) -> tuple[int, np.ndarray] | None:
        while self._next < len(self.files):
            i, f = self._next, self.files[self._next]
            self._next += 1
            try:
                return i, decode_image(f)
            except DataError as exc:
                self._warn(f"skipping {exc}")
        return None


def open_source(
    camera: int = 0, source: str | None = None, retry_s: float = DEFAULT_RETRY_S
) -> FrameSource:
    """``--source PATH`` (video file, image folder or image file) if given, else ``--camera N``.

    Raises:
        SourceError: the path does not exist or cannot be opened; the camera cannot be opened.
    """
    if source is None:
        return CameraSource(camera, retry_s)
    path = Path(source)
    if path.is_dir() or (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES):
        return ImageFolderSource(path)
    if not path.exists():
        raise SourceError(f"{path}: no such video file or image folder")
    return VideoSource(path)
