"""Playing a file like a camera: at its own frame rate (:class:`Pacer`), over and over
(:class:`LoopingSource`), with a clock in media time (:func:`media_clock`).

Serve mode uses them so that a video demo behaves like a camera on a shelf: the page shows it at
its real speed, and ``--loop`` keeps the server up until it is stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from runtime.sources import FrameSource

DEFAULT_FPS = 30.0  # for sources that do not know their rate (image folders)


class LoopingSource(FrameSource):
    """Replays a finite source from the start whenever it ends; indices keep counting up, so
    logs, the page and capture timing never see time go backwards."""

    def __init__(self, open_source: Callable[[], FrameSource]) -> None:
        self._open = open_source
        self._src = open_source()
        self.name = f"{self._src.name} (looped)"
        self.live = self._src.live
        self.fps = self._src.fps
        self._offset = 0
        self._last = -1
        self.replays = 0

    def read(self) -> tuple[int, np.ndarray] | None:
        item = self._src.read()
        if item is None:
            self._src.close()
            self._src = self._open()
            self._offset = self._last + 1
            self.replays += 1
            item = self._src.read()
            if item is None:  # an empty source would spin forever
                return None
        index, frame = item
        self._last = index + self._offset
        return self._last, frame

    def close(self) -> None:
        self._src.close()


class Pacer:
    """Sleeps so that frames go out at ``fps``, as a camera would deliver them.

    A late frame is not followed by a catch-up burst: the schedule restarts from now.
    """

    def __init__(self, fps: float | None) -> None:
        self.period = 1.0 / (fps or DEFAULT_FPS)
        self._due: float | None = None

    def wait(self) -> None:
        now = time.perf_counter()
        if self._due is None:
            self._due = now
        elif self._due > now:
            time.sleep(self._due - now)
        self._due = max(self._due, time.perf_counter() - self.period) + self.period


def media_clock(source: FrameSource) -> Callable[[int], float]:
    """Seconds for frame ``index``: the file's own timeline, or the wall clock for a camera.

    Capture bursts are timed with it, so capturing from a file gives the same samples at any
    processing speed.
    """
    if source.live:
        return lambda index: time.monotonic()
    period = 1.0 / (source.fps or DEFAULT_FPS)
    return lambda index: index * period
