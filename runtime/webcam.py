"""``python -m runtime.webcam``: live hand-sign recognition from a camera, video or image folder.

This module is the frame loop and its settings. Each frame goes through
:class:`runtime.pipeline.FramePipeline` (centre-square ROI, the shared preprocessing, the model,
temporal smoothing); around it: the window (:mod:`runtime.window`), the CSV log
(:mod:`runtime.framelog`), Ctrl-C/SIGTERM (:mod:`runtime.signals`) and the latency summary
(:mod:`runtime.stats`). Anything else that wants each frame is a :class:`runtime.hooks.FrameHook`
passed to :func:`run`.

Exit codes: 0 at the end of a video or folder, ``--max-frames``, q/ESC, Ctrl-C or SIGTERM (the
current frame is finished; the log and summary are complete); 1 when a camera stops delivering
frames mid-run (after the summary); 2 for bad input (model, camera, source, flags), with a
one-line error.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.cli import opt, run_command
from runtime.errors import SettingError, SignsError, SourceError
from runtime.handfinder import DEFAULT_HAND_FINDER, HAND_FINDERS, PALM_THREADS
from runtime.handsearch import DEFAULT_THRESHOLD, check_search_threshold
from runtime.hooks import DONE, QUIT, FrameEvent, FrameHook
from runtime.pipeline import DEFAULT_MIN_CONFIDENCE, DEFAULT_SMOOTH, check_roi, check_smoothing
from runtime.stats import (
    STAGES,
    LatencyHistogram,
    RunSummary,
    peak_rss_mb,
    print_summary,
    process_age_s,
)

if TYPE_CHECKING:
    from runtime.sources import FrameSource


@dataclass
class WebcamSettings:
    """Everything ``python -m runtime.webcam`` does, as data; checked once, when made."""

    model: str | None = opt(
        None,
        metavar="FILE",
        help="exported .tflite or .onnx file; when omitted, artifacts/export/tflite-int8.tflite "
        "if it passed export, else the most accurate passing model in its manifest.json",
    )
    camera: int = opt(
        0, help="camera index (cv2.VideoCapture), when there is no --source", group="src"
    )
    source: str | None = opt(
        None,
        help="a video file, a folder of images (name order) or one image, instead of a camera",
        group="src",
    )
    headless: bool = opt(False, help="no window: for servers, tests and benchmarks")
    threads: int | None = opt(1, help="inference threads; 1 is fastest for this tiny CNN")
    smooth: float = opt(
        DEFAULT_SMOOTH,
        help="per-frame moving-average weight of the past probabilities, 0 <= s < 1 (0 = off)",
    )
    min_confidence: float | None = opt(
        None,
        help='top smoothed probability below which "no sign" is shown; when omitted, the '
        f"value calibrated at training time (manifest.json), else {DEFAULT_MIN_CONFIDENCE}",
    )
    mirror: bool = opt(
        False, help="flip horizontally (selfie view); the model sees the flipped image"
    )
    roi: int | None = opt(
        None,
        help="side of the centred square the model sees, px; 0 = the largest centred square; "
        "when omitted, the largest 64 * 2**k px that fits (256 for 640x480: exact 2x resize steps)",
    )
    find_hand: bool = opt(
        False,
        help="look for the hand anywhere in the frame (see --hand-finder) instead of the fixed "
        "centred square; off by default: see README",
    )
    hand_finder: str = opt(
        DEFAULT_HAND_FINDER,
        choices=HAND_FINDERS,
        help="--find-hand: palm (MediaPipe's palm detector finds the hand, the model reads it; "
        "fetch the detector once with python -m runtime.palm) or scan (the model scans the "
        "frame at 3 scales, runtime.handsearch)",
    )
    palm_model: str | None = opt(
        None,
        metavar="FILE",
        help="--hand-finder palm: the palm detector file (default: "
        "~/.cache/signs-edge/palm_detection_full.tflite, where python -m runtime.palm puts it)",
    )
    palm_threads: int = opt(
        PALM_THREADS,
        help="--hand-finder palm: the palm detector's inference threads (it reads three views "
        "of each frame; 2 is fastest on 2 cores)",
    )
    search_threshold: float | None = opt(
        None,
        help="--hand-finder scan: the best window's score (top minus second probability) needed "
        "to show a sign; when omitted, the value calibrated at training time (manifest.json), "
        f"else {DEFAULT_THRESHOLD}",
    )
    max_frames: int = opt(0, help="stop after N frames (0 = no limit)")
    log: str | None = opt(
        None, metavar="CSV", help="CSV file: one row per frame, written atomically at exit"
    )
    save_dir: str = opt(".", help="where the s key saves frame-<index>.png")
    serve: str | None = opt(
        None,
        metavar="[HOST:]PORT",
        help="serve the live view on http://HOST:PORT/ (HOST defaults to 127.0.0.1; any other "
        "address prints a URL with a random token)",
    )
    loop: bool = opt(False, help="replay the --source video or folder until stopped")
    capture_dir: str = opt(
        "captures", help="where capture bursts write <label>/<timestamp>_<n>.jpg"
    )
    capture_label: int | None = opt(
        None, help="record one burst of this class (0-5), then stop (unless --serve)"
    )
    capture_count: int = opt(20, help="frames per capture burst (keys 0-5, --capture-label)")
    capture_countdown: float = opt(3.0, help="seconds from a capture request to its first frame")
    retry_s: float = 1.0  # seconds a camera may go without a frame before the run ends

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise SettingError("threads", self.threads, "must be at least 1")
        if self.palm_threads < 1:
            raise SettingError("palm_threads", self.palm_threads, "must be at least 1")
        if self.max_frames < 0:
            raise SettingError("max_frames", self.max_frames, "must be 0 (no limit) or more")
        if self.camera < 0:
            raise SettingError("camera", self.camera, "the index must be 0 or more")
        if self.retry_s <= 0:
            raise SettingError("retry_s", self.retry_s, "must be more than 0 seconds")
        check_roi(self.roi)
        check_smoothing(self.smooth, self.min_confidence)
        check_search_threshold(self.search_threshold)
        if self.search_threshold is not None and not (
            self.find_hand and self.hand_finder == "scan"
        ):
            raise SignsError("--search-threshold: only with --find-hand --hand-finder scan")
        if self.palm_model is not None and not (self.find_hand and self.hand_finder == "palm"):
            raise SignsError("--palm-model: only with --find-hand (and --hand-finder palm)")
        # A folder would only fail at exit, after the whole run (os.replace onto a directory).
        if self.log is not None and Path(self.log).is_dir():
            raise SettingError("log", self.log, "is a folder; give the path of a CSV file")
        self._check_web()

    def _check_web(self) -> None:
        from runtime.capture import MAX_COUNT
        from runtime.preprocess import NUM_CLASSES

        if self.capture_label is not None and not 0 <= self.capture_label < NUM_CLASSES:
            raise SettingError(
                "capture_label", self.capture_label, f"must be a class 0-{NUM_CLASSES - 1}"
            )
        if not 1 <= self.capture_count <= MAX_COUNT:
            raise SettingError("capture_count", self.capture_count, f"must be 1 to {MAX_COUNT}")
        if self.capture_countdown < 0:
            raise SettingError("capture_countdown", self.capture_countdown, "must be 0 or more s")
        if self.loop and self.source is None:
            raise SignsError("--loop: needs --source (a video file or image folder)")
        if self.serve is not None:
            from runtime.server import parse_serve

            try:
                parse_serve(self.serve)
            except SignsError:
                raise SettingError(
                    "serve", self.serve, "expected [HOST:]PORT, e.g. 8000 or 0.0.0.0:8000"
                ) from None


def run(
    settings: WebcamSettings,
    source: FrameSource | None = None,
    hooks: Sequence[FrameHook] = (),
) -> RunSummary:
    """Run the loop until the source ends, ``max_frames``, q/ESC, Ctrl-C or SIGTERM.

    Args:
        settings: what to run.
        source: frames from elsewhere (any :class:`runtime.sources.FrameSource`, e.g. a
            picamera2 wrapper); None opens ``settings.source`` or ``settings.camera``.
        hooks: extra per-frame observers, after the built-in log and frame saver.

    Returns:
        The summary, also printed.

    Raises:
        FramesStopped: a camera stopped delivering frames (exit code 1); raised after the
            summary was printed and the log written, and carries it as ``.summary``.
        SignsError: bad model, camera or source (nothing is written).
    """
    t_start = time.perf_counter()
    from runtime.backends import load_backend, uint8_shortcut
    from runtime.framelog import FrameLog
    from runtime.fsutil import ensure_writable_dir
    from runtime.handfinder import make_finder, threshold_fact
    from runtime.modelinfo import check_backend, default_model, describe_model
    from runtime.pipeline import FramePipeline, Roi
    from runtime.signals import StopSignals
    from runtime.sources import FramesStopped, open_source
    from runtime.window import FrameSaver, Window

    model_path = Path(settings.model) if settings.model else default_model()
    info = describe_model(model_path)
    backend = load_backend(model_path, threads=settings.threads)
    for w in (*info.warnings, *check_backend(info, backend)):
        print(f"warning: {w}", file=sys.stderr)
    min_confidence, origin = info.no_sign.resolve(settings.min_confidence)
    threshold, search_origin = info.hand_search.resolve(settings.search_threshold)
    pipe = FramePipeline(
        backend,
        roi=Roi(settings.roi),
        smooth=settings.smooth,
        min_confidence=min_confidence,
        mirror=settings.mirror,
        search=make_finder(
            backend, settings.hand_finder, threshold, settings.palm_model, settings.palm_threads
        )
        if settings.find_hand
        else None,
    )
    all_hooks: list[FrameHook] = []
    if settings.log:
        log_dir = Path(settings.log).parent
        ensure_writable_dir(log_dir if str(log_dir) else Path("."), "--log folder")
        all_hooks.append(FrameLog(settings.log))
    window = None
    if not settings.headless:
        window = Window(info.labels, mirror=settings.mirror)
        all_hooks.append(FrameSaver(settings.save_dir))
    all_hooks.extend(hooks)

    if source is None:
        if settings.loop:
            from runtime.webview import loop_source

            source = loop_source(
                lambda: open_source(settings.camera, settings.source, settings.retry_s)
            )
        else:
            source = open_source(settings.camera, settings.source, settings.retry_s)
    search = None
    if settings.find_hand:
        search = threshold_fact(settings.hand_finder, (threshold, search_origin))
    facts = (info, backend, (min_confidence, origin), search)
    capture_hook = _capture_and_serve(settings, facts, source, window, all_hooks)
    print(f"model: {info.describe()}", flush=True)
    shortcut = " (exact uint8 - 128 shortcut)" if uint8_shortcut(backend.input) else ""
    print(
        f"runtime: {backend.runtime}, threads {settings.threads or 'auto'}, input "
        f"{backend.input.dtype}{shortcut}; source: {source.name}; smoothing "
        f"{settings.smooth:g}, min confidence {min_confidence:g} ({origin})",
        flush=True,
    )
    if pipe.search is not None:
        print(f"hand search: {pipe.search.describe()} ({search[1]})", flush=True)

    hists = {s: LatencyHistogram() for s in STAGES}
    frames = 0
    ended = "end of source"
    failure: FramesStopped | None = None
    first_frame_s = None
    t_first = t_last = None
    clock = time.perf_counter_ns
    try:
        with contextlib.ExitStack() as stack:
            stop = stack.enter_context(StopSignals())
            stack.enter_context(source)
            for hook in all_hooks:
                stack.enter_context(hook)
            if window is not None:
                window.open(source)
            while not settings.max_frames or frames < settings.max_frames:
                if stop.reason:
                    ended = stop.reason
                    break
                t0 = clock()
                try:
                    item = source.read()
                except FramesStopped as exc:
                    failure, ended = exc, "camera stopped delivering frames"
                    break
                t1 = clock()
                if item is None:
                    break
                index, frame = item
                res = pipe.step(frame)
                t2 = clock()
                capture = (t1 - t0) / 1e6
                actions = window.show(index, frame, res, capture) if window is not None else []
                t3 = clock()
                if t_first is None:
                    t_first = t0
                    first_frame_s = process_age_s()
                    if first_frame_s is None:
                        first_frame_s = time.perf_counter() - t_start
                t_last = t3
                event = FrameEvent(index, frame, res, capture, (t3 - t2) / 1e6, (t3 - t0) / 1e6)
                record_event(hists, event)
                for hook in all_hooks:
                    action = hook.on_frame(event)
                    if action is not None:
                        actions.append(action)
                frames += 1
                for action in actions:
                    if action != QUIT:
                        for hook in all_hooks:
                            hook.on_action(action, event)
                if QUIT in actions:
                    ended = "quit (q/ESC)"
                    break
                if DONE in actions:
                    ended = "capture done"
                    break
            else:
                ended = f"--max-frames {settings.max_frames}"
            if frames == 0 and failure is None and ended == "end of source":
                # Raised inside the `with`: the empty log is discarded.
                raise SourceError(f"{source.name}: no frames could be read")
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once; FrameLog has kept the log
        ended = "interrupted"
    finally:
        if window is not None:
            window.close()

    seconds = (t_last - t_first) / 1e9 if t_first is not None and t_last is not None else 0.0
    summary = RunSummary(
        frames=frames,
        seconds=seconds,
        fps=frames / seconds if seconds > 0 else float("nan"),
        ended=ended,
        stats={s: h.summary() for s, h in hists.items() if h.n},
        log=settings.log,
        first_frame_s=first_frame_s,
        peak_rss_mb=peak_rss_mb(),
    )
    print_summary(summary, headless=window is None)
    if failure is not None:
        failure.summary = summary
        raise failure
    capture_hook.check()
    return summary


def _capture_and_serve(settings, facts, source, window, all_hooks: list[FrameHook]):
    """Capture (keys 0-5, --capture-label, the page) and --serve, as hooks of this run."""
    from runtime.capture import CaptureHook, Capturer
    from runtime.replay import media_clock

    capturer = Capturer(settings.capture_dir, settings.capture_countdown)
    if settings.capture_label is not None:
        capturer.start(settings.capture_label, settings.capture_count)
    capture = CaptureHook(
        capturer,
        media_clock(source),
        mirror=settings.mirror,
        burst=settings.capture_count,
        stop_when_done=settings.capture_label is not None and settings.serve is None,
    )
    all_hooks.append(capture)
    if window is not None:
        window.status = lambda: capturer.status().lines()
    if settings.serve is not None:
        from runtime.server import parse_serve
        from runtime.webview import WebHook, model_facts

        host, port = parse_serve(settings.serve)
        all_hooks.append(
            WebHook(
                host, port, facts[0].labels, model_facts(*facts, settings.threads), capturer,
                source, mirror=settings.mirror, pace=window is None,
            )
        )  # fmt: skip
    return capture


def record_event(hists: dict[str, LatencyHistogram], e: FrameEvent) -> None:
    times = e.result.times
    hists["capture"].add(e.capture_ms)
    hists["preprocess"].add(times["preprocess"])
    hists["inference"].add(times["inference"])
    hists["smoothing"].add(times["smoothing"])
    hists["display"].add(e.display_ms)
    hists["total"].add(e.total_ms)


def main(argv: list[str] | None = None) -> None:
    run_command(
        WebcamSettings,
        run,
        argv,
        prog="python -m runtime.webcam",
        description="Recognise hand signs (0-5 fingers) live from a camera, video or images.",
    )


if __name__ == "__main__":
    main()
