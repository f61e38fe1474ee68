"""Benchmark settings: one dataclass; the resolved values are saved in results.json."""

from __future__ import annotations

import argparse
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

from runtime.cli import opt
from runtime.errors import SettingError
from runtime.manifest import DEFAULT_EXPORT_DIR

FULL_ITERATIONS = 10000  # timed single-image calls per row (capped by max_seconds): stable p99
QUICK_ITERATIONS = 300  # --quick: p50/p95 are stable, p99 is indicative only


def default_out() -> str:
    """benchmarks/results/<hostname>: results are per machine."""
    return str(Path("benchmarks") / "results" / (socket.gethostname() or "host"))


def thread_list(text: str) -> list[int]:
    """'1,4' -> [1, 4] (sorted, deduplicated); argparse reports the error as a usage error."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected thread counts like 1,4") from None
    return sorted(set(values))


def default_threads(quick: bool) -> list[int]:
    """1 and every core (deduplicated); --quick measures one thread only."""
    cores = os.cpu_count() or 1
    return [1] if quick else sorted({1, cores})


@dataclass
class BenchSettings:
    models: str = opt(str(DEFAULT_EXPORT_DIR), help="folder with manifest.json (python -m export)")
    data: str | None = opt(
        None,
        help="dataset for accuracy and the test video; when omitted, $SIGNS_DATA, else the data "
        "the export validated on, else ./data",
    )
    out: str = opt(factory=default_out, help="folder for results.json/.md/.png")
    quick: bool = opt(False, help="about 20 s: fewer iterations, threads 1 only, no training cost")
    threads: list[int] | None = opt(
        None,
        parse=thread_list,
        metavar="1,N",
        help="comma-separated thread counts; when omitted, 1 and every core, or 1 with --quick",
    )
    iterations: int | None = opt(
        None,
        help=f"timed calls per row; when omitted, {FULL_ITERATIONS}, or {QUICK_ITERATIONS} "
        "with --quick",
    )
    max_seconds: float = opt(
        20.0, help="time cap per row, seconds (--quick: at most 3; Keras predict is ~50 ms a call)"
    )
    pipeline_threads: int = 1  # inference threads for the frame-pipeline rows
    video_frames: int = 120  # frames in the generated 640x480 test video
    # Training cost: epochs of one real train.run per recipe (the first one traces the graph).
    train_epochs: int = 4  # default recipe: about a second per epoch here
    train_epochs_batch1: int = 3  # the notebook's batch size 1: one Adam step per image

    def __post_init__(self) -> None:
        if self.threads is not None and (not self.threads or min(self.threads) < 1):
            raise SettingError("threads", self.threads, "thread counts must be integers >= 1")
        if self.iterations is not None and self.iterations < 1:
            raise SettingError("iterations", self.iterations, "must be at least 1")
        if self.max_seconds <= 0:
            raise SettingError("max_seconds", self.max_seconds, "must be more than 0")

    def resolved_threads(self) -> list[int]:
        return list(self.threads) if self.threads else default_threads(self.quick)

    def resolved_iterations(self) -> int:
        if self.iterations is not None:
            return self.iterations
        return QUICK_ITERATIONS if self.quick else FULL_ITERATIONS

    def warmup(self) -> int:
        """Untimed calls before timing: first calls pay for allocation and lazy init."""
        return max(3, min(100, self.resolved_iterations() // 10))

    def time_cap(self) -> float:
        return min(self.max_seconds, 3.0) if self.quick else self.max_seconds

    def to_dict(self) -> dict:
        d = asdict(self)
        d["threads"] = self.resolved_threads()
        d["iterations"] = self.resolved_iterations()
        d["warmup"] = self.warmup()
        d["max_seconds"] = self.time_cap()
        return d
