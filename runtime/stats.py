"""Latency statistics and the run summary: percentiles, the latency histogram, peak RSS.

One percentile definition for the whole project: nearest rank (numpy's ``inverted_cdf``), a
value that was really measured. :class:`LatencyHistogram` quotes the same definition in fixed
memory, and the benchmarks use :func:`percentiles` on their samples.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

STAGES = ("capture", "preprocess", "inference", "smoothing", "display", "total")
PERCENTILE_METHOD = "inverted_cdf"  # nearest rank: every quoted percentile is a measured value


def percentiles(values: np.ndarray | Sequence[float], qs: Sequence[float]) -> list[float]:
    """The ``qs``-th percentiles (0-100) of ``values``, nearest-rank definition."""
    return [float(v) for v in np.percentile(np.asarray(values), qs, method=PERCENTILE_METHOD)]


class LatencyHistogram:
    """Latency percentiles in fixed memory, so RSS stays flat however long a camera runs.

    Log-spaced bins 0.2% wide from 1 us to 100 s: a quoted percentile is within 0.1% of the
    exact nearest-rank order statistic (:func:`percentiles`). Count, mean and max are exact.
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
    """This process's peak resident set size in MiB; None where the OS will not say (Windows).

    The kernel's high-water mark (``VmHWM`` in /proc/self/status) where there is one:
    ``getrusage(...).ru_maxrss`` is only the fallback (macOS), because on Linux it can include
    the memory of the parent that spawned the process, which would overstate small runtimes.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # reported in kB
    except OSError:
        pass
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
