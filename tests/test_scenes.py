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


def test_report_names_models_apart(tmp_path: Path) -> None:
    """Two runs' models of the same file name get names that tell them apart, not one row."""
    from benchmarks.scenes.report import resolve_models
    from runtime.errors import SignsError

    files = [tmp_path / run / "export" / "model.tflite" for run in ("s1", "s2")]
    for f in files:
        f.parent.mkdir(parents=True)
        f.write_bytes(b"")
    named = resolve_models([str(f) for f in files])
    assert [n for n, _ in named] == ["s1/export/model.tflite", "s2/export/model.tflite"]
    assert [f for _, f in named] == files
    with pytest.raises(SignsError, match="given twice"):
        resolve_models([str(files[0]), str(files[0])])


@pytest.mark.slow  # masks the 120 validation hands (cached after the first time)
def test_dev_scenes_put_validation_hands_on_training_backgrounds(
    signs_data: Path, tmp_path: Path
) -> None:
    from train.backgrounds import NATURAL_IMAGES

    dev = make_scenes(tmp_path / "dev", seed=7, count=8, split="dev", empty=0.4,
                      signs=str(signs_data))  # fmt: skip
    meta, labels = read_scenes(dev)
    assert meta["split"] == "dev" and meta["backgrounds"] == list(NATURAL_IMAGES["train"])
    assert {lab.source for lab in labels if lab.label is not None} == {"signs-val"}


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
    """Forty test-split scenes (seed 11): SIGNS test hands on the test backgrounds, 21 empty."""
    out = tmp_path_factory.mktemp("scenes") / "s11"
    return make_scenes(out, seed=11, count=40, empty=0.5, signs=str(signs_data))


def _pipeline(exported_dir: Path, finder: str | None, palm_model: Path | None = None):
    """The live loop's pipeline as ``runtime.webcam`` builds it for the default file: the
    model's own calibrated min-confidence and search threshold (manifest.json); ``finder``:
    ``--hand-finder`` (None: no ``--find-hand``)."""
    from runtime.backends import load_backend
    from runtime.handfinder import make_finder
    from runtime.modelinfo import describe_model
    from runtime.pipeline import FramePipeline

    path = exported_dir / "tflite-int8.tflite"
    info = describe_model(path)
    backend = load_backend(path, threads=1)
    min_confidence, _ = info.no_sign.resolve(None)
    threshold, origin = info.hand_search.resolve(None)
    assert origin == "calibrated", origin  # the session's export carries its calibration
    search = make_finder(backend, finder, threshold, palm_model) if finder else None
    return FramePipeline(backend, min_confidence=min_confidence, search=search)


def _hold(pipe, frame: np.ndarray, frames: int = 5):
    """A still scene held for ``frames`` frames with the default smoothing (a fresh start)."""
    pipe.smoother.reset()
    if pipe.search is not None:
        pipe.search.reset()
    for _ in range(frames):
        res = pipe.step(frame)
    return res


# The classifier scan does not keep "no sign" on empty frames with today's models (README,
# "Scene bench": 0.58-0.70 of the test scenes' empty frames). strict: when a model makes it
# pass, pytest says so and the marker goes.
SCAN_FALLS_SHORT = pytest.mark.xfail(
    strict=True, reason="--hand-finder scan: the classifier scan falls short with current models"
)
# The scan does not box 70% of these cluttered scenes' hands or read 60% of them right yet
# (README, "Scene bench": 0.42-0.54 of the hands read right).
NOT_YET = pytest.mark.xfail(
    strict=True, reason="--hand-finder scan: hands on cluttered scenes are not read well enough yet"
)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("finder", "wanted"),
    # The centred box: the seed-1 model shows "no sign" on 0.91-0.99 of the bench's 90 empty
    # scenes depending on the machine it was trained on (README); 21 scenes give a noisy
    # sample of that, so the bar is 0.85 here. The palm detector holds 0.95.
    [
        pytest.param(None, 0.85),
        pytest.param("palm", 0.95),
        pytest.param("scan", 0.95, marks=SCAN_FALLS_SHORT),
    ],
    ids=["centred-roi", "palm", "scan"],
)
def test_empty_scenes_show_no_sign(
    exported_dir: Path, bench: Path, palm_model: Path, finder: str | None, wanted: float
) -> None:
    _, labels = read_scenes(bench)
    pipe = _pipeline(exported_dir, finder, palm_model)
    shown = [
        _hold(pipe, cv2.imread(str(bench / lab.file))).label for lab in labels if lab.label is None
    ]
    assert len(shown) >= 16
    quiet = sum(s is None for s in shown)
    assert quiet >= wanted * len(shown), (quiet, len(shown), shown)


def _found_and_read(exported_dir: Path, scenes: Path, palm_model: Path, finder: str) -> None:
    """Most placed hands are found (the box's centre on the hand) and read correctly."""
    _, labels = read_scenes(scenes)
    pipe = _pipeline(exported_dir, finder, palm_model)
    hands = [lab for lab in labels if lab.label is not None]
    assert len(hands) >= 6
    hits = correct = 0
    for lab in hands:
        res = _hold(pipe, cv2.imread(str(scenes / lab.file)))
        x, y, w, h = lab.box()
        bx, by, bs = res.box
        cx, cy = bx + bs / 2, by + bs / 2
        hits += bool(res.found) and x <= cx <= x + w and y <= cy <= y + h
        correct += res.label == lab.label
    assert hits >= 0.7 * len(hands), (hits, len(hands))
    assert correct >= 0.6 * len(hands), (correct, len(hands))


@pytest.fixture(scope="module")
def plain_bench(signs_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Forty val-split scenes (seed 11): SIGNS validation hands, which the session's seed-1
    model never trained on, on the plainer val backgrounds."""
    out = tmp_path_factory.mktemp("scenes") / "val11"
    return make_scenes(out, seed=11, count=40, split="val", empty=0.5, signs=str(signs_data))


@pytest.mark.slow
@pytest.mark.parametrize("finder", ["palm", "scan"])
def test_placed_hand_on_a_plain_background_is_found_and_read(
    exported_dir: Path, plain_bench: Path, palm_model: Path, finder: str
) -> None:
    _found_and_read(exported_dir, plain_bench, palm_model, finder)


@pytest.fixture(scope="module")
def clutter_bench(signs_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eighty test-split scenes (seed 11): 40 SIGNS test hands on the test backgrounds, enough
    that one hand does not decide a 60% bar."""
    out = tmp_path_factory.mktemp("scenes") / "clutter11"
    return make_scenes(out, seed=11, count=80, empty=0.5, signs=str(signs_data))


@pytest.mark.slow
@pytest.mark.parametrize("finder", ["palm", pytest.param("scan", marks=NOT_YET)])
def test_placed_hand_on_clutter_is_found_and_read(
    exported_dir: Path, clutter_bench: Path, palm_model: Path, finder: str
) -> None:
    # The seed-1 model: the palm finder boxes 37 of the 40 hands and reads 27 right (34 and 27
    # with the whole frame as its only view; before the hand was put on the wall, 0.58 of them
    # read right on the first forty scenes); the scan boxes 24 and reads 21.
    _found_and_read(exported_dir, clutter_bench, palm_model, finder)


@pytest.mark.slow
@pytest.mark.parametrize("finder", ["palm", "scan"])
def test_find_hand_runs_from_a_video_file(
    exported_dir: Path, signs_data: Path, palm_model: Path, tmp_path: Path, finder: str
) -> None:
    """The webcam loop with --find-hand on an MJPG video of scenes: every frame is processed
    and the summary is printed (the search is a flag of the real loop, not a bench-only path).
    The palm finder reads the detector from where ``python -m runtime.palm`` put it."""
    video = tmp_path / "scenes.avi"
    make_scenes(tmp_path / "s", seed=4, count=3, signs=str(signs_data), video=str(video), hold=4)
    log = tmp_path / "frames.csv"
    proc = run_module(
        "runtime.webcam", "--source", str(video), "--headless", "--find-hand",
        "--hand-finder", finder, "--model", str(exported_dir / "tflite-int8.tflite"),
        "--log", str(log),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "12 frames" in proc.stdout, proc.stdout
    want = "palm detector" if finder == "palm" else "windows of"
    assert "hand search: " + want in proc.stdout, proc.stdout
    assert len(log.read_text().splitlines()) == 13  # a header and one row per frame
