"""Capture of the user's samples: headless from a real video file, bad requests, unwritable
folders, and the burst timing on the video's own clock."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.capture import MAX_COUNT, CaptureBusy, CaptureError, Capturer, count_samples
from tests.helpers import assert_user_error, run_module
from tests.web_helpers import (
    COLOURS,
    ROI,
    Served,
    colour_frame,
    tiny_colour_model,
    wait_for,
    write_colour_video,
)

NAME = re.compile(r"^(\d{8}-\d{6}-\d{3})_(\d{3})\.jpg$")


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("capture")
    return {
        "model": tiny_colour_model(out / "tiny.onnx"),
        # 2 s of red, 2 s of green, 2 s of blue at 30 fps
        "video": write_colour_video(out / "rgb.avi", [0, 1, 2], 60),
    }


def _capture(parts: dict, *args: str):
    return run_module(
        "runtime.webcam", "--model", str(parts["model"]), "--source", str(parts["video"]),
        "--headless", *args, timeout=120,
    )  # fmt: skip


def test_headless_capture_from_a_video_file(parts: dict, tmp_path: Path) -> None:
    out = tmp_path / "captures"
    (out / "1").mkdir(parents=True)
    cv2.imwrite(str(out / "1" / "earlier.jpg"), np.zeros((8, 8, 3), np.uint8))
    proc = _capture(
        parts, "--capture-label", "1", "--capture-count", "12", "--capture-countdown", "2.2",
        "--capture-dir", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "ended: capture done" in proc.stdout
    assert f"captured 12 samples of class 1 in {out}/1" in proc.stdout
    files = sorted(p for p in (out / "1").iterdir() if p.name != "earlier.jpg")
    assert len(files) == 12, files
    names = [NAME.match(p.name) for p in files]
    assert all(names), files
    assert len({m.group(1) for m in names}) == 1  # one burst, one timestamp
    assert [int(m.group(2)) for m in names] == list(range(12))
    # Countdown 2.2 s then one sample per 0.1 s of video: frames 66, 69, ... 99, all green,
    # so the run ends at frame 100 whatever the processing speed.
    assert "100 frames in" in proc.stdout, proc.stdout
    for p in files:
        crop = cv2.imread(str(p))
        assert crop.shape == (ROI[2], ROI[2], 3)  # the ROI's own resolution
        assert np.abs(crop.mean((0, 1)) - COLOURS[1]).max() < 8  # the ROI, not the backdrop
    assert sorted(p.name for p in out.iterdir()) == ["1"]  # nothing else, no temp files


def test_headless_capture_that_the_video_cannot_fill(parts: dict, tmp_path: Path) -> None:
    proc = _capture(
        parts, "--capture-label", "0", "--capture-count", "100", "--capture-countdown", "0",
        "--capture-dir", str(tmp_path),
    )  # fmt: skip
    # 180 frames at 30 fps give 60 samples at 0.1 s: exit 1 after the summary, one error line.
    assert_user_error(proc, "capture: 60 of 100 samples of class 0", "source ended", code=1)
    assert "ended: end of source" in proc.stdout
    assert len(list((tmp_path / "0").glob("*.jpg"))) == 60


def test_unwritable_capture_dir_is_one_line_and_exit_1(parts: dict, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the capture folder should be\n")
    proc = _capture(
        parts, "--capture-label", "2", "--capture-count", "5", "--capture-countdown", "0",
        "--capture-dir", str(blocker),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("warning: capture")]
    assert len(warnings) == 1, proc.stderr
    assert str(blocker) in warnings[0] and "stopped after 0 of 5" in warnings[0]
    assert "Traceback" not in proc.stderr
    assert blocker.read_text().startswith("a file")


def test_unwritable_capture_keeps_the_served_loop_running(parts: dict, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    s = Served(
        "--model", str(parts["model"]), "--source", str(parts["video"]), "--headless", "--loop",
        "--serve", "127.0.0.1:0", "--capture-dir", str(blocker / "captures"),
        "--capture-countdown", "0",
    )  # fmt: skip
    try:
        assert s.post_json("/api/capture", {"label": 4, "count": 3})[0] == 202
        state = wait_for(lambda: (st := s.state())["capture"]["error"] and st, timeout=10)
        assert state and "cannot write" in state["capture"]["error"], state
        f0 = state["frame"]
        assert wait_for(lambda: s.state()["frame"] > f0 + 15, timeout=5)  # still running
        assert s.post_json("/api/capture", {"label": 4, "count": 3})[0] == 202  # can retry
    finally:
        code, out, err = s.stop()
    assert code == 0, err
    assert len([ln for ln in err.splitlines() if "warning: capture" in ln]) >= 1


@pytest.mark.parametrize(
    "flags, needle",
    [
        (("--capture-label", "6"), "--capture-label 6"),
        (("--capture-label", "-1"), "--capture-label -1"),
        (("--capture-label", "1", "--capture-count", "0"), "--capture-count 0"),
        (("--capture-count", str(MAX_COUNT + 1)), f"--capture-count {MAX_COUNT + 1}"),
        (("--capture-countdown", "-1"), "--capture-countdown -1"),
    ],
)
def test_bad_capture_flags(parts: dict, flags: tuple[str, ...], needle: str) -> None:
    assert_user_error(_capture(parts, *flags), needle)


def test_capturer_bursts_on_the_loop_clock(tmp_path: Path) -> None:
    cap = Capturer(tmp_path, countdown_s=0.5, interval_s=0.1)
    frame = colour_frame(COLOURS[2])
    with pytest.raises(CaptureError):
        cap.start(6, 3)
    with pytest.raises(CaptureError):
        cap.start(1, MAX_COUNT + 1)
    cap.start(2, 3)
    with pytest.raises(CaptureBusy):
        cap.start(0, 3)
    written = []
    for i in range(60):  # 30 fps
        st = cap.status()
        path = cap.on_frame(frame, ROI, i / 30)
        if path is not None:
            written.append(i)
        if i == 3:
            assert st.state == "countdown" and 0.35 < st.countdown_s <= 0.5
    assert written == [15, 18, 21], written  # countdown 0.5 s, then every 0.1 s
    st = cap.status()
    assert (st.state, st.taken, st.bursts, st.counts) == ("idle", 3, 1, [0, 0, 3, 0, 0, 0])
    assert count_samples(tmp_path) == [0, 0, 3, 0, 0, 0]
    assert Capturer(tmp_path).status().counts == [0, 0, 3, 0, 0, 0]  # counts survive a restart


def test_capture_of_a_mirrored_view_saves_what_the_model_sees(tmp_path: Path) -> None:
    frame = colour_frame(COLOURS[0])
    x, y, side = ROI
    frame[y : y + side, x : x + 10] = (255, 255, 255)  # a white stripe on the ROI's left edge
    cap = Capturer(tmp_path, countdown_s=0)
    cap.start(0, 1)
    path = cap.on_frame(frame, ROI, 0.0, mirror=True)
    crop = cv2.imread(str(path))
    assert crop[:, -5:].mean() > 240 and crop[:, :5].mean() < 200  # flipped: stripe on the right


def _xwd_to_bgr(path: Path) -> np.ndarray:
    """Xvfb's -fbdir screen (an XWD file, 24-bit TrueColor in 32-bit pixels) as a BGR image."""
    data = path.read_bytes()
    head = np.frombuffer(data[:100], ">u4")
    header_size, width, height = int(head[0]), int(head[4]), int(head[5])
    bytes_per_line, ncolors = int(head[12]), int(head[19])
    start = header_size + 12 * ncolors
    rows = np.frombuffer(data[start : start + bytes_per_line * height], np.uint8)
    pixels = rows.reshape(height, bytes_per_line)[:, : width * 4].reshape(height, width, 4)
    return np.ascontiguousarray(pixels[:, :, :3])  # little-endian B, G, R, pad


@pytest.fixture
def xvfb_fb(tmp_path: Path):
    """A private X display whose screen can be read as a file (Xvfb -fbdir)."""
    import os
    import shutil
    import subprocess

    if shutil.which("Xvfb") is None or shutil.which("xdotool") is None:
        pytest.skip("apt-get install xvfb xdotool: the window keys are not tested")
    fb = tmp_path / "fb"
    fb.mkdir()
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "800x600x24", "-nolisten", "tcp",
         "-fbdir", str(fb)],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write_fd)
    with os.fdopen(read_fd) as fh:
        number = fh.readline().strip()
    try:
        yield f":{number}", fb / "Xvfb_screen0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow  # a real window under Xvfb: ~3 s
def test_window_keys_record_a_burst_with_countdown_and_counts(
    xvfb_fb, parts: dict, tmp_path: Path
) -> None:
    """Key 2 in the real window (Qt under Xvfb, keys sent with xdotool): a countdown, then a
    burst of 3 into <capture-dir>/2, with the counts on screen (screenshots: test-artifacts/)."""
    import os
    import subprocess
    import sys
    import time

    from tests.helpers import ROOT

    display, screen = xvfb_fb
    env = {**os.environ, "DISPLAY": display, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "captures"
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.webcam", "--model", str(parts["model"]),
         "--source", str(parts["video"]), "--loop", "--capture-dir", str(out),
         "--capture-count", "3", "--capture-countdown", "1.5"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    shots = ROOT / "test-artifacts"
    shots.mkdir(exist_ok=True)

    def xdo(*args: str) -> str:
        return subprocess.run(
            ["xdotool", *args], env=env, capture_output=True, text=True, timeout=30, check=True
        ).stdout

    try:
        window = xdo("search", "--sync", "--name", "signs-edge").split()[0]
        xdo("windowfocus", "--sync", window)
        xdo("key", "2")
        time.sleep(0.6)
        cv2.imwrite(str(shots / "window-capture-countdown.png"), _xwd_to_bgr(screen))
        assert wait_for(lambda: len(list((out / "2").glob("*.jpg"))) == 3, timeout=15)
        time.sleep(0.3)
        cv2.imwrite(str(shots / "window-capture-done.png"), _xwd_to_bgr(screen))
        xdo("key", "q")
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert "ended: quit (q/ESC)" in stdout
    assert len(list((out / "2").glob("*.jpg"))) == 3
