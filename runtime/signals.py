"""Ctrl-C and SIGTERM as a request to stop the frame loop after the current frame."""

from __future__ import annotations

import contextlib
import signal


class StopSignals:
    """Ctrl-C (SIGINT) or SIGTERM (e.g. systemd stop) ask the loop to stop after the current
    frame, so the log, the frame count and the summary agree; a second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.reason = "interrupted (Ctrl-C)" if signum == signal.SIGINT else "terminated (SIGTERM)"

    def __enter__(self) -> StopSignals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
