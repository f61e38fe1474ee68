"""python -m export: convert the Keras model to TFLite and ONNX and check every file's accuracy."""

from __future__ import annotations

from export import main_export  # imports export.core (TensorFlow) only when called
from export.settings import ExportSettings
from runtime.cli import run_command

EPILOG = (
    "Exit code 0 only when every requested format passed its gate; 1 when one failed; "
    "2 for bad input."
)


def main(argv: list[str] | None = None) -> None:
    run_command(
        ExportSettings, main_export, argv, prog="python -m export", description=__doc__,
        epilog=EPILOG,
    )  # fmt: skip


if __name__ == "__main__":
    main()
