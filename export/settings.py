"""Export settings: one dataclass, the CLI's flags one to one."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from export.formats import FORMATS
from runtime.cli import opt
from runtime.errors import SettingError
from runtime.manifest import DEFAULT_EXPORT_DIR


@dataclass
class ExportSettings:
    model: str = opt(
        "artifacts/model.keras", metavar="FILE", help="the trained Keras model (python -m train)"
    )
    data: str | None = opt(
        None, help="dataset folder or .h5 file; when omitted, $SIGNS_DATA, else ./data"
    )
    out: str = opt(
        str(DEFAULT_EXPORT_DIR), help="directory for the exported files and manifest.json"
    )
    int8: bool = opt(
        False, help="also export the quantized formats (tflite-dynamic, tflite-int8, onnx-int8)"
    )
    # No choices=: argparse would print a usage block; export names the valid formats in one
    # error line, for the API as well. Commas also separate names (normalised below).
    formats: tuple[str, ...] = opt(
        (),
        metavar="FORMAT",
        help=f"formats to export, overriding --int8 (valid: {', '.join(f.name for f in FORMATS)})",
    )
    max_drop: float = opt(
        1.0, help="largest test accuracy loss vs Keras a file may have, in percentage points"
    )
    threads: int | None = opt(
        None, help="threads for the validation backends; when omitted, the library's choice"
    )
    verbose: bool = opt(False, help="show TensorFlow's start-up log (filtered by default)")
    # Full-integer calibration: a few hundred training images (never test images), a class-
    # stratified, seeded selection so every run calibrates on the same pictures.
    calibration_images: int = 300
    calibration_seed: int = 0
    opset: int = 17  # ONNX opset for tf2onnx; at least 17 (current onnxruntime and its QDQ tools)

    def __post_init__(self) -> None:
        self.formats = tuple(n for arg in self.formats for n in arg.split(",") if n)
        if self.max_drop < 0:
            raise SettingError("max_drop", self.max_drop, "must be >= 0 percentage points")
        if self.threads is not None and self.threads < 1:
            raise SettingError("threads", self.threads, "must be at least 1")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["formats"] = list(self.formats)
        return d
