"""The runtime end to end on a tiny ONNX model built in the test: no training, a few seconds.

The model is real (onnx.helper, checked, run by onnxruntime through runtime.backends): the mean
colour of the 64x64 input times a 3x6 matrix, then softmax. Its answer is computed again here
with NumPy, so the backend, the loop, its hooks, the log and runtime.evaluate are checked
against an independent reference.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.video import write_test_video
from runtime.hooks import QUIT, FrameEvent, FrameHook
from runtime.preprocess import INPUT_SHAPE, NUM_CLASSES, preprocess
from tests.helpers import assert_user_error, run_module

W = np.array(
    [[4, -2, 0, 1, -3, 2], [-1, 3, 2, -4, 1, 0], [0, 1, -3, 2, 2, -2]], dtype=np.float32
)  # RGB mean -> class logits
B = np.array([0.1, -0.2, 0.3, 0.0, -0.1, 0.2], dtype=np.float32)


def reference(images_rgb: np.ndarray) -> np.ndarray:
    """What the tiny model computes, in NumPy: softmax(mean(rgb / 255) @ W + B)."""
    m = (images_rgb.astype(np.float32) / np.float32(255)).mean(axis=(1, 2))
    z = m @ W + B
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", *INPUT_SHAPE])
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", NUM_CLASSES])
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["m"], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", ["m", "w"], ["z0"]),
        helper.make_node("Add", ["z0", "b"], ["z"]),
        helper.make_node("Softmax", ["z"], ["probs"], axis=1),
    ]
    inits = [numpy_helper.from_array(W, "w"), numpy_helper.from_array(B, "b")]
    graph = helper.make_graph(nodes, "tiny", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def colours() -> np.ndarray:
    """12 flat-coloured 64x64 RGB images with clearly different answers."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(12, 1, 1, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.broadcast_to(rgb, (12, *INPUT_SHAPE)))


def test_backend_matches_numpy(tiny_onnx: Path, colours: np.ndarray) -> None:
    from runtime.backends import load_backend

    backend = load_backend(tiny_onnx, threads=1)
    np.testing.assert_allclose(
        backend.predict(colours), reference(colours), atol=2e-4
    )  # MLAS softmax
    np.testing.assert_allclose(
        backend.predict_one(colours[3]), reference(colours[3:4])[0], atol=1e-5
    )


def test_webcam_loop_hooks_and_log(tiny_onnx: Path, colours: np.ndarray, tmp_path: Path) -> None:
    """run() in-process: every frame reaches the log and the hooks; a hook's QUIT stops it."""
    from runtime.sources import VideoSource
    from runtime.webcam import WebcamSettings, run

    video = write_test_video(colours, tmp_path / "v.avi", codec="FFV1", repeat=2)
    seen: list[int] = []

    class StopAt(FrameHook):
        def on_frame(self, event: FrameEvent):
            seen.append(event.index)
            return QUIT if event.index == 15 else None

    log = tmp_path / "frames.csv"
    settings = WebcamSettings(
        model=str(tiny_onnx), headless=True, smooth=0, min_confidence=0, log=str(log)
    )
    summary = run(settings, source=VideoSource(video), hooks=[StopAt()])
    assert seen == list(range(16)) and summary.frames == 16
    assert summary.ended == "quit (q/ESC)"
    with open(log, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["frame"]) for r in rows] == seen
    # The label of each frame is the model's answer for the image in its ROI (lossless video).
    cap = cv2.VideoCapture(str(video))
    expected = []
    for _ in range(16):
        ok, frame = cap.read()
        assert ok
        x, y, side = 192, 112, 256
        expected.append(
            int(reference(preprocess(frame[y : y + side, x : x + side], bgr=True)[None]).argmax())
        )
    assert [int(r["label"]) for r in rows] == expected
    assert len(set(expected)) > 1  # the check can fail


def test_webcam_cli_on_the_tiny_model(tiny_onnx: Path, colours: np.ndarray, tmp_path: Path) -> None:
    video = write_test_video(colours, tmp_path / "v.avi")
    proc = run_module(
        "runtime.webcam", "--model", str(tiny_onnx), "--source", str(video), "--headless",
        "--max-frames", "5", timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "5 frames in" in proc.stdout and "ended: --max-frames 5" in proc.stdout
    proc = run_module(
        "runtime.webcam", "--model", str(tiny_onnx), "--source", str(video), "--headless",
        "--roi", "600", timeout=120,
    )  # fmt: skip
    assert_user_error(proc, "--roi 600", "640x480")


def test_evaluate_on_generated_class_folders(
    tiny_onnx: Path, colours: np.ndarray, tmp_path: Path
) -> None:
    from runtime.evaluate import EvaluateSettings, evaluate

    truth = reference(colours).argmax(axis=1)
    for i, (img, label) in enumerate(zip(colours, truth, strict=True)):
        folder = tmp_path / str(label)
        folder.mkdir(exist_ok=True)
        cv2.imwrite(str(folder / f"{i}.png"), cv2.resize(img, (100, 100))[:, :, ::-1])
    result = evaluate(EvaluateSettings(model=str(tiny_onnx), data=str(tmp_path)))
    assert result.n == len(colours) and result.accuracy == 1.0


def _listed(model: Path, folder: Path, no_sign, **fields) -> Path:
    """A copy of ``model`` in ``folder`` with a hand-written manifest.json listing it."""
    import hashlib
    import shutil

    from runtime.dataset import DEFAULT_LABELS
    from runtime.manifest import MANIFEST_NAME, Manifest, ModelEntry, Status

    folder.mkdir()
    path = Path(shutil.copy(model, folder / "onnx-fp32.onnx"))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    entry = ModelEntry("onnx-fp32", path, Status.PASSED, sha256=sha)
    m = Manifest(folder / MANIFEST_NAME, list(DEFAULT_LABELS), [entry], no_sign, **fields)
    m.path.write_text(m.to_json())
    return path


def test_webcam_takes_the_manifest_min_confidence_unless_the_flag_is_given(
    tiny_onnx: Path, colours: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Calibrated 0.6 in the manifest: used when --min-confidence is omitted; the flag wins;
    a bare file, or a model whose metrics.json has no calibration, gets the default 0.5."""
    from export.keras_model import calibrated_no_sign
    from runtime.cli import build_parser
    from runtime.manifest import NoSign
    from runtime.sources import VideoSource
    from runtime.webcam import WebcamSettings, run

    parser, _ = build_parser(WebcamSettings, prog="webcam", description=None)
    assert parser.parse_args([]).min_confidence is None  # omitted: the model decides
    assert parser.parse_args(["--min-confidence", "0.3"]).min_confidence == 0.3
    calibrated = _listed(
        tiny_onnx, tmp_path / "calibrated", NoSign(0.6, True, 0.95, 0.8, "calibrated (test)")
    )
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text('{"test": {"accuracy": 0.9}}')
    uncalibrated = _listed(
        tiny_onnx, tmp_path / "uncalibrated", calibrated_no_sign(tmp_path / "run" / "model.keras")
    )
    video = write_test_video(colours, tmp_path / "v.avi", codec="FFV1")
    cases = [
        (calibrated, None, 0.6, "calibrated"),
        (calibrated, 0.5, 0.5, "--min-confidence"),
        (uncalibrated, None, 0.5, "default: the model's metrics.json has no calibration"),
        (tiny_onnx, None, 0.5, "default: no manifest.json beside tiny.onnx"),
    ]
    for i, (model, flag, used, origin) in enumerate(cases):
        log = tmp_path / f"frames{i}.csv"
        settings = WebcamSettings(
            model=str(model), headless=True, smooth=0, min_confidence=flag, log=str(log)
        )
        run(settings, source=VideoSource(video))
        out = capsys.readouterr().out
        assert f"min confidence {used:g} ({origin})" in out, out
        with open(log, newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == len(colours)
        for r in rows:
            assert (r["label"] == "") == (float(r["confidence"]) < used), (used, r)
        # Frames between the two thresholds: the threshold in use decides what they show.
        assert any(0.5 <= float(r["confidence"]) < 0.6 for r in rows)


def test_find_hand_takes_the_manifest_threshold_unless_the_flag_is_given(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """--find-hand: the manifest's calibrated search threshold when --search-threshold is
    omitted, the flag when given, the runtime's constant for a bare file; the start-up line
    names the value and where it came from, and the search runs with it."""
    from runtime.cli import build_parser
    from runtime.handsearch import DEFAULT_THRESHOLD, SearchConfig
    from runtime.manifest import NoSign, SearchThreshold
    from runtime.sources import open_source
    from runtime.webcam import WebcamSettings, run

    parser, _ = build_parser(WebcamSettings, prog="webcam", description=None)
    assert parser.parse_args([]).search_threshold is None  # omitted: the model decides
    assert parser.parse_args(["--search-threshold", "0.3"]).search_threshold == 0.3
    calibrated = _listed(
        tiny_onnx,
        tmp_path / "calibrated",
        NoSign(),
        hand_search=SearchThreshold(0.31, True, 0.96, 0.4, "calibrated (test)"),
    )
    frame = tmp_path / "frame.png"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(frame), rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))
    cases = [
        (calibrated, None, 0.31, "calibrated"),
        (calibrated, 0.8, 0.8, "--search-threshold"),
        (tiny_onnx, None, DEFAULT_THRESHOLD, "default: no manifest.json beside tiny.onnx"),
    ]
    for model, flag, value, origin in cases:
        settings = WebcamSettings(
            model=str(model), headless=True, find_hand=True, hand_finder="scan",
            search_threshold=flag,
        )  # fmt: skip
        assert run(settings, source=open_source(0, str(frame), 1.0)).frames == 1
        out = capsys.readouterr().out  # the search's own config, printed at start-up
        assert f"margin score >= {value:g} ({origin})" in out, out
    # The hysteresis level that keeps a found box moves with the threshold.
    assert SearchConfig().with_threshold(DEFAULT_THRESHOLD).keep == pytest.approx(0.45)
    assert SearchConfig().with_threshold(0.31).keep == pytest.approx(0.31 - 0.097)


@pytest.mark.parametrize(
    ("flags", "needles"),
    [
        (["--search-threshold", "0.5"], ["--search-threshold", "only with --find-hand"]),
        (["--find-hand", "--search-threshold", "1.5"], ["--search-threshold 1.5", "[0, 1]"]),
        (
            ["--find-hand", "--search-threshold", "0.5"],
            ["only with --find-hand --hand-finder scan"],
        ),
        (["--palm-model", "palm.tflite"], ["--palm-model", "only with --find-hand"]),
        (
            ["--find-hand", "--palm-model", "no-such-palm.tflite"],
            ["no-such-palm.tflite", "palm detector not found", "python -m runtime.palm"],
        ),
    ],
)
def test_bad_search_threshold_is_one_line(tiny_onnx: Path, tmp_path: Path, flags, needles) -> None:
    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), np.zeros((480, 640, 3), np.uint8))
    proc = run_module(
        "runtime.webcam", "--model", str(tiny_onnx), "--source", str(frame), "--headless", *flags
    )
    assert_user_error(proc, *needles)
