"""The TF-free runtime: imports, preprocessing fast path, ROI, smoothing, manifest, evaluate."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.errors import ModelError, SettingError
from runtime.manifest import read_manifest
from runtime.modelinfo import default_model, describe_model
from runtime.pipeline import DEFAULT_MIN_CONFIDENCE, DEFAULT_SMOOTH, Roi, Smoother, decide
from runtime.preprocess import area_resize, preprocess
from runtime.stats import LatencyHistogram
from tests.helpers import ROOT, assert_user_error, run_module


def test_runtime_never_imports_tensorflow(exported_dir: Path) -> None:
    """Import both commands and run both backends in a fresh interpreter: no TF, no Keras."""
    code = f"""
import sys
import numpy as np
import runtime.webcam, runtime.evaluate, runtime.pipeline, runtime.sources, runtime.manifest
import runtime.modelinfo
import runtime.window, runtime.framelog, runtime.stats, runtime.cli
from runtime.backends import load_backend
for name in ("tflite-int8.tflite", "tflite-fp32.tflite", "onnx-fp32.onnx"):
    load_backend({str(exported_dir)!r} + "/" + name).predict(np.zeros((2, 64, 64, 3), np.uint8))
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
print("BAD", bad)
"""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "BAD []" in proc.stdout, proc.stdout


# --- preprocessing fast path ----------------------------------------------------------------


@pytest.mark.parametrize("side", [64, 384, 640, 1024])
def test_area_resize_matches_direct_inter_area(side: int, signs_data: Path) -> None:
    """Staged exact-2x reductions give a direct INTER_AREA resize, within one grey level."""
    rng = np.random.default_rng(side)
    # Worst case for rounding: noise; plus a real photo, upscaled.
    noise = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    photo = cv2.imread(str(sorted((signs_data / "test_signs").glob("*.jpg"))[0]))
    photo = cv2.resize(photo, (side, side), interpolation=cv2.INTER_CUBIC)
    for image in (noise, photo):
        fast = area_resize(image, 64)
        direct = cv2.resize(image, (64, 64), interpolation=cv2.INTER_AREA)
        assert fast.shape == (64, 64, 3) and fast.dtype == np.uint8
        diff = np.abs(fast.astype(np.int16) - direct.astype(np.int16))
        if side == 64:
            assert np.array_equal(fast, image)
        else:
            assert diff.max() <= 1, (side, diff.max())


def test_preprocess_of_default_roi_equals_naive_pipeline() -> None:
    """What the pipeline feeds the model for a 640x480 frame equals the naive crop/resize/cvt."""
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (5, 5), 2)
    x, y, side = Roi().box(640, 480)
    crop = frame[y : y + side, x : x + side]
    ours = preprocess(crop, bgr=True)
    naive = cv2.cvtColor(
        cv2.resize(crop, (64, 64), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB
    )
    assert np.abs(ours.astype(int) - naive.astype(int)).max() <= 1


@pytest.mark.parametrize(
    ("w", "h", "roi", "box"),
    [
        (640, 480, None, (192, 112, 256)),
        (1280, 720, None, (384, 104, 512)),
        (1920, 1080, None, (448, 28, 1024)),
        (320, 240, None, (96, 56, 128)),
        (100, 80, None, (18, 8, 64)),
        (60, 40, None, (10, 0, 40)),
        (640, 480, 0, (80, 0, 480)),
        (640, 480, 256, (192, 112, 256)),
    ],
)
def test_roi_box(w: int, h: int, roi: int | None, box: tuple[int, int, int]) -> None:
    assert Roi(roi).box(w, h) == box


@pytest.mark.parametrize("side", [481, 32])
def test_roi_that_does_not_fit_is_a_user_error(side: int) -> None:
    with pytest.raises(SettingError, match=f"^roi {side}: "):
        Roi(side).box(640, 480)


def test_mirror_equals_classifying_the_flipped_frame(exported_dir: Path) -> None:
    from runtime.backends import load_backend
    from runtime.pipeline import FramePipeline

    backend = load_backend(exported_dir / "tflite-fp32.tflite", threads=1)
    rng = np.random.default_rng(1)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (7, 7), 3)
    mirrored = FramePipeline(backend, smooth=0, mirror=True).step(frame)
    flipped = FramePipeline(backend, smooth=0).step(cv2.flip(frame, 1))
    plain = FramePipeline(backend, smooth=0).step(frame)
    assert np.array_equal(mirrored.raw, flipped.raw)
    x, y, side = plain.box
    roi = frame[y : y + side, x : x + side]
    assert not np.array_equal(roi, cv2.flip(frame, 1)[y : y + side, x : x + side])  # it flipped
    # The default model averages its two views, so a mirrored frame reads the same through the
    # file too (up to float rounding).
    np.testing.assert_allclose(plain.raw, flipped.raw, atol=1e-6)


# --- smoothing --------------------------------------------------------------------------------


def _probs(rng: np.random.Generator, top: int, conf: float) -> np.ndarray:
    """A probability vector whose class ``top`` has ``conf`` and the rest share 1 - conf."""
    rest = rng.dirichlet(np.ones(5)) * (1.0 - conf)
    return np.insert(rest, top, conf).astype(np.float32)


@pytest.mark.slow  # runs a video through the loop: ~3 s
def test_default_smoothing_settles_within_five_frames() -> None:
    """A sign change at 30 fps shows within 5 frames, from any steady state, for any new sign
    whose raw confidence is at least 0.6 (the documented guarantee)."""
    rng = np.random.default_rng(0)
    worst = 0
    for _ in range(2000):
        a, b = rng.choice(6, size=2, replace=False)
        sm = Smoother(DEFAULT_SMOOTH)
        for _ in range(int(rng.integers(1, 30))):  # steady on A, confident
            sm.update(_probs(rng, a, rng.uniform(0.6, 1.0)))
        for n in range(1, 6):
            label, _ = decide(
                sm.update(_probs(rng, b, rng.uniform(0.6, 1.0))), DEFAULT_MIN_CONFIDENCE
            )
            if label == b:
                worst = max(worst, n)
                break
        else:
            pytest.fail(f"label did not change from {a} to {b} within 5 frames")
    assert worst <= 5


def test_smoothing_ignores_a_single_odd_frame() -> None:
    """The reason to smooth at all: one confident wrong frame does not flip a steady label."""
    sm = Smoother(DEFAULT_SMOOTH)
    steady = np.array([0.96, 0.01, 0.01, 0.01, 0.005, 0.005], np.float32)
    odd = np.array([0.01, 0.01, 0.96, 0.01, 0.005, 0.005], np.float32)
    for _ in range(10):
        sm.update(steady)
    assert decide(sm.update(odd), DEFAULT_MIN_CONFIDENCE)[0] == 0
    assert decide(sm.update(steady), DEFAULT_MIN_CONFIDENCE)[0] == 0


def test_no_smoothing_passes_probabilities_through_and_threshold_gives_no_sign() -> None:
    sm = Smoother(0.0)
    p1 = np.array([0.1, 0.7, 0.1, 0.05, 0.03, 0.02], np.float32)
    p2 = np.array([0.3, 0.1, 0.4, 0.1, 0.05, 0.05], np.float32)
    assert np.array_equal(sm.update(p1), p1)
    assert np.array_equal(sm.update(p2), p2)
    assert decide(p2, 0.5) == (None, pytest.approx(0.4))
    assert decide(p2, 0.4)[0] == 2
    with pytest.raises(SettingError, match="^smooth 1.0: "):
        Smoother(1.0)


def test_latency_histogram_percentiles_match_numpy() -> None:
    rng = np.random.default_rng(0)
    values = rng.lognormal(mean=-1.5, sigma=0.8, size=20_000)  # ms, around 0.2 ms
    h = LatencyHistogram()
    for v in values:
        h.add(float(v))
    for q in (50, 95, 99):
        exact = np.percentile(values, q, method="inverted_cdf")
        assert h.percentile(q) == pytest.approx(exact, rel=2e-3), q
    assert h.summary()["mean"] == pytest.approx(values.mean(), rel=1e-9)


# --- manifest ---------------------------------------------------------------------------------


def _copy_export(exported_dir: Path, dest: Path) -> Path:
    shutil.copytree(exported_dir, dest)
    return dest


def _edit_manifest(folder: Path, edit) -> None:
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_manifest_is_read_and_bare_model_gets_defaults(exported_dir: Path, tmp_path: Path) -> None:
    info = describe_model(exported_dir / "tflite-int8.tflite")
    assert info.entry is not None and info.entry.format == "tflite-int8"
    assert info.entry.passed and info.warnings == ()
    assert info.entry.uint8_shortcut is True
    assert len(info.labels) == 6

    bare = tmp_path / "model.tflite"
    shutil.copy(exported_dir / "tflite-int8.tflite", bare)
    info = describe_model(bare)
    assert info.manifest is None and info.labels == ["0", "1", "2", "3", "4", "5"]


def test_manifest_warnings_for_failed_or_changed_files(exported_dir: Path, tmp_path: Path) -> None:
    folder = _copy_export(exported_dir, tmp_path / "export")

    def fail_int8(m: dict) -> None:
        for e in m["models"]:
            if e["format"] == "tflite-int8":
                e["status"], e["reason"] = "failed", "accuracy drop 7.5 pp > 1.0"

    _edit_manifest(folder, fail_int8)
    (w,) = describe_model(folder / "tflite-int8.tflite").warnings
    assert "'failed'" in w and "drop 7.5" in w

    data = bytearray((folder / "tflite-fp32.tflite").read_bytes())
    data[-1] ^= 0xFF
    (folder / "tflite-fp32.tflite").write_bytes(bytes(data))
    (w,) = describe_model(folder / "tflite-fp32.tflite").warnings
    assert "sha256" in w


def test_manifest_with_other_preprocessing_is_refused(exported_dir: Path, tmp_path: Path) -> None:
    folder = _copy_export(exported_dir, tmp_path / "export")
    _edit_manifest(folder, lambda m: m["preprocessing"].update(color="BGR"))
    with pytest.raises(ModelError, match="color='BGR'"):
        describe_model(folder / "tflite-int8.tflite")
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="not a valid JSON manifest"):
        read_manifest(folder / "manifest.json")


def test_default_model_choice(exported_dir: Path, tmp_path: Path) -> None:
    folder = _copy_export(exported_dir, tmp_path / "export")
    manifest = read_manifest(folder / "manifest.json")
    assert all(e.passed for e in manifest.models if e.format.startswith("tflite")), manifest
    assert default_model(folder) == folder / "tflite-int8.tflite"

    # int8 failed: the most accurate passing file wins, the smaller one on a tie.
    def only_two_pass(m: dict) -> None:
        for e in m["models"]:
            e["status"] = "passed" if e["format"] in ("tflite-fp32", "tflite-fp16") else "failed"
            if e["status"] == "passed":
                e["accuracy"] = 0.9

    _edit_manifest(folder, only_two_pass)
    assert default_model(folder) == folder / "tflite-fp16.tflite"  # same accuracy, smaller

    _edit_manifest(folder, lambda m: [e.update(status="failed") for e in m["models"]])
    with pytest.raises(ModelError, match="none marked 'passed'"):
        default_model(folder)
    with pytest.raises(ModelError, match="python -m export"):
        default_model(tmp_path / "nothing-here")


# --- python -m runtime.evaluate ---------------------------------------------------------------


def test_evaluate_json_matches_the_export_gate(exported_dir: Path, signs_data: Path) -> None:
    """The on-device check reproduces, on the test set, the accuracy the export gate recorded."""
    manifest = read_manifest(exported_dir / "manifest.json")
    for name in ("tflite-int8.tflite", "onnx-fp32.onnx"):
        proc = run_module(
            "runtime.evaluate", "--model", str(exported_dir / name), "--data", str(signs_data),
            "--json",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert set(out) == {"accuracy", "n", "confusion", "per_class"}
        assert out["n"] == 120
        confusion = np.array(out["confusion"])
        assert confusion.shape == (6, 6) and confusion.sum() == 120
        assert out["accuracy"] == pytest.approx(np.trace(confusion) / 120)
        recorded = manifest.entry_for(exported_dir / name).accuracy
        assert out["accuracy"] == pytest.approx(recorded, abs=1e-6)
        assert out["per_class"] == pytest.approx(list(np.diag(confusion) / confusion.sum(1)))
        assert "confusion (rows: true class" in proc.stdout


def test_evaluate_reads_class_folders_of_any_size(
    exported_dir: Path, signs_data: Path, tmp_path: Path
) -> None:
    """Class subfolders with 200x150 images: the shared preprocessing crops and resizes them."""
    files = sorted((signs_data / "test_signs").glob("*.jpg"))[::10]
    for f in files:
        d = tmp_path / "classes" / f.name.split("_")[0]
        d.mkdir(parents=True, exist_ok=True)
        img = cv2.imread(str(f))
        canvas = np.full((150, 200, 3), 127, np.uint8)
        canvas[:, 25:175] = cv2.resize(img, (150, 150), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(d / f.name.replace(".jpg", ".png")), canvas)
    proc = run_module(
        "runtime.evaluate", "--model", str(exported_dir / "tflite-int8.tflite"),
        "--data", str(tmp_path / "classes"), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["n"] == len(files)
    # 12 images through a resize and a grey border: a trained model, well above chance (1/6).
    assert out["accuracy"] >= 0.5


def _wrong_shape_onnx(path: Path) -> None:
    """A valid ONNX model whose input is 32x32x3."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 32, 32, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6])
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 6], np.zeros(18, np.float32).tolist())
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2], keepdims=0),  # opset 17 form
        helper.make_node("MatMul", ["m", "w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["y"], axis=1),
    ]
    graph = helper.make_graph(nodes, "wrong", [x], [y], initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.fixture
def bad_models(exported_dir: Path, tmp_path: Path) -> dict[str, Path]:
    truncated = tmp_path / "truncated.tflite"
    data = (exported_dir / "tflite-int8.tflite").read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    truncated_onnx = tmp_path / "truncated.onnx"
    data = (exported_dir / "onnx-fp32.onnx").read_bytes()
    truncated_onnx.write_bytes(data[: len(data) // 3])
    text = tmp_path / "notes.tflite"
    text.write_text("not a model\n")
    wrong = tmp_path / "wrong_shape.onnx"
    _wrong_shape_onnx(wrong)
    return {
        "truncated": truncated,
        "truncated-onnx": truncated_onnx,
        "text": text,
        "wrong-shape": wrong,
        "missing": tmp_path / "missing.tflite",
    }


@pytest.mark.parametrize("kind", ["truncated", "truncated-onnx", "text", "wrong-shape", "missing"])
def test_evaluate_bad_model_is_one_line_error(
    kind: str, bad_models: dict[str, Path], signs_data: Path
) -> None:
    path = bad_models[kind]
    proc = run_module("runtime.evaluate", "--model", str(path), "--data", str(signs_data))
    line = assert_user_error(proc, str(path))
    if kind == "wrong-shape":
        assert "expected [N, 64, 64, 3]" in line


def test_evaluate_bad_data_is_one_line_error(exported_dir: Path, tmp_path: Path) -> None:
    proc = run_module(
        "runtime.evaluate", "--model", str(exported_dir / "tflite-int8.tflite"),
        "--data", str(tmp_path / "nowhere"),
    )  # fmt: skip
    assert_user_error(proc, "nowhere")
