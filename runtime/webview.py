"""``--serve``: the web view as a hook of the frame loop (:class:`WebHook`), the model facts the
page shows, and ``--loop`` for a file source.

The HTTP side is :mod:`runtime.server`, the frame slot and JPEG encoder :mod:`runtime.live`,
capture :mod:`runtime.capture`; this module puts them around one run of :func:`runtime.webcam.run`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING

from runtime.errors import SignsError
from runtime.hooks import Action, FrameHook
from runtime.replay import LoopingSource, Pacer
from runtime.stats import STAGES, LatencyHistogram, RunSummary, peak_rss_mb

if TYPE_CHECKING:
    from runtime.backends import Backend
    from runtime.capture import Capturer
    from runtime.hooks import FrameEvent
    from runtime.modelinfo import ModelInfo
    from runtime.server import WebServer
    from runtime.sources import FrameSource


def model_facts(
    info: ModelInfo,
    backend: Backend,
    min_confidence: tuple[float, str],
    search: tuple[float, str] | None,
    threads: int | None,
) -> dict:
    """What the page says about the model: name, format, export status, accuracy, runtime, the
    min-confidence in use and, with ``--find-hand``, the search threshold, each with its origin
    (:meth:`runtime.manifest.NoSign.resolve`)."""
    entry = info.entry
    return {
        "name": info.path.name,
        "path": str(info.path),
        "format": entry.format if entry else info.path.suffix.lstrip("."),
        "status": entry.status if entry else "no manifest",
        "accuracy": entry.accuracy if entry else None,
        "runtime": backend.runtime,
        "threads": threads,
        "min_confidence": min_confidence[0],
        "min_confidence_source": min_confidence[1],
        "search_threshold": search[0] if search else None,
        "search_threshold_source": search[1] if search else None,
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


class WebHook(FrameHook):
    """``--serve``: the web server for the run, the page's live data, and file pacing.

    Entered with the loop's other hooks: the server starts on enter (a port in use is a
    one-line error before the first frame) and stops on exit, releasing stream clients.

    Args:
        host, port: where to listen (:func:`runtime.server.parse_serve`).
        labels: the class names.
        model: :func:`model_facts` for the page.
        capturer: the run's :class:`runtime.capture.Capturer` (the page's buttons).
        source: the opened source (its frame rate, for pacing).
        mirror: show frames as the model sees them.
        pace: sleep to a file's own frame rate, as a camera would deliver it (no window).
    """

    def __init__(
        self,
        host: str,
        port: int,
        labels: list[str],
        model: dict,
        capturer: Capturer | None,
        source: FrameSource,
        mirror: bool = False,
        pace: bool = True,
    ) -> None:
        self._address = (host, port)
        self._view = (labels, model, capturer, mirror)
        self._pacer = Pacer(source.fps) if pace and not source.live else None
        self._hists = {s: LatencyHistogram() for s in STAGES}
        self._frames = 0
        self._t_first: float | None = None
        self._t_last: float | None = None
        self.server: WebServer | None = None

    def __enter__(self) -> WebHook:
        from runtime.live import LiveView
        from runtime.server import WebServer

        labels, model, capturer, mirror = self._view
        live = LiveView(labels, model, capturer, self.summary, mirror=mirror)
        try:
            self.server = WebServer(live, *self._address).start()
        except BaseException:
            live.close()
            raise
        print(f"serving the live view on {self.server.url}", flush=True)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self.server is not None:
            self.server.live.end("stopped")
            self.server.stop()
        return False

    def on_frame(self, event: FrameEvent) -> Action | None:
        from runtime.webcam import record_event

        now = time.perf_counter()
        if self._t_first is None:
            self._t_first = now - event.total_ms / 1000
        self._t_last = now
        record_event(self._hists, event)
        self._frames += 1
        self.server.live.publish(event.index, event.frame, event.result, event.capture_ms)
        if self._pacer is not None:
            self._pacer.wait()  # after the frame's timing: pacing is not a stage
        return None

    def summary(self) -> dict:
        """The run so far, as the CLI prints it at exit (for ``GET /api/summary``)."""
        first, last, frames = self._t_first, self._t_last, self._frames
        seconds = last - first if first is not None and last is not None else 0.0
        return asdict(
            RunSummary(
                frames=frames,
                seconds=seconds,
                fps=frames / seconds if seconds > 0 else float("nan"),
                ended="running",
                stats={s: h.summary() for s, h in self._hists.items() if h.n},
                peak_rss_mb=peak_rss_mb(),
            )
        )
