"""``--find-hand``'s two ways of finding the hand, behind one switch (``--hand-finder``).

- ``palm`` (the default): MediaPipe's palm detector finds the hand, the SIGNS network reads a
  square around it (:mod:`runtime.palm.search`). It needs the detector file, fetched once with
  ``python -m runtime.palm``.
- ``scan``: the SIGNS network scans the frame itself at three scales (:mod:`runtime.handsearch`);
  nothing to fetch, but it shows a sign on more empty frames (README, "Scene bench").
"""

from __future__ import annotations

from pathlib import Path

from runtime.backends import Backend

HAND_FINDERS = ("palm", "scan")
DEFAULT_HAND_FINDER = "palm"
# The palm detector looks at three views a frame and is ~40x the classifier's work: on 2 cores,
# 2 interpreter threads take a view from ~10 to ~6.5 ms (README, "Scene bench").
PALM_THREADS = 2


def make_finder(
    backend: Backend,
    finder: str,
    search_threshold: float,
    palm_model: str | Path | None = None,
    palm_threads: int | None = PALM_THREADS,
):
    """The search object for :class:`runtime.pipeline.FramePipeline` (``search=``).

    Args:
        backend: the SIGNS classifier.
        finder: one of :data:`HAND_FINDERS`.
        search_threshold: the scan's threshold (the model's calibrated value or the flag's).
        palm_model: the palm detector file; None: :func:`runtime.palm.fetch.default_path`.
        palm_threads: the palm detector's interpreter threads.

    Raises:
        ModelError: the palm detector file is missing or is not the palm model.
    """
    if finder == "palm":
        from runtime.palm.detector import PalmDetector
        from runtime.palm.fetch import default_path
        from runtime.palm.search import PalmSearch

        return PalmSearch(backend, PalmDetector(palm_model or default_path(), palm_threads))
    if finder == "scan":
        from runtime.handsearch import HandSearch, SearchConfig

        return HandSearch(backend, SearchConfig().with_threshold(search_threshold))
    raise ValueError(f"hand finder {finder!r}: expected one of {HAND_FINDERS}")


def threshold_fact(finder: str, search: tuple[float, str]) -> tuple[float, str]:
    """The threshold the loop's banner and the web page name for this finder, with its origin."""
    if finder == "palm":
        from runtime.palm.detector import MIN_SCORE

        return MIN_SCORE, "palm detector score in any of 3 views, chosen on the dev scenes"
    return search
