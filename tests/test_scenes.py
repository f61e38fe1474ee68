"""The scene bench and the hand search: seeded scenes, exact windows, and the trained model's
behaviour on an empty scene and on a placed hand (the session's exported int8 model)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.scenes.make import FRAME_H, FRAME_W, make_scenes, read_scenes
from runtime.handsearch import HandSearch
from runtime.preprocess import preprocess
from tests.helpers import run_module


def _frames(folder: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(folder.glob("frame-*.png"))]


@pytest.mark.slow  # masks and composites two scene sets: ~10 s
def test_scenes_are_deterministic_under_a_seed(signs_data: Path, tmp_path: Path) -> None:
    a = make_scenes(tmp_path / "a", seed=5, count=6, empty=0.3, signs=str(signs_data))
    b = make_scenes(tmp_path / "b", seed=5, count=6, empty=0.3, signs=str(signs_data))
    c = make_scenes(tmp_path / "c", seed=6, count=6, empty=0.3, signs=str(signs_data))
    assert _frames(a) == _frames(b)
    assert _frames(a) != _frames(c)
    meta, labels = read_scenes(a)
    assert meta["split"] == "test" and len(labels) == 6
    for lab in labels:
        frame = cv2.imread(str(a / lab.file))
        assert frame.shape == (FRAME_H, FRAME_W, 3)
        if lab.label is not None:  # the box lies inside the frame
            x, y, w, h = lab.box()
            assert min(x, y) >= 0 and x + w <= FRAME_W and y + h <= FRAME_H


def test_make_refuses_to_replace_a_folder_that_is_not_scenes(
    signs_data: Path, tmp_path: Path
) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    proc = run_module(
        "benchmarks.scenes", "make", "--out", str(tmp_path), "--count", "1",
        env={"SIGNS_DATA": str(signs_data)},
    )  # fmt: skip
    assert proc.returncode == 2 and "not a scene folder" in proc.stderr, proc.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_search_windows_are_the_preprocessed_boxes() -> None:
    """Each window the search classifies equals runtime.preprocess of its box (within one grey
    level of rounding), so the search and the fixed ROI feed the model the same way."""
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (FRAME_H, FRAME_W, 3), dtype=np.uint8), (5, 5), 0)
    search = HandSearch(backend=None)
    for grid in search.grids(FRAME_W, FRAME_H):
        windows = grid.windows(frame)
        assert len(windows) == len(grid.boxes) == grid.nx * grid.ny
        some = np.array([0, grid.nx, len(windows) - 1])  # the skin proposal's subset path
        assert np.array_equal(grid.windows(frame, which=some), windows[some])
        for i in rng.choice(len(windows), 5, replace=False):
            x, y, s = grid.boxes[i]
            assert x + s <= FRAME_W and y + s <= FRAME_H
            want = preprocess(frame[y : y + s, x : x + s], bgr=True).astype(int)
            assert np.abs(windows[i].astype(int) - want).max() <= 1


# --- with the session's trained model -------------------------------------------------------


@pytest.fixture(scope="module")
def bench(signs_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twenty test-split scenes (seed 11): SIGNS test hands on the test backgrounds."""
    out = tmp_path_factory.mktemp("scenes") / "s11"
    return make_scenes(out, seed=11, count=20, empty=0.5, signs=str(signs_data))


def _pipeline(exported_dir: Path, search: bool):
    """The live loop's pipeline as ``runtime.webcam`` builds it for the default file: the
    model's own calibrated min-confidence and search threshold (manifest.json)."""
    from runtime.backends import load_backend
    from runtime.handsearch import SearchConfig
    from runtime.modelinfo import describe_model
    from runtime.pipeline import FramePipeline

    path = exported_dir / "tflite-int8.tflite"
    info = describe_model(path)
    backend = load_backend(path, threads=1)
    min_confidence, _ = info.no_sign.resolve(None)
    threshold, origin = info.hand_search.resolve(None)
    assert origin == "calibrated", origin  # the session's export carries its calibration
    config = SearchConfig().with_threshold(threshold)
    return FramePipeline(
        backend,
        min_confidence=min_confidence,
        search=HandSearch(backend, config) if search else None,
    )


def _hold(pipe, frame: np.ndarray, frames: int = 5):
    """A still scene held for ``frames`` frames with the default smoothing (a fresh start)."""
    pipe.smoother.reset()
    if pipe.search is not None:
        pipe.search.reset()
    for _ in range(frames):
        res = pipe.step(frame)
    return res


# The classifier scan does not reach these with today's models (issue 13 report: on the test
# scenes the best model found 0.26 of the hands and kept "no sign" on 0.67 of empty frames).
# strict: when a model makes them pass, pytest says so and the marker goes.
SEARCH_FALLS_SHORT = pytest.mark.xfail(
    strict=True, reason="--find-hand: the classifier scan falls short with current models"
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "search",
    # The centred box passes with the mirror-averaged 150-epoch default model (the 60-epoch
    # one showed a sign on 3 of these scenes; a strict xfail until then).
    [pytest.param(False), pytest.param(True, marks=SEARCH_FALLS_SHORT)],
    ids=["centred-roi", "find-hand"],
)
def test_empty_scenes_show_no_sign(exported_dir: Path, bench: Path, search: bool) -> None:
    _, labels = read_scenes(bench)
    pipe = _pipeline(exported_dir, search)
    shown = [
        _hold(pipe, cv2.imread(str(bench / lab.file))).label for lab in labels if lab.label is None
    ]
    assert len(shown) >= 8
    # At most one of the empty scenes may show a sign (the target is 0.95).
    assert sum(s is not None for s in shown) <= 1, shown


@pytest.mark.slow
@SEARCH_FALLS_SHORT
def test_placed_hand_is_found_and_its_box_contains_it(exported_dir: Path, bench: Path) -> None:
    _, labels = read_scenes(bench)
    pipe = _pipeline(exported_dir, search=True)
    hands = [lab for lab in labels if lab.label is not None]
    assert len(hands) >= 6
    hits = correct = 0
    for lab in hands:
        res = _hold(pipe, cv2.imread(str(bench / lab.file)))
        x, y, w, h = lab.box()
        bx, by, bs = res.box
        cx, cy = bx + bs / 2, by + bs / 2
        hits += bool(res.found) and x <= cx <= x + w and y <= cy <= y + h
        correct += res.label == lab.label
    # Most placed hands are found (box centre on the hand) and read correctly.
    assert hits >= 0.7 * len(hands), (hits, len(hands))
    assert correct >= 0.6 * len(hands), (correct, len(hands))


@pytest.mark.slow
def test_find_hand_runs_from_a_video_file(
    exported_dir: Path, signs_data: Path, tmp_path: Path
) -> None:
    """The webcam loop with --find-hand on an MJPG video of scenes: every frame is processed
    and the summary is printed (the search is a flag of the real loop, not a bench-only path)."""
    video = tmp_path / "scenes.avi"
    make_scenes(tmp_path / "s", seed=4, count=3, signs=str(signs_data), video=str(video), hold=4)
    proc = run_module(
        "runtime.webcam", "--source", str(video), "--headless", "--find-hand",
        "--model", str(exported_dir / "tflite-int8.tflite"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "12 frames" in proc.stdout, proc.stdout
    assert "hand search" in proc.stdout, proc.stdout
