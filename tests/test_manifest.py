"""The typed export manifest, output-path helpers and the TensorFlow noise filter: no training."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from export.keras_model import calibrated_no_sign, calibrated_search
from runtime.backends import TensorInfo
from runtime.errors import ModelError, SignsError
from runtime.fsutil import check_output_dir, check_output_file, removed_if_interrupted
from runtime.handsearch import DEFAULT_THRESHOLD
from runtime.manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    Calibration,
    KerasModel,
    Manifest,
    ModelEntry,
    NoSign,
    Quantization,
    SearchThreshold,
    Status,
    read_manifest,
)
from runtime.modelinfo import default_model, describe_model
from runtime.pipeline import DEFAULT_MIN_CONFIDENCE
from train.tfquiet import NOISE

CALIBRATED = NoSign(0.4, True, 0.96, 0.9, "calibrated at training time (held-out scenes)")
SEARCH = SearchThreshold(0.62, True, 0.955, 0.41, "calibrated at training time (val scenes)")


def _manifest(folder: Path) -> Manifest:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("tflite-int8.tflite", "tflite-fp32.tflite", "onnx-fp32.onnx"):
        (folder / name).write_bytes(b"x" * (10 if "int8" in name else 40))
    info = TensorInfo("image", (1, 64, 64, 3), "int8", 1 / 255, -128)
    return Manifest(
        path=folder / MANIFEST_NAME,
        labels=["0", "1", "2", "3", "4", "5"],
        models=[
            ModelEntry("tflite-fp32", folder / "tflite-fp32.tflite", Status.PASSED, accuracy=0.9),
            ModelEntry(
                "tflite-int8",
                folder / "tflite-int8.tflite",
                Status.PASSED,
                Quantization.INT8,
                accuracy=0.95,
                input=info,
                uint8_shortcut=True,
            ),
            ModelEntry("onnx-fp32", folder / "onnx-fp32.onnx", Status.PASSED, accuracy=0.9),
            ModelEntry(
                "onnx-int8", folder / "onnx-int8.onnx", Status.EXPORT_FAILED, Quantization.INT8
            ),
        ],
        no_sign=CALIBRATED,
        hand_search=SEARCH,
        default_model="tflite-int8.tflite",
        keras=KerasModel(folder.parent / "model.keras", 0.95),
        calibration=Calibration("train", 300, "class-stratified, seed 0"),
    )


def _write(m: Manifest, edit=None) -> Path:
    data = json.loads(m.to_json())
    if edit:
        edit(data)
    m.path.write_text(json.dumps(data))
    return m.path


def test_round_trip_is_exact_and_readable(tmp_path: Path) -> None:
    m = _manifest(tmp_path / "export")
    text = m.to_json()
    data = json.loads(text)
    assert data["schema_version"] == SCHEMA_VERSION and next(iter(data)) == "schema_version"
    assert data["models"][1]["status"] == "passed" and data["models"][1]["quantization"] == "int8"
    assert data["models"][0]["path"] == "tflite-fp32.tflite"  # relative to the manifest
    assert data["keras"]["path"] == "../model.keras"
    assert data["no_sign"] == {
        "min_confidence": 0.4,
        "calibrated": True,
        "empty_no_sign": 0.96,
        "hands_correct_shown": 0.9,
        "source": CALIBRATED.source,
    }
    assert data["hand_search"] == {
        "threshold": 0.62,
        "calibrated": True,
        "empty_no_sign": 0.955,
        "hands_correct_shown": 0.41,
        "source": SEARCH.source,
    }
    assert "path" not in data  # where the file lives is not written into it
    back = Manifest.from_json(text, m.path)
    assert back == m
    assert back.models[1].input == m.models[1].input  # a typed TensorInfo, not a dict
    assert back.models[3].status is Status.EXPORT_FAILED and not back.models[3].passed


@pytest.mark.parametrize(
    ("edit", "needles"),
    [
        (
            lambda d: d.pop("schema_version"),
            ["schema version 1", "older", f"version {SCHEMA_VERSION}"],
        ),
        (lambda d: d.update(schema_version=SCHEMA_VERSION + 1), ["schema version", "re-export"]),
        (lambda d: d.update(schema_version="two"), ["schema version 'two'"]),
        (  # a version 2 manifest (before no_sign): re-export, in one line
            lambda d: (d.update(schema_version=2), d.pop("no_sign")),
            ["schema version 2", "older", f"version {SCHEMA_VERSION}", "re-export"],
        ),
        (lambda d: d.pop("no_sign"), ["'no_sign' is missing"]),
        (lambda d: d["no_sign"].update(min_confidence="high"), ["'min_confidence'", "number"]),
        (lambda d: d["hand_search"].update(threshold="high"), ["'threshold'", "number"]),
        (lambda d: d["models"][0].update(status="great"), ["'status'", "'great'", "'passed'"]),
        (lambda d: d["models"][0].update(accuracy="high"), ["'accuracy'", "number"]),
        (lambda d: d["models"][0].pop("path"), ["'path' is missing"]),
        (lambda d: d["models"][1]["input"].update(scale=None), ["'scale'", "number"]),
        (lambda d: d.update(models={"a": 1}), ["'models'", "list"]),
        (lambda d: d.update(labels=["a", "b"]), ["6 class names"]),
        (lambda d: d["preprocessing"].update(color="BGR"), ["color='BGR'"]),
    ],
)
def test_bad_manifest_is_one_line_model_error(tmp_path: Path, edit, needles) -> None:
    path = _write(_manifest(tmp_path / "export"), edit)
    with pytest.raises(ModelError) as info:
        read_manifest(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message, message
    for needle in needles:
        assert needle in message, (needle, message)


def test_not_json_and_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    for text, needle in (("{nope", "not a valid JSON manifest"), ("[1]", "expected a JSON object")):
        path.write_text(text)
        with pytest.raises(ModelError, match=needle):
            read_manifest(path)


def test_unknown_keys_ignored_missing_optional_keys_default(tmp_path: Path) -> None:
    """A newer export's extra optional field, or an older one's missing field, still reads."""

    def edit(d: dict) -> None:
        d["fine_tuning"] = {"samples": 240}
        d["models"][0]["min_confidence"] = 0.6
        for key in ("calibration", "versions", "settings", "default_model"):
            d.pop(key)
        for key in ("sha256", "input", "quantization", "reason"):
            d["models"][0].pop(key)

    m = read_manifest(_write(_manifest(tmp_path / "export"), edit))
    assert m.calibration is None and m.default_model is None and m.versions == {}
    assert m.keras.mirror_average is False  # exported before the field: a single pass
    assert (m.keras.turn_average, m.keras.passes) == (0.0, 1)
    assert m.hand_search == SEARCH
    assert m.models[0].quantization is Quantization.FLOAT32 and m.models[0].input is None


def test_min_confidence_from_the_manifest_when_listed_and_the_flag_wins(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    _write(_manifest(folder))
    listed = describe_model(folder / "tflite-int8.tflite", verify=False)
    assert listed.no_sign == CALIBRATED
    assert listed.no_sign.resolve(None) == (0.4, "calibrated")
    assert listed.no_sign.resolve(0.7) == (0.7, "--min-confidence")
    assert listed.no_sign.resolve(0.0) == (0.0, "--min-confidence")  # 0 is a value, not "unset"
    (folder / "other.onnx").write_bytes(b"x")
    for path, why in (
        (folder / "other.onnx", "other.onnx is not listed in its manifest.json"),
        (tmp_path / "bare.onnx", "no manifest.json beside bare.onnx"),
    ):
        value, origin = describe_model(path).no_sign.resolve(None)
        assert (value, origin) == (DEFAULT_MIN_CONFIDENCE, f"default: {why}")


def test_mirror_averaged_model_is_recorded_and_described(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    m = _manifest(folder)
    m = dataclasses.replace(m, keras=KerasModel(m.keras.path, 0.95, mirror_average=True))
    assert read_manifest(_write(m)).keras.mirror_average is True
    assert (
        "tflite-int8, mirror-averaged, export status passed"
        in describe_model(folder / "tflite-int8.tflite", verify=False).describe()
    )
    turned = KerasModel(m.keras.path, 0.95, mirror_average=True, turn_average=15.0)
    keras = read_manifest(_write(dataclasses.replace(m, keras=turned))).keras
    assert (keras.turn_average, keras.passes) == (15.0, 6)
    assert (
        "tflite-int8, mirror-averaged and turned +-15 deg, 6 passes, export status passed"
        in describe_model(folder / "tflite-int8.tflite", verify=False).describe()
    )
    _write(_manifest(folder))
    plain = describe_model(folder / "tflite-int8.tflite", verify=False).describe()
    assert "tflite-int8, export status passed" in plain


def test_manifest_without_hand_search_reads_as_the_runtime_constant(tmp_path: Path) -> None:
    """hand_search is optional in schema 3: a manifest exported before it still reads, and its
    models get the runtime's constant with a source saying why."""
    folder = tmp_path / "export"
    m = read_manifest(_write(_manifest(folder), lambda d: d.pop("hand_search")))
    assert m.hand_search.threshold == DEFAULT_THRESHOLD and not m.hand_search.calibrated
    value, origin = describe_model(folder / "tflite-int8.tflite").hand_search.resolve(None)
    assert value == DEFAULT_THRESHOLD and origin.startswith("default: no hand_search in the")


def test_search_threshold_from_the_manifest_when_listed_and_the_flag_wins(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    _write(_manifest(folder))
    listed = describe_model(folder / "tflite-int8.tflite", verify=False)
    assert listed.hand_search == SEARCH
    assert listed.hand_search.resolve(None) == (0.62, "calibrated")
    assert listed.hand_search.resolve(0.8) == (0.8, "--search-threshold")
    assert listed.hand_search.resolve(0.0) == (0.0, "--search-threshold")
    (folder / "other.onnx").write_bytes(b"x")
    for path, why in (
        (folder / "other.onnx", "other.onnx is not listed in its manifest.json"),
        (tmp_path / "bare.onnx", "no manifest.json beside bare.onnx"),
    ):
        value, origin = describe_model(path).hand_search.resolve(None)
        assert (value, origin) == (DEFAULT_THRESHOLD, f"default: {why}")


def test_calibrated_search_is_read_from_metrics_json_else_the_constant(tmp_path: Path) -> None:
    model = tmp_path / "run" / "model.keras"
    model.parent.mkdir()
    assert calibrated_search(model).source.startswith("default: no metrics.json")
    metrics = {"min_confidence": {"chosen": {"min_confidence": 0.4}}}  # before hand_search
    (model.parent / "metrics.json").write_text(json.dumps(metrics))
    old = calibrated_search(model)
    assert old == SearchThreshold(source="default: the model's metrics.json has no hand_search")
    assert old.resolve(None) == (DEFAULT_THRESHOLD, old.source)
    metrics["hand_search"] = {
        "threshold": 0.4371,
        "empty_no_sign": 0.9538,
        "hands_correct_shown": 0.3707,
        "target_empty_no_sign": 0.95,
        "score": "margin",
        "data": "val scenes: SIGNS validation hands",
    }
    (model.parent / "metrics.json").write_text(json.dumps(metrics))
    found = calibrated_search(model)
    assert (found.threshold, found.calibrated) == (0.4371, True)
    assert (found.empty_no_sign, found.hands_correct_shown) == (0.9538, 0.3707)
    assert "val scenes: SIGNS validation hands" in found.source and ">= 95%" in found.source
    assert "margin score" in found.source
    metrics["hand_search"]["threshold"] = 1.5  # not a score
    (model.parent / "metrics.json").write_text(json.dumps(metrics))
    assert not calibrated_search(model).calibrated


def test_calibrated_no_sign_is_read_from_metrics_json_else_the_default(tmp_path: Path) -> None:
    model = tmp_path / "run" / "model.keras"
    model.parent.mkdir()
    default = calibrated_no_sign(model)  # no metrics.json at all
    assert default.min_confidence == DEFAULT_MIN_CONFIDENCE and not default.calibrated
    assert default.source.startswith("default: no metrics.json")
    metrics = {"test": {"accuracy": 0.9}}  # written before training calibrated anything
    (model.parent / "metrics.json").write_text(json.dumps(metrics))
    old = calibrated_no_sign(model)
    assert old == NoSign(source="default: the model's metrics.json has no calibration")
    assert old.resolve(None) == (0.5, "default: the model's metrics.json has no calibration")
    metrics["min_confidence"] = {
        "chosen": {"min_confidence": 0.35, "empty_no_sign": 0.951, "hands_correct_shown": 0.88},
        "target_empty_no_sign": 0.95,
        "data": "hands: validation split",
    }
    (model.parent / "metrics.json").write_text(json.dumps(metrics))
    found = calibrated_no_sign(model)
    assert (found.min_confidence, found.calibrated) == (0.35, True)
    assert (found.empty_no_sign, found.hands_correct_shown) == (0.951, 0.88)
    assert "hands: validation split" in found.source and ">= 95%" in found.source
    (model.parent / "metrics.json").write_text("{cut")
    assert "unreadable" in calibrated_no_sign(model).source


def test_default_model_follows_the_manifest_and_the_gate(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    m = _manifest(folder)
    _write(m)
    assert default_model(folder) == folder / "tflite-int8.tflite"

    def int8_failed(d: dict) -> None:
        d["models"][1]["status"] = "failed"

    _write(m, int8_failed)  # the recorded default failed: best accuracy, then the smaller file
    assert default_model(folder) == folder / "tflite-fp32.tflite"
    _write(m, lambda d: [e.update(status="failed") for e in d["models"]])
    with pytest.raises(ModelError, match="none marked 'passed'"):
        default_model(folder)


def test_output_paths_one_wording(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SignsError) as info:
        check_output_dir(blocker / "out")
    assert (
        str(info.value)
        == f"cannot write the output folder {blocker / 'out'}: {blocker} is a file, not a folder"
    )
    with pytest.raises(SignsError, match="cannot write the output folder .*: it is a file"):
        check_output_dir(blocker)
    with pytest.raises(
        SignsError, match="cannot write the log file .*: it is a folder, not a file"
    ):
        check_output_file(tmp_path, what="log file")
    assert check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_interrupted_run_removes_only_the_folders_it_created(tmp_path: Path) -> None:
    out = tmp_path / "new" / "out"
    with pytest.raises(KeyboardInterrupt), removed_if_interrupted(out):
        out.mkdir(parents=True)
        raise KeyboardInterrupt
    assert not (tmp_path / "new").exists()

    kept = tmp_path / "kept"
    with pytest.raises(KeyboardInterrupt), removed_if_interrupted(kept):
        kept.mkdir()
        (kept / "model.keras").write_text("done")  # an artifact was written: keep everything
        raise KeyboardInterrupt
    assert (kept / "model.keras").is_file()

    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(KeyboardInterrupt), removed_if_interrupted(existing):
        raise KeyboardInterrupt
    assert existing.is_dir()


def test_tensorflow_noise_filter_hides_start_up_notices_only() -> None:
    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "E0000 00:00:1795802384.045688    5931 cuda_platform.cc:52] failed call to cuInit: "
        "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
        "I0000 00:00:1795802379.616003    5931 cudart_stub.cc:31] Could not find cuda drivers on "
        "your machine, GPU will not be used.",
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow "
        "with the appropriate compiler flags.",
    ]
    real = [
        "E0000 00:00:1795802384.045688    5931 op_kernel.cc:1830] OP_REQUIRES failed: OOM",
        "Traceback (most recent call last):",
        "ImportError: libcudnn.so.9: cannot open shared object file",
    ]
    assert all(NOISE.match(line) for line in noise)
    assert not any(NOISE.match(line) for line in real)


@pytest.mark.slow
def test_tensorflow_import_is_quiet_but_keeps_other_stderr_lines() -> None:
    """A real TensorFlow import prints nothing; an unknown line written meanwhile still shows."""
    import subprocess
    import sys

    from tests.helpers import ROOT

    code = (
        "import os\n"
        "from train.tfquiet import filtered_stderr, import_tensorflow\n"
        "with filtered_stderr():\n"
        "    os.write(2, b'E0000 00:00:1.2 7 cuda_platform.cc:52] failed call to cuInit: x\\n')\n"
        "    os.write(2, b'a real problem\\n')\n"
        "tf = import_tensorflow()\n"
        "print(tf.constant(2).numpy() + 1)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "3"
    assert proc.stderr == "a real problem\n", proc.stderr
