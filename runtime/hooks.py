"""What the frame loop tells the code around it: one event per frame, and actions.

The loop in :mod:`runtime.webcam` stays small by handing everything that is not the frame
itself to hooks: the CSV log (:mod:`runtime.framelog`), saving frames on a key
(:mod:`runtime.window`), and whatever is added next (a web view, a capture of labelled bursts).
A hook is a context manager entered for the whole run, so it can open and close files, servers
or windows with the loop's own exception handling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from runtime.pipeline import FrameResult


@dataclass(frozen=True)
class Action:
    """Something asked for by a key (or any hook): ``quit``, ``save``, or a new kind with an
    argument (e.g. ``Action("record", 3)``)."""

    name: str
    arg: int | None = None


QUIT = Action("quit")
SAVE = Action("save")


@dataclass(slots=True)
class FrameEvent:
    """One processed frame: what came in, what the model said, and how long each part took."""

    index: int  # 0-based position in the source
    frame: np.ndarray  # the frame as captured (BGR, not mirrored, no overlay)
    result: FrameResult
    capture_ms: float
    display_ms: float  # drawing and the key poll; 0 headless
    total_ms: float  # capture through display (hooks run after it, untimed)


class FrameHook:
    """Base class: override what you need. Hooks run in order after each frame's timing."""

    def __enter__(self) -> FrameHook:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        return False

    def on_frame(self, event: FrameEvent) -> Action | None:
        """Called once per frame; return :data:`QUIT` (or another action) to ask for one."""
        return None

    def on_action(self, action: Action, event: FrameEvent) -> None:
        """Called for every non-quit action of this frame (keys, other hooks)."""
