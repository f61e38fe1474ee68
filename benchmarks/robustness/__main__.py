"""python -m benchmarks.robustness: accuracy under shifts, on other hands, and "no sign" on empty
scenes, for the Keras model and every exported file."""

from __future__ import annotations

import argparse
import dataclasses

from benchmarks.robustness import RobustnessSettings, run
from runtime.errors import run_cli

HELP = {
    "models": "folder with manifest.json (python -m export), or one .keras/.tflite/.onnx file",
    "data": "SIGNS data (its test split is shifted); default $SIGNS_DATA, else ./data",
    "other-hands": "folder of other people's hands (<label>/<image>); default "
    "$SIGNS_OTHER_HANDS, else ../shared/other-hands if it exists",
    "out": "folder for results.json, results.md, results.png",
    "seed": "seed of every shift and empty scene (same seed: same pixels for every model)",
    "min-confidence": "top probability below which the runtime shows 'no sign'",
    "empty-per-kind": "hand-free scenes per kind (photo, wall, texture, noise)",
    "keras": "also score the manifest's Keras model (true/false)",
}


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r}: expected true or false")


def main(argv: list[str] | None = None) -> None:
    d = RobustnessSettings()
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.robustness",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    # One flag per settings field, kebab-case.
    for f in dataclasses.fields(RobustnessSettings):
        name = f.name.replace("_", "-")
        default = getattr(d, f.name)
        kind = {"int": int, "float": float, "bool": _bool}.get(str(f.type), str)
        p.add_argument(f"--{name}", type=kind, default=default, help=HELP[name])
    a = p.parse_args(argv)
    settings = RobustnessSettings(**{f.name: getattr(a, f.name) for f in dataclasses.fields(d)})
    run_cli(lambda: run(settings))


if __name__ == "__main__":
    main()
