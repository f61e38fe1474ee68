"""python -m train: fit the seed CNN and write model, metrics and plots."""

from __future__ import annotations

import argparse

from runtime.cli import flag
from runtime.errors import run_cli
from train import run
from train.settings import TrainSettings


def main(argv: list[str] | None = None) -> None:
    d = TrainSettings()
    p = argparse.ArgumentParser(
        prog="python -m train",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--data",
        type=str,
        default=None,
        help="dataset folder or .h5 file (default: $SIGNS_DATA, else ./data)",
    )
    p.add_argument("--out", type=str, default=d.out, help="output directory")
    p.add_argument("--epochs", type=int, default=d.epochs, help="training epochs")
    p.add_argument(
        *flag("batch-size"),
        type=int,
        default=d.batch_size,
        help="mini-batch size (the notebook used 1)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=d.seed,
        help="seed for weights, shuffling, augmentation and the validation split",
    )
    p.add_argument(
        *flag("activation-index"),
        type=int,
        default=d.activation_index,
        help="test image whose activation maps are plotted",
    )
    p.add_argument(
        *flag("no-augment"),
        action="store_true",
        help="train without random flips and shifts (the notebook's plain recipe)",
    )
    p.add_argument(*flag("no-plots"), action="store_true", help="skip the PNG plots")
    p.add_argument(
        "--verbose",
        type=int,
        default=d.verbose,
        choices=(0, 1, 2),
        help="Keras progress: 0 silent, 1 progress bar, 2 one line per epoch",
    )
    p.add_argument(
        *flag("fine-tune"),
        type=str,
        default=None,
        metavar="DIR",
        help="fine-tune --init on the samples in DIR/<label>/ instead of training from scratch "
        "(--out then defaults to artifacts/fine-tuned)",
    )
    p.add_argument("--init", type=str, default=d.init, help="base model for --fine-tune")
    p.add_argument(
        *flag("fine-tune-epochs"), type=int, default=d.fine_tune_epochs, help="fine-tune epochs"
    )
    a = p.parse_args(argv)
    settings = TrainSettings(
        data=a.data, out=a.out, epochs=a.epochs, batch_size=a.batch_size, seed=a.seed,
        activation_index=a.activation_index, augment=not a.no_augment, plots=not a.no_plots,
        verbose=a.verbose, fine_tune=a.fine_tune, init=a.init, fine_tune_epochs=a.fine_tune_epochs,
    )  # fmt: skip
    run_cli(lambda: run(settings))


if __name__ == "__main__":
    main()
