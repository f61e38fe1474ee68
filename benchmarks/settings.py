"""Benchmark settings: one dataclass; the resolved values are saved in results.json."""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

FULL_ITERATIONS = 10000  # timed single-image calls per row (capped by max_seconds): stable p99
QUICK_ITERATIONS = 300  # --quick: p50/p95 are stable, p99 is indicative only


def default_out() -> str:
    """benchmarks/results/<hostname>: results are per machine."""
    return str(Path("benchmarks") / "results" / (socket.gethostname() or "host"))


def default_threads(quick: bool) -> list[int]:
    """1 and every core (deduplicated); --quick measures one thread only."""
    cores = os.cpu_count() or 1
    return [1] if quick else sorted({1, cores})


@dataclass
class BenchSettings:
    models: str = "artifacts/export"  # folder holding manifest.json from python -m export
    data: str | None = None  # dataset path; None: $SIGNS_DATA, else ./data
    out: str = field(default_factory=default_out)  # results.json / .md / .png go here
    quick: bool = False  # fewer iterations, one thread count, no training cost
    threads: list[int] | None = None  # intra-op thread counts; None: default_threads(quick)
    iterations: int | None = None  # timed calls per row; None: FULL_/QUICK_ITERATIONS
    max_seconds: float = 20.0  # per-row time cap, seconds (Keras predict takes ~50 ms a call)
    pipeline_threads: int = 1  # inference threads for the frame-pipeline rows
    video_frames: int = 120  # frames in the generated 640x480 test video
    # Training cost: epochs of one real train.run per recipe (the first one traces the graph).
    train_epochs: int = 4  # default recipe: about a second per epoch here
    train_epochs_batch1: int = 3  # the notebook's batch size 1: one Adam step per image

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
