"""The per-frame CSV log of ``runtime.webcam --log``: one row per frame, written atomically."""

from __future__ import annotations

import csv
from pathlib import Path

from runtime.hooks import FrameEvent, FrameHook

LOG_COLUMNS = (
    "frame",  # 0-based index in the source
    "label",  # class index shown; empty for "no sign"
    "confidence",  # smoothed probability of the top class
    "capture_ms",  # reading/decoding the frame
    "preprocess_ms",  # ROI crop + shared preprocessing
    "inference_ms",  # the model
    "smoothing_ms",  # moving average + decision
    "display_ms",  # drawing, imshow and the key poll; 0 when headless
    "total_ms",  # the whole iteration: capture through display
)


class FrameLog(FrameHook):
    """Written to a temp file beside ``path`` and renamed at exit.

    Ctrl-C ends a camera run normally, so a KeyboardInterrupt still renames the complete log
    into place (then propagates to the caller); any other exception leaves nothing behind.
    """

    def __init__(self, path: str | Path) -> None:
        from runtime.fsutil import atomic_path

        self.path = Path(path)
        self._atomic = atomic_path(self.path)
        self._fh = None
        self._writer = None

    def __enter__(self) -> FrameLog:
        tmp = self._atomic.__enter__()
        self._fh = open(tmp, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed in exit
        self._writer = csv.writer(self._fh)
        self._writer.writerow(LOG_COLUMNS)
        return self

    def on_frame(self, event: FrameEvent) -> None:
        res = event.result
        t = res.times
        self._writer.writerow(
            (
                event.index,
                "" if res.label is None else res.label,
                f"{res.confidence:.4f}",
                f"{event.capture_ms:.4f}",
                f"{t['preprocess']:.4f}",
                f"{t['inference']:.4f}",
                f"{t['smoothing']:.4f}",
                f"{event.display_ms:.4f}",
                f"{event.total_ms:.4f}",
            )
        )

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._fh.close()
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self._atomic.__exit__(None, None, None)  # keep the log: rename it into place
        else:
            self._atomic.__exit__(exc_type, exc, tb)
        return False
