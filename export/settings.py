"""Export settings: one dataclass, the CLI's flags one to one."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class ExportSettings:
    model: str = "artifacts/model.keras"  # the trained Keras model (python -m train's output)
    data: str | None = None  # dataset path; None: $SIGNS_DATA, else ./data
    out: str = "artifacts/export"  # directory for the exported files and manifest.json
    int8: bool = False  # also export the quantized formats (all six)
    formats: tuple[str, ...] = ()  # explicit format names; empty: decided by ``int8``
    max_drop: float = 1.0  # percentage points of test accuracy a file may lose vs Keras
    threads: int | None = None  # validation backends' intra-op threads; None: library default
    # Full-integer calibration: a few hundred training images (never test images), a class-
    # stratified, seeded selection so every run calibrates on the same pictures.
    calibration_images: int = 300
    calibration_seed: int = 0
    opset: int = 17  # ONNX opset for tf2onnx; at least 17 (current onnxruntime and its QDQ tools)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["formats"] = list(self.formats)
        return d
