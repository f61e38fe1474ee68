"""python -m export: convert the Keras model to TFLite and ONNX and check every file's accuracy."""

from __future__ import annotations

import argparse

from export.formats import FORMATS
from export.settings import ExportSettings
from runtime.cli import flag
from runtime.errors import run_cli


def main(argv: list[str] | None = None) -> None:
    d = ExportSettings()
    p = argparse.ArgumentParser(
        prog="python -m export",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Exit code 0 only when every requested format passed its gate; 1 when one "
        "failed; 2 for bad input.",
    )
    p.add_argument(
        "--int8",
        action="store_true",
        help="also export the quantized formats (tflite-dynamic, tflite-int8, onnx-int8)",
    )
    p.add_argument("--model", type=str, default=d.model, help="trained Keras model")
    p.add_argument(
        "--data",
        type=str,
        default=None,
        help="dataset folder or .h5 file; None: $SIGNS_DATA, else ./data",
    )
    p.add_argument("--out", type=str, default=d.out, help="output directory")
    p.add_argument(
        *flag("max-drop"),
        type=float,
        default=d.max_drop,
        help="largest test accuracy loss vs Keras a file may have, in percentage points",
    )
    # No choices=: argparse would print a usage block; main_export names the valid formats in
    # one error line, for the API as well. Commas also separate names.
    p.add_argument(
        "--formats",
        type=str,
        nargs="+",
        default=None,
        metavar="FORMAT",
        help=f"formats to export, overriding --int8 (valid: {', '.join(f.name for f in FORMATS)})",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for the validation backends; None: the library's choice",
    )
    a = p.parse_args(argv)
    formats = tuple(n for arg in a.formats or () for n in arg.split(",") if n)
    settings = ExportSettings(
        model=a.model,
        data=a.data,
        out=a.out,
        int8=a.int8,
        formats=formats,
        max_drop=a.max_drop,
        threads=a.threads,
    )

    def export() -> None:
        from export.core import main_export  # after argument parsing: --help stays fast

        main_export(settings)

    run_cli(export)


if __name__ == "__main__":
    main()
