"""`python -m export`: real conversions, real runtimes, and a gate that really fails."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from export import ExportSettings, main_export
from export.core import MANIFEST, ExportFailed
from export.formats import FORMATS, ExportFormat, onnx_fp32, tflite_fp32
from runtime.backends import load_backend, uint8_shortcut
from runtime.dataset import load_dataset
from runtime.manifest import SCHEMA_VERSION, Quantization, read_manifest
from runtime.modelinfo import describe_model
from runtime.preprocess import PreprocessConfig, to_model_input
from tests.helpers import assert_user_error, run_module

ALL = [f.name for f in FORMATS]
BY_NAME = {f.name: f for f in FORMATS}


def _manifest(out: Path) -> dict:
    return json.loads((out / MANIFEST).read_text())


@pytest.fixture(scope="module")
def keras_test(trained_dir: Path, signs_data: Path):
    """The test split and Keras's own probabilities on it (the reference every file must meet)."""
    import keras

    test = load_dataset(signs_data).test
    model = keras.models.load_model(trained_dir / "model.keras")
    return test, model.predict(to_model_input(test.x), verbose=0)


def test_manifest_lists_six_passed_files_with_matching_hashes(exported_dir: Path, trained_dir):
    m = _manifest(exported_dir)
    assert [e["format"] for e in m["models"]] == ALL
    bad = {e["format"]: e["reason"] for e in m["models"] if e["status"] != "passed"}
    assert not bad, bad
    for e in m["models"]:
        path = exported_dir / e["path"]
        assert not Path(e["path"]).is_absolute() and path.parent == exported_dir
        data = path.read_bytes()
        assert e["size_bytes"] == len(data)
        assert e["sha256"] == hashlib.sha256(data).hexdigest()
        assert {"name", "shape", "dtype", "scale", "zero_point"} <= e["input"].keys()
        assert {"name", "shape", "dtype", "scale", "zero_point"} <= e["output"].keys()
        assert 0.0 <= e["accuracy"] <= 1.0 and 0.0 <= e["agreement"] <= 1.0
        assert e["quantization"] == BY_NAME[e["format"]].quantization.value
        assert e["drop"] == pytest.approx((m["keras"]["accuracy"] - e["accuracy"]) * 100, abs=1e-3)
    assert (exported_dir / m["keras"]["path"]).resolve() == (trained_dir / "model.keras").resolve()
    metrics = json.loads((trained_dir / "metrics.json").read_text())
    assert m["keras"]["accuracy"] == pytest.approx(metrics["test"]["accuracy"], abs=1e-6)
    assert m["keras"]["mirror_average"] is True  # the default recipe's model: two passes
    # The "no sign" threshold python -m train calibrated travels with the model.
    chosen = metrics["min_confidence"]["chosen"]
    assert m["no_sign"]["calibrated"] and m["no_sign"]["min_confidence"] == chosen["min_confidence"]
    assert m["no_sign"]["empty_no_sign"] == chosen["empty_no_sign"]
    assert m["no_sign"]["hands_correct_shown"] == chosen["hands_correct_shown"]
    assert read_manifest(exported_dir / MANIFEST).no_sign.min_confidence == chosen["min_confidence"]
    assert m["labels"] == ["0", "1", "2", "3", "4", "5"]
    assert m["schema_version"] == SCHEMA_VERSION and m["default_model"] == "tflite-int8.tflite"
    assert m["preprocessing"] == PreprocessConfig().to_dict()
    assert m["calibration"]["split"] == "train" and 100 <= m["calibration"]["images"] <= 1000
    assert {"tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert"} <= set(
        m["versions"]
    )
    # The runtime reads it: each file is found, verified by sha256 and trusted without warnings.
    for f in FORMATS:
        info = describe_model(exported_dir / f.filename)
        assert info.entry is not None and info.entry.passed and not info.warnings, info
    # No temporary or stray files: exactly the six models and the manifest.
    assert sorted(p.name for p in exported_dir.iterdir()) == sorted(
        [MANIFEST] + [f.filename for f in FORMATS]
    )


@pytest.mark.parametrize("name", ALL)
def test_each_file_matches_keras_in_its_runtime_backend(name, exported_dir: Path, keras_test):
    """Recomputed here, independently of the exporter's own validation."""
    test, keras_probs = keras_test
    fmt = BY_NAME[name]
    entry = next(e for e in _manifest(exported_dir)["models"] if e["format"] == name)
    probs = load_backend(exported_dir / fmt.filename).predict(test.x)
    assert probs.shape == (len(test), 6)
    keras_acc = np.mean(keras_probs.argmax(1) == test.y)
    acc = np.mean(probs.argmax(1) == test.y)
    assert entry["accuracy"] == pytest.approx(acc, abs=1e-6)
    assert (keras_acc - acc) * 100 <= 1.0 + 1e-9, (name, acc, keras_acc)
    if fmt.tolerance is not None:
        assert np.abs(probs - keras_probs).max() <= fmt.tolerance
        assert np.array_equal(probs.argmax(1), keras_probs.argmax(1))
    else:
        assert np.mean(probs.argmax(1) == keras_probs.argmax(1)) >= 0.97


def test_int8_tflite_is_small_takes_pixel_minus_128_and_outputs_int8(exported_dir: Path):
    entry = next(e for e in _manifest(exported_dir)["models"] if e["format"] == "tflite-int8")
    assert entry["size_bytes"] <= 100_000  # the target; fp32 is ~330 KB
    backend = load_backend(exported_dir / "tflite-int8.tflite")
    assert backend.input.dtype == "int8" and backend.output.dtype == "int8"
    assert backend.input.scale == pytest.approx(1 / 255) and backend.input.zero_point == -128
    assert entry["input"] == backend.input.to_dict()
    assert entry["uint8_shortcut"] is uint8_shortcut(backend.input) is True


def test_onnx_int8_keeps_the_candidate_closest_to_keras_on_held_out_images(
    exported_dir: Path, trained_dir: Path, signs_data: Path
):
    """Each candidate setting was quantized and scored on training images calibration never saw
    (and a shifted copy of each); the file is the one with the fewest disagreements with Keras."""
    import keras

    from export.core import _splits
    from export.formats import ONNX_CANDIDATES

    notes = next(e for e in _manifest(exported_dir)["models"] if e["format"] == "onnx-int8")
    notes = notes["conversion"]
    counts = notes["held_out_disagreements"]
    assert list(counts) == [name for name, _ in ONNX_CANDIDATES]
    assert notes["chosen"] == min(counts, key=counts.get)  # min keeps the first of a tie
    settings = ExportSettings(model=str(trained_dir / "model.keras"), data=str(signs_data))
    ds = load_dataset(signs_data)
    _, calibration, held_out = _splits(ds, [BY_NAME["onnx-int8"]], settings)
    assert calibration is not None and len(held_out) % 2 == 0
    originals = held_out[: len(held_out) // 2]  # then one shifted copy of each
    assert len(originals) >= len(ds.train) - len(calibration) - 50  # SIGNS repeats a few photos
    assert not set(map(bytes, calibration.x)) & set(map(bytes, originals))  # none calibrated on
    assert notes["held_out_images"] == len(held_out)
    model = keras.models.load_model(trained_dir / "model.keras", compile=False)
    keras_top1 = model.predict(to_model_input(held_out), verbose=0).argmax(1)
    probs = load_backend(exported_dir / "onnx-int8.onnx").predict(held_out)
    assert int(np.sum(probs.argmax(1) != keras_top1)) == counts[notes["chosen"]]


def _skewed_data(tmp: Path, signs_data: Path) -> Path:
    """The real test set, but a 'training' set of black images: int8 calibrated on darkness."""
    root = tmp / "skewed"
    (root / "train_signs").mkdir(parents=True)
    (root / "test_signs").symlink_to(signs_data / "test_signs")
    for label in range(6):
        cv2.imwrite(str(root / "train_signs" / f"{label}_black.jpg"), np.zeros((64, 64, 3)))
    return root


def test_gate_fails_int8_calibrated_on_black_images(trained_dir, signs_data, tmp_path):
    out = tmp_path / "out"
    proc = run_module(
        "export",
        "--formats",
        "tflite-fp32",
        "tflite-int8",
        "--model",
        str(trained_dir / "model.keras"),
        "--data",
        str(_skewed_data(tmp_path, signs_data)),
        "--out",
        str(out),
    )
    line = assert_user_error(proc, "tflite-int8", "accuracy drop", code=1)
    failures, default = line.split("; ")
    assert "tflite-fp32" not in failures  # only the failure is named as one
    assert default == "the runtime's default is tflite-fp32.tflite, which passed"
    assert "failed" in proc.stdout and "format" in proc.stdout  # the table was printed
    status = {e["format"]: e for e in _manifest(out)["models"]}
    assert status["tflite-fp32"]["status"] == "passed"
    assert status["tflite-int8"]["status"] == "failed"
    assert status["tflite-int8"]["drop"] > 10
    # The runtime warns whoever runs the failed file.
    warnings = describe_model(out / "tflite-int8.tflite").warnings
    assert any("'failed'" in w for w in warnings), warnings


def test_finetune_bench_reports_a_fold_whose_file_fails_the_gate(
    trained_dir, signs_data, tmp_path, capsys
):
    """benchmarks.finetune scores every fold's int8 file; one that fails the gate is a figure
    with a note, not the end of the benchmark (it stopped there before)."""
    from benchmarks.finetune import FinetuneBenchSettings, _export

    settings = FinetuneBenchSettings(data=str(_skewed_data(tmp_path, signs_data)))
    accuracy = _export(trained_dir / "model.keras", tmp_path / "out", settings)
    assert "did not pass: tflite-int8" in capsys.readouterr().out
    entry = _manifest(tmp_path / "out")["models"][0]
    assert entry["status"] == "failed" and entry["accuracy"] == pytest.approx(accuracy)


def test_tolerance_gate_and_converter_crash(trained_dir, signs_data, tmp_path, capsys):
    """fp16 held to the fp32 tolerance fails; a converter that crashes is export-failed, and
    the formats after it still run."""

    def onnx_opset_99(ctx, dest):
        return onnx_fp32(replace(ctx, opset=99), dest)  # tf2onnx: "Opset 99 is not supported"

    table = (
        replace(
            BY_NAME["tflite-fp16"], name="fp16-strict", tolerance=BY_NAME["tflite-fp32"].tolerance
        ),
        ExportFormat("onnx-opset99", ".onnx", onnx_opset_99, 1e-4, Quantization.FLOAT32),
        BY_NAME["tflite-fp32"],
    )
    out = tmp_path / "out"
    settings = ExportSettings(
        model=str(trained_dir / "model.keras"),
        data=str(signs_data),
        out=str(out),
        formats=tuple(f.name for f in table),
    )
    with pytest.raises(ExportFailed) as info:
        main_export(settings, table=table)
    report = info.value.report
    status = {r.format: r for r in report.results}
    assert status["fp16-strict"].status == "failed"
    assert "max prob diff" in status["fp16-strict"].reason
    assert status["fp16-strict"].drop <= 1.0  # it failed on tolerance alone
    assert status["onnx-opset99"].status == "export-failed"
    assert "Opset 99" in status["onnx-opset99"].reason
    assert status["tflite-fp32"].status == "passed"
    assert "fp16-strict" in str(info.value) and "onnx-opset99" in str(info.value)
    assert str(info.value).endswith("the runtime's default is tflite-fp32.tflite, which passed")
    assert not (out / "onnx-opset99.onnx").exists()
    assert [e["status"] for e in _manifest(out)["models"]] == ["failed", "export-failed", "passed"]
    assert read_manifest(out / MANIFEST).models[1].status == "export-failed"  # runtime-readable
    crashed = _manifest(out)["models"][1]
    assert crashed["path"] == "onnx-opset99.onnx" and crashed["sha256"] is None
    # The summary counts the files written, not the formats requested.
    assert f"wrote {out}/ (2 model files + manifest.json)" in capsys.readouterr().out


def test_interrupted_export_leaves_no_complete_looking_file(trained_dir, signs_data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST).write_text('{"models": []}')  # an earlier run's output
    (out / "tflite-fp32.tflite").write_bytes(b"old")

    def interrupted(ctx, dest):
        tflite_fp32(ctx, dest)  # the whole file is written to the temporary name...
        raise KeyboardInterrupt  # ...and Ctrl-C arrives before the rename

    table = (replace(BY_NAME["tflite-fp32"], converter=interrupted),)
    settings = ExportSettings(
        model=str(trained_dir / "model.keras"), data=str(signs_data), out=str(out)
    )
    with pytest.raises(KeyboardInterrupt):
        main_export(settings, table=table)
    # Neither the stale file, nor the temporary one, nor a manifest vouching for either.
    assert list(out.iterdir()) == []


# --- bad input: one line, exit code 2, nothing written ----------------------------------------


def _wrong_shape_model(path: Path) -> Path:
    import keras

    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Dense(6, activation="softmax")(keras.layers.Flatten()(inputs))
    keras.Model(inputs, outputs).save(path)
    return path


def _only_test_data(tmp: Path, signs_data: Path) -> Path:
    root = tmp / "only-test"
    root.mkdir()
    (root / "test_signs").symlink_to(signs_data / "test_signs")
    return root


@pytest.mark.parametrize(
    "case",
    [
        "missing-model",
        pytest.param("not-keras", marks=pytest.mark.slow),  # loads Keras: ~10-40 s
        pytest.param("wrong-shape", marks=pytest.mark.slow),  # builds and saves a Keras model
        "no-data",
        "no-calibration-data",
        "out-not-writable",
        "unknown-format",
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(case, signs_data: Path, tmp_path: Path):
    # Checks before the Keras load only need a file called *.keras; the rest need real models.
    placeholder = tmp_path / "model.keras"
    placeholder.write_text("not a model")
    out = tmp_path / "out"
    model, data, extra = placeholder, signs_data, []
    if case == "missing-model":
        model = tmp_path / "nope.keras"
        needles = ["nope.keras", "not found"]
    elif case == "not-keras":
        needles = ["model.keras", "not a readable Keras model"]
    elif case == "wrong-shape":
        model = _wrong_shape_model(tmp_path / "small.keras")
        needles = ["small.keras", "input shape", "64, 64, 3"]
    elif case == "no-data":
        data = tmp_path / "empty"
        data.mkdir()
        needles = ["empty", "no SIGNS data"]
    elif case == "no-calibration-data":
        data, extra = _only_test_data(tmp_path, signs_data), ["--int8"]
        needles = ["only-test", "no training images", "calibration"]
    elif case == "out-not-writable":
        blocker = tmp_path / "a-file"
        blocker.write_text("")
        out = blocker / "out"
        needles = [str(out), "is a file"]
    else:
        extra = ["--formats", "tflite-fp32,tflite-int4"]
        needles = ["tflite-int4", "valid formats: tflite-fp32, tflite-fp16"]
    proc = run_module(
        "export", "--model", str(model), "--data", str(data), "--out", str(out), *extra
    )
    assert_user_error(proc, *needles)
    assert not out.exists()
