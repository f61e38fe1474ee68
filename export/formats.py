"""The export formats as data: one table of (name, suffix, converter, tolerance, quantization).

Each converter writes one file to the path it is given (a temporary name that
:func:`runtime.fsutil.atomic_path` renames only on success) and returns notes for the manifest.
TensorFlow, tf2onnx and onnxruntime.quantization are imported inside the converters.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from runtime.manifest import Quantization
from runtime.preprocess import IMAGE_SIZE, to_model_input
from train.tfquiet import filtered_stderr

# Named tolerances on the max absolute difference of the six probabilities vs Keras, over the
# whole test set. fp32 differs from Keras only by kernel summation order (~3e-6 measured);
# fp16 weights are rounded to 11 significant bits (~2e-3 measured).
FP32_TOL = 1e-4
FP16_TOL = 1e-2

ONNX_INPUT = "image"  # input/output tensor names in the ONNX files
ONNX_OUTPUT = "probs"


@dataclass
class ConvertContext:
    """What every converter may use; built once per export run."""

    model: Any  # the loaded keras.Model
    calibration: np.ndarray  # (N, 64, 64, 3) uint8 RGB training images; empty if not needed
    workdir: Path  # scratch space for intermediates, deleted after the run
    opset: int = 17  # ONNX opset
    # uint8 RGB images that calibration never saw (never test images), built only when a format
    # ``chooses``: where it compares its candidate settings with Keras. Empty: the first is kept.
    held_out: np.ndarray = field(default_factory=lambda: np.empty((0, IMAGE_SIZE, IMAGE_SIZE, 3)))

    def calibration_batches(self, batch: int = 1) -> Iterator[np.ndarray]:
        """Calibration images as float32 model inputs, in a fixed order."""
        for i in range(0, len(self.calibration), batch):
            yield to_model_input(self.calibration[i : i + batch])


Converter = Callable[[ConvertContext, Path], dict]


@dataclass(frozen=True)
class ExportFormat:
    name: str  # CLI name, also the file's stem
    suffix: str  # ".tflite" or ".onnx"; picks the runtime backend
    converter: Converter
    tolerance: float | None  # max |prob diff| vs Keras for float formats; None: gated on drop only
    quantization: Quantization  # recorded in the manifest for every reader
    chooses: bool = False  # tries candidate settings, keeps the closest to Keras on held-out images

    @property
    def filename(self) -> str:
        return f"{self.name}{self.suffix}"

    @property
    def quantized(self) -> bool:
        """int8 weights: exported only with --int8."""
        return self.quantization.quantized

    @property
    def calibrated(self) -> bool:
        """Needs training images for its activation ranges."""
        return self.quantization is Quantization.INT8


# --- TFLite ---------------------------------------------------------------------------------


def _tflite(ctx: ConvertContext, dest: Path, configure: Callable[[Any], dict]) -> dict:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(ctx.model)
    notes = configure(converter)
    # from_keras_model saves a temporary SavedModel and prints its signature to stdout; the
    # int8 path warns that the (int8) input has no float statistics, which is expected, and
    # prints its settings ("fully_quantize: 0, ...") from C++ (filtered; anything else shows).
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), filtered_stderr():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        flatbuffer = converter.convert()
    dest.write_bytes(flatbuffer)
    return notes


def tflite_fp32(ctx: ConvertContext, dest: Path) -> dict:
    return _tflite(ctx, dest, lambda c: {})


def tflite_fp16(ctx: ConvertContext, dest: Path) -> dict:
    import tensorflow as tf

    def configure(c) -> dict:
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.target_spec.supported_types = [tf.float16]
        return {"weights": "float16"}

    return _tflite(ctx, dest, configure)


def tflite_dynamic(ctx: ConvertContext, dest: Path) -> dict:
    import tensorflow as tf

    def configure(c) -> dict:
        # Dynamic range: int8 weights, float input/output, activations quantized on the fly.
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        return {"weights": "int8", "activations": "dynamic"}

    return _tflite(ctx, dest, configure)


def tflite_int8(ctx: ConvertContext, dest: Path) -> dict:
    import tensorflow as tf

    def representative() -> Iterator[list[np.ndarray]]:
        for x in ctx.calibration_batches(1):
            yield [x]

    def configure(c) -> dict:
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.representative_dataset = representative
        c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # int8 in and out: the device feeds pixel - 128 and never touches floats before the
        # softmax scores (runtime.backends dequantizes those six numbers).
        c.inference_input_type = tf.int8
        c.inference_output_type = tf.int8
        return {"weights": "int8", "activations": "int8", "calibration": len(ctx.calibration)}

    return _tflite(ctx, dest, configure)


# --- ONNX -----------------------------------------------------------------------------------


def _onnx_proto(ctx: ConvertContext):
    import logging

    import onnx
    import tensorflow as tf
    import tf2onnx

    tf2onnx.logging.set_level(logging.ERROR)
    spec = tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 3], tf.float32, name=ONNX_INPUT)
    model = ctx.model

    # tf2onnx.convert.from_keras fails on Keras 3 models (KeyError 'keras_tensor_N'); a
    # tf.function with an explicit signature converts the same graph. The dict names the output.
    @tf.function(input_signature=[spec])
    def serve(image):
        return {ONNX_OUTPUT: model(image, training=False)}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=[spec], opset=ctx.opset)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def onnx_fp32(ctx: ConvertContext, dest: Path) -> dict:
    dest.write_bytes(_onnx_proto(ctx).SerializeToString())
    return {"opset": ctx.opset}


# onnxruntime static quantization settings. Measured on two trained models (test set, 120 images;
# 48 combinations of pre-processing, per-channel, reduce_range, activation type and calibration
# method): on an AVX-512 VNNI CPU every combination stayed within one test image of Keras. On an
# AVX2 CPU without VNNI, over 21 models and held-out data only (validation + shifted copies,
# other-hands), these settings had the fewest disagreements with Keras of 8 combinations (85 of
# 21 x 480; per-channel 8-bit: 191); the README has the table. Why:
# - reduce_range=True: 7-bit weights. x86 CPUs with AVX2 but without VNNI multiply u8 x s8 with
#   VPMADDUBSW, whose 16-bit pair sums saturate with full-range 8-bit weights; onnxruntime's docs
#   name reduce_range as the fix. That saturation is the likely cause of the collapse from 0.86 to
#   0.69 seen with the default settings on such a CPU. ARM and VNNI CPUs lose nothing measurable.
# - per_channel=True: one weight scale per output channel wins back the precision the 7th bit
#   costs (per-tensor + reduce_range moved the probabilities by up to 0.21 on the first model).
# - quant_pre_process first: shape inference and graph fusions before QDQ insertion.
# - QDQ with int8 activations and weights (S8S8): onnxruntime's recommended first choice.
# - MinMax calibration: Entropy gave the same accuracy and Percentile was no better (on one model
#   it cost a test image); MinMax is the cheapest (a fraction of a second for 300 images).
ONNX_QUANT = {
    "quant_format": "QDQ",
    "per_channel": True,
    "reduce_range": True,
    "activation_type": "QInt8",
    "weight_type": "QInt8",
    "calibrate_method": "MinMax",
    "pre_process": True,
}
# Which setting rounds best differs per model: the best of all 21 above lost to per-tensor or to
# 8-bit weights on some of them, and a model fine-tuned on other-hands failed the gate with it
# (4 test disagreements; per-tensor: 8 held-out disagreements against its 16). So each export
# quantizes with each candidate, in this order, and keeps the one that disagrees least with Keras
# on held-out images (ties: the earlier); never on the test set, which stays the gate's.
ONNX_CANDIDATES: tuple[tuple[str, dict], ...] = (
    ("per-channel 7-bit", {}),
    ("per-tensor 7-bit", {"per_channel": False}),
    ("per-channel 8-bit", {"reduce_range": False}),
)


def onnx_int8(ctx: ConvertContext, dest: Path) -> dict:
    from runtime.backends import load_backend

    fp32 = ctx.workdir / "fp32.onnx"
    fp32.write_bytes(_onnx_proto(ctx).SerializeToString())
    source = fp32
    if ONNX_QUANT["pre_process"]:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        source = ctx.workdir / "fp32-pre.onnx"
        quant_pre_process(str(fp32), str(source))
    candidates, keras_probs = ONNX_CANDIDATES[:1], None
    if len(ctx.held_out):
        candidates = ONNX_CANDIDATES
        keras_probs = ctx.model.predict(to_model_input(ctx.held_out), verbose=0, batch_size=256)
    disagreements = []
    for i, (_, change) in enumerate(candidates):
        path = ctx.workdir / f"int8-{i}.onnx"
        _quantize_onnx(ctx, source, path, {**ONNX_QUANT, **change})
        if keras_probs is not None:
            probs = load_backend(path).predict(ctx.held_out)
            disagreements.append(int(np.sum(probs.argmax(1) != keras_probs.argmax(1))))
    best = int(np.argmin(disagreements)) if disagreements else 0  # argmin: the first of a tie
    dest.write_bytes((ctx.workdir / f"int8-{best}.onnx").read_bytes())
    name, change = candidates[best]
    notes = {**ONNX_QUANT, **change, "opset": ctx.opset, "calibration_images": len(ctx.calibration)}
    if disagreements:
        notes["chosen"] = name
        notes["held_out_images"] = len(ctx.held_out)
        names = [n for n, _ in candidates]
        notes["held_out_disagreements"] = dict(zip(names, disagreements, strict=True))
    return notes


def _quantize_onnx(ctx: ConvertContext, source: Path, dest: Path, settings: dict) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = ctx.calibration_batches(batch=50)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._batches, None)
            return None if x is None else {ONNX_INPUT: x}

    quantize_static(
        str(source),
        str(dest),
        Reader(),
        quant_format=QuantFormat[settings["quant_format"]],
        per_channel=settings["per_channel"],
        reduce_range=settings["reduce_range"],
        activation_type=QuantType[settings["activation_type"]],
        weight_type=QuantType[settings["weight_type"]],
        calibrate_method=CalibrationMethod[settings["calibrate_method"]],
    )


Q = Quantization
FORMATS: tuple[ExportFormat, ...] = (
    ExportFormat("tflite-fp32", ".tflite", tflite_fp32, FP32_TOL, Q.FLOAT32),
    ExportFormat("tflite-fp16", ".tflite", tflite_fp16, FP16_TOL, Q.FLOAT16),
    ExportFormat("tflite-dynamic", ".tflite", tflite_dynamic, None, Q.DYNAMIC),
    ExportFormat("tflite-int8", ".tflite", tflite_int8, None, Q.INT8),
    ExportFormat("onnx-fp32", ".onnx", onnx_fp32, FP32_TOL, Q.FLOAT32),
    ExportFormat("onnx-int8", ".onnx", onnx_int8, None, Q.INT8, chooses=True),
)
