"""Damaged model files: every one is rejected in one line or runs; never a traceback.

A tiny model with the real input and output (64x64x3 -> 6) is made in the test: an int8 TFLite
file by the TensorFlow converter, a float ONNX file by ``onnx.helper``. Seeded copies with random
bytes changed, or cut short, are then loaded and run by the runtime's backends in a separate
process, as ``runtime.evaluate`` and the camera would: a crash of the process (a signal) fails
the test too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import ROOT

COPIES = 200  # per format; seeded, so a failure reproduces

# Loads each file like a command does: SignsError is the clean one-line rejection; anything
# else is printed as a traceback. One JSON line per file, flushed, so a crash names its file.
DRIVER = """
import json, sys, traceback
import numpy as np
from runtime.backends import load_backend
from runtime.errors import SignsError
for path in sys.argv[1:]:
    try:
        b = load_backend(path)
        b.predict(np.zeros((3, 64, 64, 3), np.uint8))
        b.predict_one(np.full((64, 64, 3), 200, np.uint8))
        verdict = "ran"
    except SignsError as exc:
        verdict = "rejected: " + str(exc)
    except Exception:
        verdict = "traceback: " + traceback.format_exc()
    print(json.dumps({"path": path, "verdict": verdict}), flush=True)
"""


def tiny_tflite_int8(dest: Path) -> Path:
    from train.tfquiet import import_tensorflow

    tf = import_tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64, 64, 3)),
            keras.layers.Conv2D(4, 3, strides=4, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(6, activation="softmax"),
        ]
    )
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(8):
            yield [rng.random((1, 64, 64, 3), dtype=np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    dest.write_bytes(conv.convert())
    return dest


def tiny_onnx(dest: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(3, 6)).astype(np.float32), "w")
    axes = numpy_helper.from_array(np.array([1, 2], np.int64), "axes")
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["image", "axes"], ["pooled"], keepdims=0),
            helper.make_node("MatMul", ["pooled", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        ],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 64, 64, 3])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 6])],
        initializer=[w, axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    dest.write_bytes(model.SerializeToString())
    return dest


def _text_bytes(data: np.ndarray) -> np.ndarray:
    """Offsets inside runs of 4+ printable ASCII bytes: tensor and operator names."""
    printable = (data >= 0x20) & (data < 0x7F)
    run = np.zeros(len(data), int)
    for i in np.flatnonzero(printable):
        run[i] = run[i - 1] + 1 if i else 1
    ends = np.flatnonzero(run >= 4)
    return np.unique(np.concatenate([ends - k for k in range(4)]))


def damaged_copies(good: Path, out: Path, count: int, seed: int) -> list[Path]:
    """``count`` copies of ``good``: random bytes changed, names made invalid UTF-8, or cut short.

    Names matter: LiteRT decodes tensor names as UTF-8 after loading, and one such byte gave a
    traceback (UnicodeDecodeError) before load_backend turned every library error into one line.
    """
    rng = np.random.default_rng(seed)
    data = np.frombuffer(good.read_bytes(), np.uint8)
    text = _text_bytes(data)
    out.mkdir()
    files = []
    for i in range(count):
        copy = data.copy()
        if i % 8 == 7:
            copy = copy[: rng.integers(1, len(copy))]
        elif i % 4 == 1:
            where = rng.choice(text, rng.integers(1, 4))
            copy[where] = rng.integers(0x80, 0x100, len(where), dtype=np.uint8)
        else:
            where = rng.integers(0, len(copy), rng.integers(1, 17))
            copy[where] = rng.integers(0, 256, len(where), dtype=np.uint8)
        path = out / f"{i:03d}{good.suffix}"
        path.write_bytes(copy.tobytes())
        files.append(path)
    return files


def _run_driver(files: list[Path]) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, *map(str, files)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    done = len(results)
    assert proc.returncode == 0, (
        f"the process died (exit {proc.returncode}) on {files[done] if done < len(files) else '?'}"
        f": {proc.stderr[-2000:]}"
    )
    assert done == len(files)
    return results


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tflite-int8", "onnx"])
def test_damaged_model_files_never_give_a_traceback(kind: str, tmp_path: Path) -> None:
    good = (tiny_tflite_int8 if kind == "tflite-int8" else tiny_onnx)(tmp_path / f"good.{kind}")
    good = good.rename(good.with_suffix(".tflite" if kind == "tflite-int8" else ".onnx"))
    (clean,) = _run_driver([good])
    assert clean["verdict"] == "ran", clean  # the undamaged file works: the test can tell

    results = _run_driver(damaged_copies(good, tmp_path / "damaged", COPIES, seed=9))
    tracebacks = [r for r in results if r["verdict"].startswith("traceback")]
    assert not tracebacks, tracebacks[0]["verdict"]
    rejected = [r["verdict"] for r in results if r["verdict"].startswith("rejected")]
    for line in rejected:
        assert "\n" not in line and (
            "not a usable" in line or "model input shape" in line or "output" in line
        ), line
    # Both outcomes occur, so the test exercises the rejection path, not only lucky bytes.
    assert rejected and len(rejected) < len(results), (len(rejected), len(results))
