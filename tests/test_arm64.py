"""python -m benchmarks.arm64: the runtime in an emulated Raspberry Pi 4 userland matches native.

The main test runs the real command (qemu-aarch64, Debian bookworm arm64, aarch64 wheels) on the
session's exported models. It needs qemu-user-static; without it the test fails, never skips:
.ci/run installs it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks.arm64.compare import FIND_HAND, compare_logs, compare_probs, tolerance, verdict
from benchmarks.arm64.core import PALM_CONFIDENCE_ATOL
from benchmarks.arm64.rootfs import QEMU_NAMES, cache_key
from benchmarks.arm64.settings import CPUS, Arm64Settings
from runtime.dataset import DEFAULT_LABELS
from runtime.manifest import MANIFEST_NAME, Manifest, ModelEntry, NoSign, Quantization, Status
from tests.helpers import assert_user_error, run_module

FRAMES = 60  # two seconds of video: every model on every frame under emulation stays ~1-2 min


def _require_qemu() -> None:
    if not any(shutil.which(name) for name in QEMU_NAMES):
        pytest.fail(
            "qemu-aarch64-static is not installed; install it with "
            "`sudo apt-get install -y qemu-user-static` (.ci/run does)"
        )


def test_emulated_cortex_a72_matches_native(
    exported_dir: Path, signs_data: Path, palm_model: Path
) -> None:
    _require_qemu()
    proc = run_module(
        "benchmarks.arm64",
        "--models",
        str(exported_dir),
        "--data",
        str(signs_data),
        "--cpu",
        "cortex-a72",
        "--frames",
        str(FRAMES),
        "--palm-model",
        str(palm_model),
        timeout=1800,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"arm64 cortex-a72: 6 models, 120 images, {FRAMES} frames: identical.*", last
    ), out
    # Decoding and preprocessing are bit-identical, and every model and command was compared.
    assert "inputs: images bit-identical" in out, out
    assert "frames identical (FFV1 decode)" in out, out
    for name in ("tflite-fp32", "tflite-fp16", "tflite-dynamic", "tflite-int8", "onnx-fp32"):
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(name))
        assert "runtime.evaluate identical" in line, line
    # The webcam logs were compared: exit 0 means identical labels; confidences may move by
    # the allowed int8 step on a borderline frame (seen once on benchmarks.video's backdrop).
    webcam = rf"runtime\.webcam --log \(tflite-int8\.tflite, {FRAMES} frames\)(: | labels)"
    assert re.search(webcam, out), out
    assert "emulated:" in out and "says nothing about a Raspberry Pi's speed" in out, out
    # --find-hand ran on both sides: the palm detector and the hand put on the wall, the same
    # label on every frame (exit 0), its confidences within the float detector's allowance.
    palm = (
        rf"runtime\.webcam --find-hand --log \(tflite-int8\.tflite, {FRAMES} frames\)(: | labels)"
    )
    assert re.search(palm, out), out
    assert "--find-hand confidence max |diff|" in last, last


def test_missing_models_is_a_one_line_error(tmp_path: Path, signs_data: Path) -> None:
    proc = run_module("benchmarks.arm64", "--models", str(tmp_path), "--data", str(signs_data))
    assert_user_error(proc, str(tmp_path / MANIFEST_NAME), "no export manifest", "python -m export")
    _one_model_manifest(tmp_path, write_file=False)
    proc = run_module("benchmarks.arm64", "--models", str(tmp_path), "--data", str(signs_data))
    assert_user_error(proc, str(tmp_path / MANIFEST_NAME), "none of its model files exist")


def _one_model_manifest(folder: Path, write_file: bool = True) -> None:
    """A manifest listing one int8 TFLite file (empty: qemu is checked before loading)."""
    model = folder / "model.tflite"
    if write_file:
        model.write_bytes(b"")
    m = Manifest(
        folder / MANIFEST_NAME,
        list(DEFAULT_LABELS),
        [ModelEntry("tflite-int8", model, Status.PASSED, Quantization.INT8)],
        NoSign(),
    )
    m.path.write_text(m.to_json())


def test_missing_qemu_says_how_to_install_it(tmp_path: Path, signs_data: Path) -> None:
    _one_model_manifest(tmp_path)
    proc = run_module(
        "benchmarks.arm64",
        "--models",
        str(tmp_path),
        "--data",
        str(signs_data),
        "--cache",
        str(tmp_path / "cache"),
        env={"PATH": str(tmp_path / "no-such-bin")},
    )
    assert_user_error(proc, "qemu-aarch64-static not found", "apt-get install -y qemu-user-static")


@pytest.mark.slow  # starts building the arm64 userland
def test_unreachable_registry_fails_and_leaves_no_cache(tmp_path: Path, signs_data: Path) -> None:
    _require_qemu()
    _one_model_manifest(tmp_path)
    cache = tmp_path / "cache"
    dead = "http://127.0.0.1:9"  # discard port: connection refused
    proc = run_module(
        "benchmarks.arm64",
        "--models",
        str(tmp_path),
        "--data",
        str(signs_data),
        "--cache",
        str(cache),
        env={"http_proxy": dead, "https_proxy": dead, "HTTP_PROXY": dead, "HTTPS_PROXY": dead},
        timeout=600,
    )
    assert_user_error(proc, "cannot build the Debian bookworm arm64 userland", "Failed to fetch")
    assert list(cache.iterdir()) == [], "a failed build must leave nothing that looks complete"


def test_int8_outputs_may_move_one_step_but_not_two() -> None:
    step = 1 / 256
    native = np.array([[0.5, 0.25, 0.25, 0, 0, 0]] * 3, dtype=np.float32)
    moved = native.copy()
    moved[1, 1] += step
    assert compare_probs("x", native, moved, ["a", "b", "c"], step * 1.000001).ok
    moved[1, 1] += step
    check = compare_probs("x", native, moved, ["a", "b", "c"], step * 1.000001)
    assert not check.ok and check.differing == 1


def test_one_step_of_a_non_power_of_two_scale_is_one_step() -> None:
    """A [0, 1] int8 output quantized with scale 1/255: one step apart, dequantized in float32,
    is within a tolerance of one step, and two steps are not."""
    info = {"output": {"dtype": "int8", "scale": 1 / 255}}
    kind, tol, step = tolerance(None, info, Arm64Settings(int8_steps=1))
    assert kind == "int8" and step == 1 / 255
    q = np.arange(-128, 128, dtype=np.int32)
    native = ((q[:, None] + 128) * np.float32(1 / 255)).astype(np.float32)
    moved = ((q[:, None] + 129) * np.float32(1 / 255)).astype(np.float32)
    names = [str(i) for i in range(len(q))]
    assert np.abs(moved - native).max() > step  # float32 rounding: a hair over one scale
    assert compare_probs("x", native, moved, names, tol).ok
    assert not compare_probs("x", native, moved + np.float32(1 / 255), names, tol).ok
    # A QDQ model's float output: two steps of its ~1/255 scale are two steps (measured on the
    # six-view onnx-int8 under the emulated Cortex-A72: 0.00783).
    qdq = ModelEntry("onnx-int8", Path("m.onnx"), Status.PASSED, Quantization.INT8)
    floats = {"output": {"dtype": "float32", "scale": 0.0}}
    kind, two, _ = tolerance(qdq, floats, Arm64Settings(int8_steps=2))
    assert kind == "quantized" and 0.00783 < two < 3 / 255
    assert tolerance(qdq, floats, Arm64Settings(int8_steps=1))[1] < 0.00783


def test_a_label_change_fails_even_within_tolerance() -> None:
    native = np.array([[0.5, 0.5 - 1e-6, 0, 0, 0, 0]], dtype=np.float32)
    emulated = np.array([[0.5 - 1e-6, 0.5, 0, 0, 0, 0]], dtype=np.float32)
    check = compare_probs("images", native, emulated, ["3_x.jpg"], 1e-5)
    assert not check.ok
    assert "3_x.jpg: 0 vs 1" in check.describe()


def test_webcam_logs_compare_labels_per_frame(tmp_path: Path) -> None:
    header = "frame,label,confidence,capture_ms\n"
    (tmp_path / "a.csv").write_text(header + "0,3,0.9000,1.0\n1,,0.4000,1.0\n")
    (tmp_path / "b.csv").write_text(header + "0,3,0.9000,9.0\n1,2,0.5000,9.0\n")
    check = compare_logs("log", tmp_path / "a.csv", tmp_path / "b.csv", 1e-4)
    assert not check.ok and check.label_diffs == ["frame 1:  vs 2"]


def test_find_hand_confidences_may_move_but_labels_may_not(tmp_path: Path) -> None:
    """The palm finder's run: its float detector moves a square by a pixel now and then on Arm,
    so its confidences get an allowance; a label change still fails."""
    header = "frame,label,confidence\n"
    (tmp_path / "a.csv").write_text(header + "0,3,0.9000\n1,,0.4000\n")
    (tmp_path / "b.csv").write_text(header + "0,3,0.8730\n1,,0.4100\n")
    moved = compare_logs("palm", tmp_path / "a.csv", tmp_path / "b.csv", PALM_CONFIDENCE_ATOL)
    moved.kind = FIND_HAND
    assert moved.ok and not moved.identical
    tolerances = {"quantized": 1 / 255, "float": 1e-5, FIND_HAND: PALM_CONFIDENCE_ATOL}
    text = verdict([moved], tolerances)
    assert text.startswith("identical labels") and "--find-hand confidence max |diff| 0.027" in text
    (tmp_path / "c.csv").write_text(header + "0,5,0.9000\n1,,0.4000\n")
    flipped = compare_logs("palm", tmp_path / "a.csv", tmp_path / "c.csv", PALM_CONFIDENCE_ATOL)
    assert not flipped.ok and flipped.label_diffs == ["frame 0: 3 vs 5"]


def test_a_missing_palm_detector_is_a_one_line_error(tmp_path: Path, signs_data: Path) -> None:
    missing = tmp_path / "palm.tflite"
    proc = run_module("benchmarks.arm64", "--data", str(signs_data), "--palm-model", str(missing))
    assert_user_error(proc, "--palm-model", str(missing), "no such file")


def test_cpuinfo_describes_the_pi_cores() -> None:
    a72, a76 = CPUS["cortex-a72"].cpuinfo(), CPUS["cortex-a76"].cpuinfo()
    assert a72.count("CPU part\t: 0xd08") == 4 and "CPU implementer\t: 0x41" in a72
    assert a76.count("CPU part\t: 0xd0b") == 4 and "asimddp" in a76
    assert "Raspberry Pi 4" in a72 and "Raspberry Pi 5" in a76


def test_cache_key_changes_with_the_requirements() -> None:
    assert cache_key(["numpy==2.4.6"]) != cache_key(["numpy==2.4.5"])
    assert cache_key(["numpy==2.4.6"]) == cache_key(["numpy==2.4.6"])
