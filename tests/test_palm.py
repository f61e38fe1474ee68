"""The palm detector behind --find-hand: the fetch from PyPI, the decoding, and what it finds on
real scene frames (SIGNS test hands placed on the test backgrounds, and empty scenes)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.scenes.make import make_scenes, read_scenes
from runtime.errors import ModelError, SignsError
from runtime.fsutil import file_sha256
from runtime.palm.detector import MIN_SCORE, NUM_ANCHORS, PalmDetector, anchors
from runtime.palm.fetch import SHA256, fetch
from tests.helpers import assert_user_error, run_module


def test_fetch_writes_the_verified_file_once(palm_model: Path, tmp_path: Path) -> None:
    assert file_sha256(palm_model) == SHA256
    dest = tmp_path / "models" / "palm.tflite"
    assert fetch(dest) == (dest, True)
    stamp = dest.stat().st_mtime_ns
    assert fetch(dest) == (dest, False)  # a verified copy is kept, not fetched again
    assert dest.stat().st_mtime_ns == stamp and file_sha256(dest) == SHA256
    dest.write_bytes(b"corrupt")  # a damaged copy is replaced
    assert fetch(dest) == (dest, True) and file_sha256(dest) == SHA256
    assert sorted(p.name for p in dest.parent.iterdir()) == ["palm.tflite"]  # no temp files


def test_fetch_failure_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "palm.tflite"
    with pytest.raises(SignsError, match=r"pip download mediapipe==0\.0\.0 failed: "):
        fetch(dest, requirement="mediapipe==0.0.0")
    assert not dest.exists()
    proc = run_module("runtime.palm", "--out", str(tmp_path))
    assert_user_error(proc, str(tmp_path), "is a folder")


def test_bad_detector_files_are_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="python -m runtime.palm"):
        PalmDetector(tmp_path / "missing.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a TFLite model"):
        PalmDetector(junk)


def test_anchors_follow_mediapipe_layout() -> None:
    a = anchors()
    assert a.shape == (NUM_ANCHORS, 2)
    # The 24x24 grid (2 per cell) first, then the 12x12 grid (6 per cell).
    assert np.allclose(a[0], a[1]) and np.allclose(a[0], [0.5 / 24, 0.5 / 24])
    assert np.allclose(a[24 * 24 * 2], [0.5 / 12, 0.5 / 12])
    assert np.allclose(a[-1], [11.5 / 12, 11.5 / 12])


@pytest.fixture(scope="module")
def scenes(signs_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scene bench's val split, seed 11: validation hands on the val backgrounds (plainer
    than the test split's clutter, where README's bench measures it) and empty rooms."""
    out = tmp_path_factory.mktemp("palm-scenes") / "s11"
    return make_scenes(out, seed=11, count=20, split="val", empty=0.5, signs=str(signs_data))


def test_detector_finds_placed_hands_and_not_empty_rooms(scenes: Path, palm_model: Path) -> None:
    _, labels = read_scenes(scenes)
    det = PalmDetector(palm_model)
    found, empty_quiet, hands, empties = 0, 0, 0, 0
    for lab in labels:
        frame = cv2.imread(str(scenes / lab.file))
        palm = det.detect(frame)
        assert det.detect(frame) == palm  # deterministic
        assert np.hypot(*palm.up) == pytest.approx(1.0, abs=1e-4)
        if lab.label is None:
            empties += 1
            empty_quiet += palm.score < MIN_SCORE
            continue
        hands += 1
        x, y, w, h = lab.box()
        inside = x <= palm.centre[0] <= x + w and y <= palm.centre[1] <= y + h
        if palm.score >= MIN_SCORE and inside:
            found += 1
            assert 0.15 * w < palm.side < 0.8 * w  # a palm, not the whole picture
    assert hands >= 6 and empties >= 6
    assert found >= 0.7 * hands, (found, hands)
    assert empty_quiet >= 0.9 * empties, (empty_quiet, empties)
