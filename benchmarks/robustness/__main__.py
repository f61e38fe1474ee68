"""python -m benchmarks.robustness: accuracy under shifts, on other hands, and "no sign" on empty
scenes, for the Keras model and every exported file."""

from __future__ import annotations

from benchmarks.robustness import RobustnessSettings, run
from runtime.cli import run_command


def main(argv: list[str] | None = None) -> None:
    run_command(
        RobustnessSettings, run, argv, prog="python -m benchmarks.robustness", description=__doc__
    )


if __name__ == "__main__":
    main()
