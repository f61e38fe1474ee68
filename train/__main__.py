"""python -m train: fit the seed CNN and write model, metrics and plots."""

from __future__ import annotations

from runtime.cli import run_command
from train import run
from train.settings import TrainSettings


def main(argv: list[str] | None = None) -> None:
    run_command(TrainSettings, run, argv, prog="python -m train", description=__doc__)


if __name__ == "__main__":
    main()
