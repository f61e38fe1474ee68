"""``python -m runtime.webcam``: live hand-sign recognition from a camera, video or image folder.

Each frame goes through :class:`runtime.pipeline.FramePipeline` (centre-square ROI, the shared
preprocessing, the model, temporal smoothing). A window shows the ROI box, the label with a
confidence bar, FPS and per-stage latency; ``--headless`` runs without one. ``--log CSV`` keeps
one row per frame; at exit a p50/p95/p99 latency summary is printed.

Exit codes: 0 at the end of a video or folder, ``--max-frames``, q/ESC, Ctrl-C or SIGTERM (the
current frame is finished; the log and summary are complete); 1 when a camera stops delivering
frames mid-run (after the summary); 2 for bad input (model, camera, source, flags), with a
one-line error.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from runtime.cli import flag
from runtime.errors import SignsError, SourceError, run_cli
from runtime.pipeline import DEFAULT_MIN_CONFIDENCE, DEFAULT_SMOOTH

if TYPE_CHECKING:
    from runtime.sources import FrameSource

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
STAGES = ("capture", "preprocess", "inference", "smoothing", "display", "total")
QUIT_KEYS = (ord("q"), ord("Q"), 27)  # q or ESC
SAVE_KEYS = (ord("s"), ord("S"))


@dataclass
class WebcamSettings:
    """Everything ``python -m runtime.webcam`` does, as data."""

    model: str | None = None  # model file; None = artifacts/export default (runtime.manifest)
    camera: int = 0  # camera index for cv2.VideoCapture, used when source is None
    source: str | None = None  # video file, image folder or image file instead of a camera
    headless: bool = False  # no window: for servers, tests and benchmarks
    threads: int | None = 1  # inference threads; 1 is fastest for this tiny CNN (see README)
    smooth: float = DEFAULT_SMOOTH  # EMA weight of the past per frame, [0, 1); 0 = off
    min_confidence: float = DEFAULT_MIN_CONFIDENCE  # below it the label is "no sign"
    mirror: bool = False  # flip horizontally (selfie view); the model sees the flipped image
    roi: int | None = None  # ROI side, px; None = largest 64*2**k that fits, 0 = full
    find_hand: bool = False  # scan the frame for the hand (runtime.handsearch) instead of the ROI
    max_frames: int = 0  # stop after this many frames; 0 = until the source ends or q/Ctrl-C
    log: str | None = None  # CSV path for one row per frame (written atomically at exit)
    save_dir: str = "."  # where the `s` key writes frame-<index>.png
    retry_s: float = 1.0  # seconds a camera may go without a frame before the run ends


@dataclass
class RunSummary:
    frames: int
    seconds: float  # wall time from the first capture to the end of the last frame
    fps: float  # frames / seconds
    ended: str  # why the loop stopped
    stats: dict[str, dict[str, float]] = field(default_factory=dict)  # stage -> p50/p95/p99/mean
    log: str | None = None
    first_frame_s: float | None = None  # process start (else run() start) to first prediction
    peak_rss_mb: float | None = None  # peak resident memory, MiB (None where the OS won't say)


class LatencyHistogram:
    """Latency percentiles in fixed memory, so RSS stays flat however long a camera runs.

    Log-spaced bins 0.2% wide from 1 us to 100 s: a quoted percentile is within 0.1% of the
    exact order statistic (nearest-rank definition). Count, mean and max are exact.
    """

    LO_MS = 1e-3
    HI_MS = 1e5
    RATIO = 1.002

    def __init__(self) -> None:
        self._log_ratio = math.log(self.RATIO)
        self._nbins = int(math.ceil(math.log(self.HI_MS / self.LO_MS) / self._log_ratio)) + 1
        self.counts = np.zeros(self._nbins, dtype=np.int64)
        self.n = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, ms: float) -> None:
        i = int(math.log(ms / self.LO_MS) / self._log_ratio) if ms > self.LO_MS else 0
        self.counts[min(i, self._nbins - 1)] += 1
        self.n += 1
        self.total += ms
        if ms > self.max:
            self.max = ms

    def percentile(self, q: float) -> float:
        """The q-th percentile (0-100) in ms; nan when empty."""
        if not self.n:
            return float("nan")
        rank = max(1, math.ceil(q / 100.0 * self.n))
        i = int(np.searchsorted(np.cumsum(self.counts), rank))
        value = self.LO_MS * self.RATIO ** (i + 0.5)  # the bin's geometric centre
        return min(value, self.max)

    def summary(self) -> dict[str, float]:
        return {
            "p50": self.percentile(50),
            "p95": self.percentile(95),
            "p99": self.percentile(99),
            "mean": self.total / self.n if self.n else float("nan"),
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.webcam",
        description="Recognise hand signs (0-5 fingers) live from a camera, video or images.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = WebcamSettings()
    parser.add_argument(
        "--model",
        type=str,
        default=d.model,
        help="exported .tflite or .onnx file; when omitted, artifacts/export/tflite-int8.tflite "
        "if it passed export, else the most accurate passing model in its manifest.json",
    )
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--camera", type=int, default=d.camera, help="camera index (cv2.VideoCapture)")
    src.add_argument("--source", type=str, default=d.source, help="video file or image folder")
    parser.add_argument("--headless", action="store_true", help="no window")
    parser.add_argument("--threads", type=int, default=d.threads, help="inference threads")
    parser.add_argument(
        "--smooth",
        type=float,
        default=d.smooth,
        help="per-frame moving-average weight of the past probabilities, 0 <= s < 1 (0 = off)",
    )
    parser.add_argument(
        *flag("min-confidence"),
        type=float,
        default=d.min_confidence,
        help='show "no sign" when the top smoothed probability is below this',
    )
    parser.add_argument("--mirror", action="store_true", help="flip horizontally (selfie view)")
    parser.add_argument(
        "--roi",
        type=int,
        default=d.roi,
        help="side of the centred square the model sees, px; 0 = the largest centred square; "
        "when omitted, the largest 64 * 2**k px that fits (256 for 640x480: exact 2x resize steps)",
    )
    parser.add_argument(
        *flag("find-hand"),
        action="store_true",
        help="look for the hand anywhere in the frame (a multi-scale scan with the model; "
        "costs ~20-60 windows' inference a frame) instead of the fixed centred square",
    )
    parser.add_argument(
        *flag("max-frames"),
        type=int,
        default=d.max_frames,
        help="stop after N frames (0 = no limit)",
    )
    parser.add_argument("--log", type=str, default=d.log, help="write one CSV row per frame")
    parser.add_argument(
        *flag("save-dir"), type=str, default=d.save_dir, help="where `s` saves frames"
    )
    args = parser.parse_args(argv)
    settings = WebcamSettings(
        model=args.model,
        camera=args.camera,
        source=args.source,
        headless=args.headless,
        threads=args.threads,
        smooth=args.smooth,
        min_confidence=args.min_confidence,
        mirror=args.mirror,
        roi=args.roi,
        find_hand=args.find_hand,
        max_frames=args.max_frames,
        log=args.log,
        save_dir=args.save_dir,
    )
    run_cli(lambda: run(settings))


def _check(settings: WebcamSettings) -> None:
    if settings.threads is not None and settings.threads < 1:
        raise SignsError(f"--threads {settings.threads}: must be at least 1")
    if settings.max_frames < 0:
        raise SignsError(f"--max-frames {settings.max_frames}: must be 0 (no limit) or more")
    if settings.roi is not None and settings.roi < 0:
        raise SignsError(f"--roi {settings.roi}: must be 0 (full centre square) or a side in px")
    if not 0.0 <= settings.smooth < 1.0:
        raise SignsError(f"--smooth {settings.smooth}: must be in [0, 1) (0 = no smoothing)")
    if not 0.0 <= settings.min_confidence <= 1.0:
        raise SignsError(f"--min-confidence {settings.min_confidence}: must be in [0, 1]")


def run(settings: WebcamSettings, source: FrameSource | None = None) -> RunSummary:
    """Run the loop until the source ends, ``max_frames``, q/ESC, Ctrl-C or SIGTERM.

    Args:
        settings: what to run.
        source: frames from elsewhere (any :class:`runtime.sources.FrameSource`, e.g. a
            picamera2 wrapper); None opens ``settings.source`` or ``settings.camera``.

    Returns:
        The summary, also printed.

    Raises:
        FramesStopped: a camera stopped delivering frames (exit code 1); raised after the
            summary was printed and the log written, and carries it as ``.summary``.
        SignsError: bad flags, model, camera or source (nothing is written).
    """
    t_start = time.perf_counter()
    _check(settings)
    from runtime.backends import load_backend, uint8_shortcut
    from runtime.fsutil import ensure_writable_dir
    from runtime.handsearch import HandSearch
    from runtime.manifest import check_backend, default_model, describe_model
    from runtime.pipeline import FramePipeline, Roi
    from runtime.sources import FramesStopped, open_source

    model_path = Path(settings.model) if settings.model else default_model()
    info = describe_model(model_path)
    backend = load_backend(model_path, threads=settings.threads)
    for w in (*info.warnings, *check_backend(info, backend)):
        print(f"warning: {w}", file=sys.stderr)
    pipe = FramePipeline(
        backend,
        roi=Roi(settings.roi),
        smooth=settings.smooth,
        min_confidence=settings.min_confidence,
        mirror=settings.mirror,
        search=HandSearch(backend) if settings.find_hand else None,
    )
    log_path = Path(settings.log) if settings.log else None
    if log_path is not None:
        ensure_writable_dir(log_path.parent if str(log_path.parent) else Path("."), "--log folder")
    window = None if settings.headless else Window(info.labels, settings)

    if source is None:
        source = open_source(settings.camera, settings.source, settings.retry_s)
    print(f"model: {info.describe()}", flush=True)
    shortcut = " (exact uint8 - 128 shortcut)" if uint8_shortcut(backend.input) else ""
    print(
        f"runtime: {backend.runtime}, threads {settings.threads or 'auto'}, input "
        f"{backend.input.dtype}{shortcut}; source: {source.name}; smoothing "
        f"{settings.smooth:g}, min confidence {settings.min_confidence:g}",
        flush=True,
    )
    if pipe.search is not None:
        print(f"hand search: {pipe.search.describe()}", flush=True)

    hists = {s: LatencyHistogram() for s in STAGES}
    frames = 0
    ended = "end of source"
    failure: FramesStopped | None = None
    first_frame_s = None
    t_first = t_last = None
    clock = time.perf_counter_ns
    try:
        with _StopSignals() as stop, source, _CsvLog(log_path) as log:
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
                key = window.show(index, frame, res, capture) if window is not None else None
                t3 = clock()
                if t_first is None:
                    t_first = t0
                    first_frame_s = process_age_s()
                    if first_frame_s is None:
                        first_frame_s = time.perf_counter() - t_start
                t_last = t3
                display, total = (t3 - t2) / 1e6, (t3 - t0) / 1e6
                times = res.times
                for stage, ms in (
                    ("capture", capture),
                    ("preprocess", times["preprocess"]),
                    ("inference", times["inference"]),
                    ("smoothing", times["smoothing"]),
                    ("display", display),
                    ("total", total),
                ):
                    hists[stage].add(ms)
                if log is not None:
                    log.row(index, res, capture, display, total)
                frames += 1
                if key == "quit":
                    ended = "quit (q/ESC)"
                    break
            else:
                ended = f"--max-frames {settings.max_frames}"
            if frames == 0 and failure is None and ended == "end of source":
                # Raised inside the `with`: the empty log is discarded.
                raise SourceError(f"{source.name}: no frames could be read")
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once; _CsvLog has kept the log
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
        log=str(log_path) if log_path else None,
        first_frame_s=first_frame_s,
        peak_rss_mb=peak_rss_mb(),
    )
    print_summary(summary, headless=window is None)
    if failure is not None:
        failure.summary = summary
        raise failure
    return summary


class _StopSignals:
    """Ctrl-C (SIGINT) or SIGTERM (e.g. systemd stop) ask the loop to stop after the current
    frame, so the log, the frame count and the summary agree; a second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.reason = "interrupted (Ctrl-C)" if signum == signal.SIGINT else "terminated (SIGTERM)"

    def __enter__(self) -> _StopSignals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _CsvLog:
    """The per-frame CSV log, written to a temp file beside ``path`` and renamed at exit.

    Ctrl-C ends a camera run normally, so a KeyboardInterrupt still renames the complete log
    into place (then propagates to the caller); any other exception leaves nothing behind.
    """

    def __init__(self, path: Path | None) -> None:
        from runtime.fsutil import atomic_path

        self._atomic = atomic_path(path) if path is not None else None
        self._fh = None
        self._writer = None

    def __enter__(self) -> _CsvLog | None:
        if self._atomic is None:
            return None
        tmp = self._atomic.__enter__()
        self._fh = open(tmp, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed in exit
        self._writer = csv.writer(self._fh)
        self._writer.writerow(LOG_COLUMNS)
        return self

    def row(self, index: int, res, capture: float, display: float, total: float) -> None:
        t = res.times
        self._writer.writerow(
            (
                index,
                "" if res.label is None else res.label,
                f"{res.confidence:.4f}",
                f"{capture:.4f}",
                f"{t['preprocess']:.4f}",
                f"{t['inference']:.4f}",
                f"{t['smoothing']:.4f}",
                f"{display:.4f}",
                f"{total:.4f}",
            )
        )

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self._atomic is None:
            return False
        self._fh.close()
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self._atomic.__exit__(None, None, None)  # keep the log: rename it into place
        else:
            self._atomic.__exit__(exc_type, exc, tb)
        return False


def process_age_s() -> float | None:
    """Seconds since this process started (Linux /proc, 10 ms resolution), else None."""
    try:
        with open("/proc/self/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process in MiB (None where ``resource`` is missing)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def print_summary(s: RunSummary, *, headless: bool) -> None:
    """The latency table printed at exit."""
    fps = f"{s.fps:.1f}" if s.fps == s.fps else "n/a"
    print(f"\n{s.frames} frames in {s.seconds:.2f} s, mean {fps} FPS; ended: {s.ended}")
    if s.first_frame_s is not None:
        since = "process start" if process_age_s() is not None else "run() start"
        print(f"first prediction {s.first_frame_s:.2f} s after {since}")
    if s.peak_rss_mb is not None:
        print(f"peak RSS {s.peak_rss_mb:.1f} MiB")
    print(f"{'stage':<11}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'mean ms':>9}")
    for stage in STAGES:
        if stage == "display" and headless:
            continue
        st = s.stats.get(stage)
        if st is None:
            print(f"{stage:<11}{'n/a':>9}{'n/a':>9}{'n/a':>9}{'n/a':>9}")
            continue
        print(f"{stage:<11}{st['p50']:>9.3f}{st['p95']:>9.3f}{st['p99']:>9.3f}{st['mean']:>9.3f}")
    if s.log:
        print(f"log: {s.log} ({s.frames} rows)")
    sys.stdout.flush()


class Window:
    """The OpenCV window: ROI box, label and confidence bar, FPS, per-stage latency, keys."""

    TITLE = "signs-edge (q/ESC quit, s save)"

    def __init__(self, labels: list[str], settings: WebcamSettings) -> None:
        import cv2

        if sys.platform.startswith("linux") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        ):
            # Qt would abort the process without a display; say so instead.
            raise SignsError("no display (DISPLAY is not set): use --headless")
        self.cv2 = cv2
        self.labels = labels
        self.mirror = settings.mirror
        self.save_dir = Path(settings.save_dir)
        self._fps = 0.0
        self._last = None
        self._period = None
        self._due = 0.0
        self._stage_ms = dict.fromkeys(("capture", "preprocess", "inference", "smoothing"), 0.0)

    def open(self, source) -> None:
        cv2 = self.cv2
        try:
            # GUI_NORMAL: no Qt toolbar or status bar, just the picture.
            cv2.namedWindow(self.TITLE, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
        except cv2.error as exc:
            raise SignsError(
                f"cannot open a window ({str(exc).strip().splitlines()[-1]}): use --headless "
                "or install opencv-python (not -headless)"
            ) from None
        # A file plays at its own frame rate in a window; a camera paces itself.
        if not source.live:
            self._period = 1.0 / (source.fps or 30.0)
            self._due = time.perf_counter()

    def show(self, index: int, frame: np.ndarray, res, capture_ms: float) -> str | None:
        cv2 = self.cv2
        now = time.perf_counter()
        if self._last is not None:
            dt = now - self._last
            inst = 1.0 / dt if dt > 0 else 0.0
            self._fps = inst if self._fps == 0 else 0.9 * self._fps + 0.1 * inst
        self._last = now
        for k, ms in (("capture", capture_ms), *res.times.items()):
            self._stage_ms[k] = 0.9 * self._stage_ms[k] + 0.1 * ms  # steady enough to read

        view = cv2.flip(frame, 1) if self.mirror else frame.copy()
        h, w = view.shape[:2]
        x, y, side = res.box
        if self.mirror:
            x = w - x - side
        known = res.label is not None
        colour = (60, 200, 60) if known else (170, 170, 170)  # BGR: green, or grey for no sign
        font = cv2.FONT_HERSHEY_SIMPLEX
        # --find-hand with no hand found: a thin box at the best candidate.
        thickness = 1 if res.found is False else 2
        cv2.rectangle(view, (x, y), (x + side - 1, y + side - 1), colour, thickness)
        # Label and confidence bar in a dark band under the ROI (over its bottom edge if the
        # frame has no room), so the picture the model sees stays visible.
        band = min(44, side // 3)
        top = y + side + 2 if y + side + 2 + band <= h else y + side - band
        cv2.rectangle(view, (x, top), (x + side - 1, top + band), (30, 30, 30), -1)
        text = self.labels[res.label] if known else "no sign"
        cv2.putText(view, text, (x + 8, top + band - 10), font, 1.0, colour, 2, cv2.LINE_AA)
        bar_x0, bar_x1 = x + side // 3, x + side - 10
        bar_y0, bar_y1 = top + band // 2 - 6, top + band // 2 + 6
        fill = int(round((bar_x1 - bar_x0) * min(max(res.confidence, 0.0), 1.0)))
        cv2.rectangle(view, (bar_x0, bar_y0), (bar_x1, bar_y1), (90, 90, 90), 1)
        cv2.rectangle(view, (bar_x0, bar_y0), (bar_x0 + fill, bar_y1), colour, -1)
        # FPS and per-stage latency in a band along the top of the frame.
        lines = [
            f"{self._fps:5.1f} FPS   frame {index}   confidence {res.confidence:.2f}",
            "capture {capture:.2f}  preprocess {preprocess:.2f}  inference {inference:.2f}  "
            "smoothing {smoothing:.3f} ms".format(**self._stage_ms),
        ]
        cv2.rectangle(view, (0, 0), (w - 1, 46), (0, 0, 0), -1)
        for i, line in enumerate(lines):
            cv2.putText(view, line, (8, 18 + 20 * i), font, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.imshow(self.TITLE, view)

        delay = 1
        if self._period is not None:
            self._due += self._period
            delay = max(1, int((self._due - time.perf_counter()) * 1000))
            self._due = max(self._due, time.perf_counter() - self._period)  # no catch-up bursts
        key = cv2.waitKey(delay) & 0xFF
        if key in QUIT_KEYS:
            return "quit"
        if key in SAVE_KEYS:
            self.save(index, frame)
        if cv2.getWindowProperty(self.TITLE, cv2.WND_PROP_VISIBLE) < 1:
            return "quit"  # closed with the window manager's button
        return None

    def save(self, index: int, frame: np.ndarray) -> None:
        """Save the frame as captured (no overlay, not mirrored), atomically."""
        from runtime.fsutil import write_bytes

        cv2 = self.cv2
        path = self.save_dir / f"frame-{index:06d}.png"
        ok, buf = cv2.imencode(".png", frame)
        try:
            if not ok:
                raise OSError("PNG encoding failed")
            self.save_dir.mkdir(parents=True, exist_ok=True)
            write_bytes(path, buf.tobytes())
        except OSError as exc:
            print(f"warning: could not save {path}: {exc}", file=sys.stderr, flush=True)
            return
        print(f"saved {path}", flush=True)

    def close(self) -> None:
        with contextlib.suppress(self.cv2.error):
            self.cv2.destroyAllWindows()


if __name__ == "__main__":
    main()
