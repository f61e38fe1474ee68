"""``python -m runtime.webcam`` on real videos written with cv2.VideoWriter, run headless."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.video import backdrop, write_test_video
from runtime.dataset import read_image
from tests.helpers import ROOT, assert_user_error, run_module

FRAMES_PER_IMAGE = 8  # each image fills the ROI for this many frames
PER_CLASS = 4  # test images per class in the video: 24 images, 192 frames
ROI = (192, 112, 256)  # the default ROI of a 640x480 frame: x, y, side
N_LONG = 2500  # frames of the video a signal interrupts (~1 s to process here, ~0.3 s to write)


@pytest.fixture(scope="module")
def video(signs_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 640x480 MJPG video: 24 real test images, each filling the ROI for 8 frames.

    The 64x64 photos are enlarged 4x with INTER_NEAREST, so the ROI's area-resize gives back
    the original pixels up to MJPG compression.
    """
    out = tmp_path_factory.mktemp("video")
    images = out / "images"  # the same images, as a CS230-style folder for runtime.evaluate
    images.mkdir()
    files = sorted((signs_data / "test_signs").glob("*.jpg"))
    for c in range(6):
        for f in [f for f in files if f.name.startswith(f"{c}_")][:PER_CLASS]:
            shutil.copy(f, images / f.name)
    # Classes interleaved (0, 1, ..., 5, 0, 1, ...): nearly every image is a sign change.
    by_class = [sorted(images.glob(f"{c}_*")) for c in range(6)]
    picked = [by_class[c][i] for i in range(PER_CLASS) for c in range(6)]
    rgb = np.stack([read_image(f) for f in picked])
    path = write_test_video(rgb, out / "video.avi", repeat=FRAMES_PER_IMAGE, nearest=True)
    labels = [int(f.name.split("_")[0]) for f in picked]
    return {"path": path, "images": images, "names": [f.name for f in picked], "labels": labels}


def _read_log(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _summary(stdout: str) -> dict[str, list[float]]:
    rows = {}
    for line in stdout.splitlines():
        m = re.match(r"^(capture|preprocess|inference|smoothing|total)\s+([\d.\s]+)$", line)
        if m:
            rows[m.group(1)] = [float(v) for v in m.group(2).split()]
    return rows


def _webcam(*args: str, **kw) -> subprocess.CompletedProcess:
    return run_module("runtime.webcam", *args, **kw)


def _decoded_predictions(video_path: Path, model: Path) -> tuple[np.ndarray, np.ndarray]:
    """Top class and probability per frame, from our own decode of the video (no smoothing)."""
    from runtime.backends import load_backend
    from runtime.preprocess import preprocess

    backend = load_backend(model, threads=1)
    cap = cv2.VideoCapture(str(video_path))
    x, y, side = ROI
    probs = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        probs.append(backend.predict_one(preprocess(frame[y : y + side, x : x + side], bgr=True)))
    cap.release()
    p = np.array(probs)
    return p.argmax(1), p.max(1)


def test_headless_log_agrees_with_frames_and_with_evaluate(
    video: dict, exported_dir: Path, tmp_path: Path
) -> None:
    model = exported_dir / "tflite-int8.tflite"
    log = tmp_path / "frames.csv"
    proc = _webcam(
        "--model", str(model), "--source", str(video["path"]), "--headless",
        "--log", str(log), "--smooth", "0", "--min-confidence", "0",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    n = len(video["names"]) * FRAMES_PER_IMAGE

    # The log: complete, one row per source frame, every column filled.
    rows = _read_log(log)
    assert list(rows[0]) == [
        "frame", "label", "confidence", "capture_ms", "preprocess_ms", "inference_ms",
        "smoothing_ms", "display_ms", "total_ms",
    ]  # fmt: skip
    assert [int(r["frame"]) for r in rows] == list(range(n))
    for r in rows:
        stages = [float(r[k]) for k in ("capture_ms", "preprocess_ms", "inference_ms")]
        assert all(v >= 0 for v in stages) and float(r["total_ms"]) >= sum(stages)
    assert not list(tmp_path.glob(".frames.*")), "temp log left behind"

    # The summary: p50/p95/p99 per stage, FPS, the frame count.
    summary = _summary(proc.stdout)
    for stage in ("capture", "preprocess", "inference", "total"):
        p50, p95, p99, mean = summary[stage]
        assert 0 < p50 <= p95 <= p99, (stage, summary[stage])
    assert summary["total"][0] >= summary["inference"][0]
    assert re.search(rf"^{n} frames in [\d.]+ s, mean [\d.]+ FPS; ended: end of source$",
                     proc.stdout, re.M), proc.stdout  # fmt: skip
    assert f"log: {log} ({n} rows)" in proc.stdout

    # Per frame: exactly what the model says about the frame as decoded back from the video.
    labels = np.array([int(r["label"]) for r in rows])
    conf = np.array([float(r["confidence"]) for r in rows])
    expected, expected_conf = _decoded_predictions(video["path"], model)
    assert np.array_equal(labels, expected)
    np.testing.assert_allclose(conf, expected_conf, atol=1e-4)

    # Per image: the same answer as runtime.evaluate on the original JPEGs (MJPG compression
    # may move a borderline image, so at most one of 24 may differ).
    from runtime.evaluate import EvaluateSettings, evaluate

    result = evaluate(EvaluateSettings(model=str(model), data=str(video["images"])))
    evaluated = dict(zip(result.names, result.predictions.tolist(), strict=True))
    assert sorted(evaluated) == sorted(video["names"])
    per_image = labels.reshape(-1, FRAMES_PER_IMAGE)[:, -1]
    agree = np.mean([p == evaluated[n] for p, n in zip(per_image, video["names"], strict=True)])
    assert agree >= 23 / 24, (per_image, evaluated)

    proc = run_module(
        "runtime.evaluate", "--model", str(model), "--data", str(video["images"]), "--json"
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    ours = np.zeros((6, 6), int)
    np.add.at(ours, (np.array(video["labels"]), per_image), 1)
    assert np.abs(ours - np.array(out["confusion"])).sum() <= 2  # one image moved, at most
    assert out["n"] == len(video["names"])


def test_default_smoothing_settles_within_five_frames_on_video(
    video: dict, exported_dir: Path, tmp_path: Path
) -> None:
    """With the default --smooth, each image's label shows by its 5th frame and stays."""
    model = exported_dir / "tflite-fp32.tflite"
    log = tmp_path / "smooth.csv"
    proc = _webcam(
        "--model", str(model), "--source", str(video["path"]), "--headless",
        "--log", str(log), "--min-confidence", "0",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    smoothed = np.array([int(r["label"]) for r in _read_log(log)]).reshape(-1, FRAMES_PER_IMAGE)
    raw, _ = _decoded_predictions(video["path"], model)
    raw = raw.reshape(-1, FRAMES_PER_IMAGE)
    assert (raw == raw[:, :1]).all()  # each image's frames decode alike
    changes = [i for i in range(1, len(raw)) if raw[i, 0] != raw[i - 1, 0]]
    assert len(changes) >= 15
    late = []
    for i in changes:
        shown = np.flatnonzero(smoothed[i] == raw[i, 0])
        # Shown by the 5th frame of the new sign, and from then on.
        if not len(shown) or shown[0] > 4 or not (smoothed[i, shown[0] :] == raw[i, 0]).all():
            late.append((i, smoothed[i].tolist(), int(raw[i, 0])))
    assert len(late) <= 1, late  # one borderline (low-confidence) image may be slower
    # ... and the smoothing is real: on the first frame of a change the old label still shows.
    assert np.mean([smoothed[i, 0] == raw[i - 1, 0] for i in changes]) >= 0.5


def test_default_min_confidence_shows_no_sign_below_threshold(
    video: dict, exported_dir: Path, tmp_path: Path
) -> None:
    """Without --min-confidence: the value calibrated at training time, from manifest.json."""
    no_sign = json.loads((exported_dir / "manifest.json").read_text())["no_sign"]
    assert no_sign["calibrated"], no_sign  # python -m train calibrated it; export carried it
    threshold = no_sign["min_confidence"]
    log = tmp_path / "frames.csv"
    proc = _webcam(
        "--model", str(exported_dir / "tflite-int8.tflite"), "--source", str(video["path"]),
        "--headless", "--log", str(log), "--max-frames", "40",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"min confidence {threshold:g} (calibrated)" in proc.stdout, proc.stdout
    rows = _read_log(log)
    assert len(rows) == 40 and "ended: --max-frames 40" in proc.stdout
    for r in rows:
        assert (r["label"] == "") == (float(r["confidence"]) < threshold), r


def test_camera_that_cannot_be_opened(exported_dir: Path) -> None:
    proc = _webcam("--model", str(exported_dir / "tflite-int8.tflite"), "--camera", "99",
                   "--headless")  # fmt: skip
    assert_user_error(proc, "camera 99", "cannot be opened")
    # Nothing else: OpenCV's backend probing is silenced (LiteRT's one INFO line aside).
    others = [ln for ln in proc.stderr.splitlines() if not ln.startswith(("error:", "INFO:"))]
    assert others == [], proc.stderr


def test_camera_that_stops_delivering_frames(
    video: dict, exported_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A camera whose frames stop: retried for retry_s, then summary, complete log, exit 1.

    The "camera" is a real cv2.VideoCapture on the test video: after its last frame every read
    fails, as an unplugged USB camera's do.
    """
    from runtime.sources import CameraSource, FramesStopped
    from runtime.webcam import WebcamSettings, run

    log = tmp_path / "camera.csv"
    camera = CameraSource(7, retry_s=0.3, capture=cv2.VideoCapture(str(video["path"])))
    settings = WebcamSettings(
        model=str(exported_dir / "tflite-int8.tflite"), headless=True, log=str(log), retry_s=0.3
    )
    t0 = time.monotonic()
    with pytest.raises(FramesStopped) as info:
        run(settings, source=camera)
    waited = time.monotonic() - t0
    assert info.value.exit_code == 1
    assert "camera 7: no frame for 0.3 s after 192 frames" in str(info.value)
    assert info.value.summary.frames == 192
    assert len(_read_log(log)) == 192
    assert "ended: camera stopped delivering frames" in capsys.readouterr().out
    assert waited >= 0.3


@pytest.mark.parametrize("kind", ["truncated", "wrong-shape"])
def test_bad_model_is_one_line_error(
    kind: str, exported_dir: Path, video: dict, tmp_path: Path
) -> None:
    if kind == "truncated":
        path = tmp_path / "cut.tflite"
        data = (exported_dir / "tflite-int8.tflite").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        from tests.test_runtime import _wrong_shape_onnx

        path = tmp_path / "wrong.onnx"
        _wrong_shape_onnx(path)
    log = tmp_path / "never.csv"
    proc = _webcam("--model", str(path), "--source", str(video["path"]), "--headless",
                   "--log", str(log))  # fmt: skip
    assert_user_error(proc, str(path))
    assert not log.exists() and not list(tmp_path.glob(".never*"))


def test_folder_source_skips_unreadable_images(
    video: dict, exported_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "frames"
    shutil.copytree(video["images"], folder)
    names = sorted(p.name for p in folder.iterdir())
    bad = folder / names[3]
    bad.write_bytes(b"\xff\xd8 this is not really a JPEG")
    log = tmp_path / "folder.csv"
    proc = _webcam("--model", str(exported_dir / "tflite-int8.tflite"), "--source", str(folder),
                   "--headless", "--log", str(log), "--smooth", "0")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("warning:")]
    assert warnings == [f"warning: skipping {bad}: not a readable image"]
    frames = [int(r["frame"]) for r in _read_log(log)]
    assert frames == [i for i in range(len(names)) if i != 3]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_keeps_log_and_prints_summary(
    sig: int, exported_dir: Path, signs_data: Path, tmp_path: Path
) -> None:
    """Ctrl-C (or a service stop) ends the run cleanly: summary, complete log, exit 0."""
    path = tmp_path / "long.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (160, 120))
    frame = backdrop(120, 160)
    for _ in range(N_LONG):
        writer.write(frame)
    writer.release()
    log = tmp_path / "long.csv"
    model = str(exported_dir / "tflite-int8.tflite")
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.webcam", "--model", model, "--source", str(path),
         "--headless", "--log", str(log)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        for line in proc.stdout:  # wait until the loop is about to start
            if line.startswith("runtime:"):
                break
        time.sleep(0.3)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    frames = [int(r["frame"]) for r in _read_log(log)]
    assert 0 < len(frames) < N_LONG, "the run ended before the signal: make the video longer"
    assert frames == list(range(len(frames)))
    reason = "interrupted (Ctrl-C)" if sig == signal.SIGINT else "terminated (SIGTERM)"
    assert f"{len(frames)} frames in" in out and f"ended: {reason}" in out
    assert "Traceback" not in err


def test_default_model_comes_from_artifacts_export(
    video: dict, exported_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "artifacts").mkdir()
    shutil.copytree(exported_dir, tmp_path / "artifacts" / "export")
    proc = _webcam("--source", str(video["path"]), "--headless", "--max-frames", "3",
                   cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    started = "model: artifacts/export/tflite-int8.tflite (tflite-int8, mirror-averaged, export"
    assert f"{started} status passed" in proc.stdout
    proc = _webcam("--source", str(video["path"]), "--headless", cwd=tmp_path / "artifacts")
    assert_user_error(proc, "python -m export")


def test_bad_flags_and_sources(video: dict, exported_dir: Path, tmp_path: Path) -> None:
    model = str(exported_dir / "tflite-int8.tflite")
    src = str(video["path"])
    assert_user_error(_webcam("--model", model, "--source", str(tmp_path / "nope.avi"),
                              "--headless"), "nope.avi", "no such")  # fmt: skip
    junk = tmp_path / "junk.avi"
    junk.write_text("not a video")
    assert_user_error(_webcam("--model", model, "--source", str(junk), "--headless"), "junk.avi")
    assert_user_error(_webcam("--model", model, "--source", src, "--headless", "--roi", "600"),
                      "--roi 600", "640x480")  # fmt: skip
    assert_user_error(_webcam("--model", model, "--source", src, "--headless", "--smooth", "1"),
                      "--smooth")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.run(
        [sys.executable, "-m", "runtime.webcam", "--model", model, "--source", src],
        capture_output=True, text=True, cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )  # fmt: skip
    assert_user_error(proc, "no display", "--headless")


@pytest.fixture
def xvfb_display() -> Iterator[str]:
    """A private X display (Xvfb), for the window path; skipped where Xvfb is not installed."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb not installed (apt-get install xvfb): the window path is not tested")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write_fd)
    with os.fdopen(read_fd) as fh:
        number = fh.readline().strip()
    try:
        assert number, "Xvfb did not report a display"
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_window_runs_under_a_real_x_server(
    xvfb_display: str, video: dict, exported_dir: Path, tmp_path: Path
) -> None:
    """The window path (Qt highgui) draws and paces frames; keys are not exercised here."""
    log = tmp_path / "window.csv"
    proc = _webcam(
        "--model", str(exported_dir / "tflite-int8.tflite"), "--source", str(video["path"]),
        "--max-frames", "20", "--log", str(log), "--mirror",
        env={"DISPLAY": xvfb_display},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = _read_log(log)
    assert len(rows) == 20
    # A window was really drawn: display time is measured, and the video is paced at its
    # 30 fps (headless it runs at 100+ fps here); the lower bound allows for a loaded machine.
    assert all(float(r["display_ms"]) > 0 for r in rows)
    assert re.search(r"^display\s+[\d.]+", proc.stdout, re.M), proc.stdout
    fps = float(re.search(r"mean ([\d.]+) FPS", proc.stdout).group(1))
    assert 5 <= fps <= 40, fps
