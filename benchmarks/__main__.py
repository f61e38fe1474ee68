"""python -m benchmarks: size, accuracy, latency and memory of every exported format."""

from __future__ import annotations

import argparse

from benchmarks import BenchSettings, run
from benchmarks.settings import FULL_ITERATIONS, QUICK_ITERATIONS
from runtime.cli import flag
from runtime.errors import run_cli


def thread_list(text: str) -> list[int]:
    """'1,4' -> [1, 4]; argparse turns the ValueError into a usage error."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected thread counts like 1,4") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: thread counts must be integers >= 1")
    return sorted(set(values))


def main(argv: list[str] | None = None) -> None:
    d = BenchSettings()
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Writes results.json, results.md and results.png to --out. Exit code 0 when "
        "everything was measured; 1 when a measurement failed (the rest is still written); "
        "2 for bad input.",
    )
    p.add_argument(
        "--models", type=str, default=d.models, help="folder with manifest.json (python -m export)"
    )
    p.add_argument(
        "--data",
        type=str,
        default=None,
        help="dataset for accuracy and the test video; None: $SIGNS_DATA, else the data the "
        "export validated on, else ./data",
    )
    p.add_argument("--out", type=str, default=d.out, help="folder for results.json/.md/.png")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a few minutes: fewer iterations, threads 1 only, no training cost",
    )
    p.add_argument(
        "--threads",
        type=thread_list,
        default=None,
        help="comma-separated thread counts; None: 1,<cores>, or 1 with --quick",
    )
    p.add_argument(
        "--iterations",
        type=int,
        default=None,
        help=f"timed calls per row; None: {FULL_ITERATIONS}, or {QUICK_ITERATIONS} with --quick",
    )
    p.add_argument(
        *flag("max-seconds"),
        type=float,
        default=d.max_seconds,
        help="time cap per row, seconds (--quick: at most 3)",
    )
    a = p.parse_args(argv)
    settings = BenchSettings(
        models=a.models,
        data=a.data,
        out=a.out,
        quick=a.quick,
        threads=a.threads,
        iterations=a.iterations,
        max_seconds=a.max_seconds,
    )
    run_cli(lambda: run(settings))


if __name__ == "__main__":
    main()
