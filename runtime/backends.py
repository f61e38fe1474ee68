"""Inference backends behind one tiny interface; callers never branch on the file format.

``load_backend(path)`` picks by suffix: ``.tflite`` runs on LiteRT (``ai_edge_litert``), falling
back to ``tflite_runtime`` and, only if neither is installed, TensorFlow's ``tf.lite``;
``.onnx`` runs on onnxruntime. Every backend takes 64x64x3 RGB uint8 images (the output of
:func:`runtime.preprocess.preprocess`) and returns float32 class probabilities; input scaling
and (de)quantization come from the model file's own tensor parameters.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from runtime.errors import ModelError
from runtime.preprocess import IMAGE_SIZE, INPUT_SCALE, to_model_input

EXPECTED_INPUT = (IMAGE_SIZE, IMAGE_SIZE, 3)


@dataclass(frozen=True)
class TensorInfo:
    """One model input or output, as recorded in the export manifest."""

    name: str
    shape: tuple[int | str, ...]  # batch dimension may be symbolic ("N") for ONNX
    dtype: str  # numpy dtype name: float32, int8, uint8
    scale: float = 0.0  # quantization scale; 0.0 for float tensors
    zero_point: int = 0  # quantization zero point

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d


class Backend(ABC):
    """A loaded model: ``predict(uint8 images) -> probabilities``."""

    runtime: str  # which library runs it, e.g. "litert 2.3.0"
    input: TensorInfo
    output: TensorInfo

    def __init__(self, path: Path) -> None:
        self.path = path

    @abstractmethod
    def predict(self, images: np.ndarray) -> np.ndarray:
        """(N, 64, 64, 3) uint8 RGB -> (N, 6) float32 probabilities."""

    def predict_one(self, image: np.ndarray) -> np.ndarray:
        """(64, 64, 3) uint8 RGB -> (6,) float32 probabilities; the camera loop's hot path."""
        return self.predict(image[None])[0]


def load_backend(path: str | Path, threads: int | None = None) -> Backend:
    """Load ``path`` with the backend its suffix names.

    Args:
        path: a ``.tflite`` or ``.onnx`` file.
        threads: intra-op threads; None lets the library choose.

    Raises:
        ModelError: missing or unknown file, or one line "not a usable model" for anything the
            library raises while loading the file and running it once (damaged files make
            LiteRT and onnxruntime raise ValueError, RuntimeError, UnicodeDecodeError, ...),
            or a model whose input is not 64x64x3 / output not 6 classes.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    suffix = path.suffix.lower()
    kinds = {".tflite": TFLiteBackend, ".onnx": OnnxBackend}
    if suffix not in kinds:
        raise ModelError(f"{path}: unknown model type {suffix!r} (expected .tflite or .onnx)")
    cls = kinds[suffix]
    lib = cls.library()  # outside the try: a missing library is not a damaged file
    try:
        backend: Backend = cls(path, threads, lib)
        _check_shapes(backend)
        # One inference on a blank image: some damage only shows when the graph runs.
        backend.predict_one(np.zeros(EXPECTED_INPUT, np.uint8))
    except ModelError:
        raise
    except Exception as exc:  # any library error means the file is unusable
        text = str(exc).strip()
        first = text.splitlines()[0][:200] if text else "no message"
        raise ModelError(
            f"{path}: not a usable {cls.kind} model ({type(exc).__name__}: {first})"
        ) from None
    return backend


def _check_shapes(b: Backend) -> None:
    in_shape = tuple(b.input.shape[1:])
    if len(b.input.shape) != 4 or in_shape != EXPECTED_INPUT:
        raise ModelError(
            f"{b.path}: model input shape {list(b.input.shape)}, expected [N, 64, 64, 3]"
        )
    if len(b.output.shape) != 2 or b.output.shape[1] != 6:
        raise ModelError(f"{b.path}: model output shape {list(b.output.shape)}, expected [N, 6]")


# --- TFLite / LiteRT ------------------------------------------------------------------------


def tflite_interpreter_class() -> tuple[type, str]:
    """The best available TFLite interpreter class and a label naming it."""
    for module, label in (
        ("ai_edge_litert.interpreter", "ai-edge-litert"),
        ("tflite_runtime.interpreter", "tflite-runtime"),
    ):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        return mod.Interpreter, f"{label} {_version(label)}"
    try:  # last resort only: a full TensorFlow install (never on the device)
        tf = importlib.import_module("tensorflow")
    except ImportError:
        raise ModelError(
            "no TFLite runtime installed: pip install ai-edge-litert (or tflite-runtime)"
        ) from None
    return tf.lite.Interpreter, f"tf.lite {tf.__version__}"


def _version(dist: str) -> str:
    return installed_versions([dist]).get(dist, "?")


def installed_versions(dists: Iterable[str]) -> dict[str, str]:
    """Python's and each installed distribution's version, from package metadata (nothing is
    imported); a distribution that is not installed is left out."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in dists:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out


def input_lut(info: TensorInfo) -> np.ndarray | None:
    """The exact uint8 pixel -> quantized input table for an integer input, else None.

    The quantized value of pixel p is round(p * INPUT_SCALE / scale) + zero_point, clipped.
    """
    if info.dtype not in ("int8", "uint8") or info.scale == 0.0:
        return None
    pixels = np.arange(256, dtype=np.float64)
    q = np.round(pixels * float(INPUT_SCALE) / info.scale) + info.zero_point
    lim = np.iinfo(info.dtype)
    return np.clip(q, lim.min, lim.max).astype(info.dtype)


def uint8_shortcut(info: TensorInfo) -> bool:
    """True when the int8 input is exactly ``pixel - 128`` (scale 1/255, zero point -128).

    Then quantizing is a bit flip: ``(pixel ^ 0x80)`` reinterpreted as int8.
    """
    lut = input_lut(info)
    return (
        lut is not None
        and info.dtype == "int8"
        and np.array_equal(lut.astype(np.int16), np.arange(256, dtype=np.int16) - 128)
    )


class TFLiteBackend(Backend):
    kind = "TFLite"

    @staticmethod
    def library() -> tuple[type, str]:
        return tflite_interpreter_class()

    def __init__(
        self, path: Path, threads: int | None = None, lib: tuple[type, str] | None = None
    ) -> None:
        super().__init__(path)
        interpreter_cls, self.runtime = lib or self.library()
        self._interp = interpreter_cls(model_path=str(path), num_threads=threads)
        self._interp.allocate_tensors()
        ins, outs = self._interp.get_input_details(), self._interp.get_output_details()
        if len(ins) != 1 or len(outs) != 1:
            raise ModelError(f"{path}: expected one input and one output tensor")
        self.input, self.output = _tflite_info(ins[0]), _tflite_info(outs[0])
        self._in_idx, self._out_idx = ins[0]["index"], outs[0]["index"]
        self._shortcut = uint8_shortcut(self.input)
        self._lut = input_lut(self.input)
        self._out_dtype = np.dtype(self.output.dtype)
        self._batch = 1

    def _quantize(self, images: np.ndarray) -> np.ndarray:
        if self._shortcut:
            return np.bitwise_xor(images, np.uint8(0x80)).view(np.int8)
        if self._lut is not None:
            return self._lut[images]
        return to_model_input(images)

    def _dequantize(self, q: np.ndarray) -> np.ndarray:
        if self._out_dtype == np.float32:
            return q
        return (q.astype(np.float32) - self.output.zero_point) * np.float32(self.output.scale)

    def predict_one(self, image: np.ndarray) -> np.ndarray:
        if self._batch != 1:
            self._resize(1)
        self._interp.set_tensor(self._in_idx, self._quantize(image)[None])
        self._interp.invoke()
        return self._dequantize(self._interp.get_tensor(self._out_idx)[0])

    def predict(self, images: np.ndarray) -> np.ndarray:
        if len(images) != self._batch:
            self._resize(len(images))
        self._interp.set_tensor(self._in_idx, self._quantize(images))
        self._interp.invoke()
        return self._dequantize(self._interp.get_tensor(self._out_idx))

    def _resize(self, n: int) -> None:
        self._interp.resize_tensor_input(self._in_idx, [n, *EXPECTED_INPUT])
        self._interp.allocate_tensors()
        self._batch = n


def _tflite_info(d: dict) -> TensorInfo:
    scale, zero_point = d.get("quantization", (0.0, 0))
    return TensorInfo(
        name=d["name"],
        shape=tuple(int(v) for v in d["shape"]),
        dtype=np.dtype(d["dtype"]).name,
        scale=float(scale),
        zero_point=int(zero_point),
    )


# --- ONNX Runtime ---------------------------------------------------------------------------

_ONNX_TYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(int8)": "int8"}


class OnnxBackend(Backend):
    kind = "ONNX"

    @staticmethod
    def library():
        import onnxruntime

        return onnxruntime

    def __init__(self, path: Path, threads: int | None = None, lib=None) -> None:
        super().__init__(path)
        ort = lib or self.library()
        self.runtime = f"onnxruntime {ort.__version__}"
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        self._sess = ort.InferenceSession(
            str(path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        ins, outs = self._sess.get_inputs(), self._sess.get_outputs()
        if len(ins) != 1 or len(outs) != 1:
            raise ModelError(f"{path}: expected one input and one output tensor")
        self.input, self.output = _onnx_info(ins[0]), _onnx_info(outs[0])
        self._in_name, self._out_name = ins[0].name, outs[0].name
        self._float_in = self.input.dtype == "float32"

    def predict(self, images: np.ndarray) -> np.ndarray:
        feed = to_model_input(images) if self._float_in else images
        return self._sess.run([self._out_name], {self._in_name: feed})[0]


def _onnx_info(arg) -> TensorInfo:
    shape = tuple(d if isinstance(d, int) else "N" for d in arg.shape)
    return TensorInfo(arg.name, shape, _ONNX_TYPES.get(arg.type, arg.type))
