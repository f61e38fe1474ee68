"""python -m train: fit the seed CNN and write model, metrics and plots."""

from __future__ import annotations

import argparse

from runtime.cli import flag
from runtime.errors import run_cli
from train import run
from train.settings import TrainSettings


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r}: expected true or false")


_RECIPE_FLAGS = (
    ("recipe", str, "robust (default), flips (the previous default) or notebook (the seed)"),
    ("learning-rate", float, "Adam's (peak) learning rate; None: the recipe's"),
    ("schedule", str, "constant or cosine; None: the recipe's"),
    ("flip", _bool, "random horizontal flips (true/false); None: the recipe's"),
    ("rotation", float, "largest random rotation, degrees; None: the recipe's"),
    ("zoom", float, "random zoom up to 1 + ZOOM, in or out; None: the recipe's"),
    ("shift", float, "largest random shift, fraction of the side; None: the recipe's"),
    ("photometric", float, "colour/light/blur/noise jitter strength; None: the recipe's"),
    ("background-p", float, "share of hands put on a new background; None: the recipe's"),
    ("outliers", int, "hand-free images per batch, uniform target; None: the recipe's"),
    ("label-smoothing", float, "cross-entropy label smoothing; None: the recipe's"),
    ("val-shifts", int, "shifted copies of each validation image; None: the recipe's"),
)


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
    p.add_argument("--epochs", type=int, default=None, help="training epochs (None: recipe's)")
    p.add_argument(
        *flag("batch-size"),
        type=int,
        default=None,
        help="mini-batch size, hand-free images included (the notebook used 1)",
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
    # The recipe's knobs, one flag per TrainSettings field (None: the recipe's value).
    for name, kind, text in _RECIPE_FLAGS:
        p.add_argument(*flag(name), type=kind, default=None, help=text)
    p.add_argument(*flag("no-plots"), action="store_true", help="skip the PNG plots")
    p.add_argument(
        "--verbose",
        type=int,
        default=d.verbose,
        choices=(0, 1, 2),
        help="Keras progress: 0 silent, 1 progress bar, 2 one line per epoch",
    )
    a = p.parse_args(argv)
    recipe = {n.replace("-", "_"): getattr(a, n.replace("-", "_")) for n, _, _ in _RECIPE_FLAGS}
    settings = TrainSettings(
        data=a.data, out=a.out, epochs=a.epochs, batch_size=a.batch_size, seed=a.seed,
        activation_index=a.activation_index, plots=not a.no_plots, verbose=a.verbose,
        **{k: v for k, v in recipe.items() if v is not None},
    )  # fmt: skip
    run_cli(lambda: run(settings))


if __name__ == "__main__":
    main()
