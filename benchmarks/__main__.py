"""python -m benchmarks: size, accuracy, latency and memory of every exported format."""

from __future__ import annotations

from benchmarks import BenchSettings, run
from runtime.cli import run_command

EPILOG = (
    "Writes results.json, results.md and results.png to --out. Exit code 0 when everything was "
    "measured; 1 when a measurement failed (the rest is still written); 2 for bad input."
)


def main(argv: list[str] | None = None) -> None:
    run_command(
        BenchSettings, run, argv, prog="python -m benchmarks", description=__doc__, epilog=EPILOG
    )


if __name__ == "__main__":
    main()
