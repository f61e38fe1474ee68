"""The robustness report: its shifts (seeded, label-preserving) and a real run on a real model."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.robustness.shifts import SHIFTS, apply_shift, random_shift
from runtime.dataset import load_dataset
from train import backgrounds as bg

GEOMETRIC = ("rotate", "zoom-out", "zoom-in", "translate", "mirror")


@pytest.fixture(scope="module")
def test_images(signs_data: Path) -> tuple[np.ndarray, np.ndarray]:
    x = load_dataset(str(signs_data)).evaluation_split().x[::6]  # 20 images, every class
    return x, bg.hand_masks(x)


@pytest.mark.parametrize("spec", SHIFTS, ids=lambda s: s.name)
def test_shift_is_seeded_and_keeps_shape(spec, test_images):
    x, masks = test_images
    assert np.array_equal(apply_shift(x, spec.name, 0, seed=5, masks=masks), x)
    for level in range(1, len(spec.severities) + 1):
        a = apply_shift(x, spec.name, level, seed=5, masks=masks)
        b = apply_shift(x, spec.name, level, seed=5, masks=masks)
        assert a.shape == x.shape and a.dtype == np.uint8
        assert np.array_equal(a, b), "same seed, different pixels"
        assert not np.array_equal(a, x), f"{spec.name}:{level} changed nothing"


def test_random_parts_depend_on_the_seed(test_images):
    x, masks = test_images
    for name in ("rotate", "translate", "noise", "background", "hue"):
        a = apply_shift(x, name, 2, seed=1, masks=masks)
        assert not np.array_equal(a, apply_shift(x, name, 2, seed=2, masks=masks)), name
    # Image i's shift does not depend on the other images in the batch.
    whole = apply_shift(x, "rotate", 3, seed=1)
    assert np.array_equal(whole[:5], apply_shift(x[:5], "rotate", 3, seed=1))


@pytest.mark.parametrize("name", GEOMETRIC)
def test_geometric_shifts_keep_the_whole_hand(name, test_images):
    """Label-preserving: the fingers stay in the picture (the hand's area is kept, up to the
    zoom factor), so the count is unchanged; mirroring twice is the identity."""
    x, masks = test_images
    spec = next(s for s in SHIFTS if s.name == name)
    level = len(spec.severities)
    moved = apply_shift(masks[..., None].repeat(3, -1) * 255, name, level, seed=3)[..., 0] > 127
    area = masks.sum((1, 2)).astype(float)
    factor = {"zoom-out": 1 / spec.severities[-1] ** 2, "zoom-in": spec.severities[-1] ** 2}
    kept = moved.sum((1, 2)) / (area * factor.get(name, 1.0))
    # Rotation and translation may push some arm (the fingers point inwards) out of the frame;
    # zoom-in crops the frame's edges, where the arm is (measured medians at the top
    # severity: zoom-in 0.77, translate 0.80, the others 0.9 or more).
    floor = {"zoom-in": 0.7, "translate": 0.75}.get(name, 0.85)
    assert np.median(kept) >= floor, (name, np.round(kept, 2))
    if name == "mirror":
        assert np.array_equal(apply_shift(apply_shift(x, name, 1), name, 1), x)


def test_photometric_shifts_move_no_pixel_and_background_keeps_the_hand(test_images):
    x, masks = test_images
    inner = np.stack([cv2.erode(m, np.ones((5, 5), np.uint8)) for m in masks]).astype(bool)
    for level in range(1, 5):
        out = apply_shift(x, "background", level, seed=0, masks=masks)
        assert np.abs(out[inner].astype(int) - x[inner]).max() <= 1
        assert not np.array_equal(out[~inner], x[~inner])
    # Brightness keeps the image's structure: the hand stays darker than the wall.
    bright = apply_shift(x, "brightness", 1, seed=0)
    hand, wall = masks.astype(bool), ~masks.astype(bool)
    assert all(bright[i][hand[i]].mean() < bright[i][wall[i]].mean() for i in range(len(x)))


def test_random_shift_is_seeded(test_images):
    x, masks = test_images
    a, tags = random_shift(x, seed=4, masks=masks)
    b, _ = random_shift(x, seed=4, masks=masks)
    assert np.array_equal(a, b) and len(tags) == len(x)
    assert len({t.split(":")[0] for t in tags}) > 5


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory) -> Path:
    """The seed network, untrained, as a float TFLite file: enough to run the report."""
    import keras
    import tensorflow as tf

    from train.model import build_model

    keras.utils.set_random_seed(0)
    model = build_model()
    path = tmp_path_factory.mktemp("tiny") / "tiny.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


@pytest.mark.slow  # converts a model with TensorFlow and scores 44 shifts twice: ~30 s
def test_report_runs_and_writes_its_three_files(tiny_tflite, signs_data, tmp_path):
    from tests.helpers import run_module

    out = tmp_path / "rep"
    proc = run_module(
        "benchmarks.robustness", "--models", str(tiny_tflite), "--data", str(signs_data),
        "--other-hands", str(signs_data / "test_signs"), "--out", str(out),
        "--empty-per-kind", "10",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    res = json.loads((out / "results.json").read_text())
    rows = res["models"]["tiny"]["rows"]
    assert len([k for k in rows if ":" in k and not k.startswith("empty")]) == sum(
        len(s.severities) for s in SHIFTS
    )
    assert rows["empty:noise"]["n"] == 10
    # No manifest beside the file: the runtime default threshold, and the report says why.
    assert res["models"]["tiny"]["min_confidence"]["value"] == 0.5
    assert res["models"]["tiny"]["min_confidence"]["source"].startswith("default: no manifest")
    # The same images under the same seed: a second run gives the same numbers.
    proc = run_module(
        "benchmarks.robustness", "--models", str(tiny_tflite), "--data", str(signs_data),
        "--other-hands", str(signs_data / "test_signs"), "--out", str(tmp_path / "again"),
        "--empty-per-kind", "10",
    )  # fmt: skip
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert again["models"]["tiny"]["rows"] == rows
    assert "| rotate |" in (out / "results.md").read_text()
    assert cv2.imread(str(out / "results.png")) is not None


def test_report_rejects_a_missing_model(tmp_path):
    from tests.helpers import assert_user_error, run_module

    proc = run_module("benchmarks.robustness", "--models", str(tmp_path / "nope"))
    assert_user_error(proc, "nope")


# The 60-epoch default model (trained on the AMD VM) showed a sign on 4 of these 20 frames, all
# photos; the mirror-averaged 150-epoch model passes (a strict xfail until then).
@pytest.mark.slow
def test_empty_scene_shows_no_sign_with_the_default_model(exported_dir: Path):
    """A hand-free 640x480 frame (held-out photo or a plain wall) through the live loop's own
    pipeline and the int8 file: the default min-confidence shows "no sign"."""
    from runtime.backends import load_backend
    from runtime.pipeline import FramePipeline

    pipe = FramePipeline(load_backend(exported_dir / "tflite-int8.tflite"), smooth=0.0)
    rng = np.random.default_rng(0)
    photos = bg.natural_images("test")
    shown = []
    for i in range(20):
        if i % 2:
            photo = photos[rng.integers(len(photos))]
            frame = cv2.resize(photo, (640, 480), interpolation=cv2.INTER_AREA)
        else:  # a plain light wall, darker towards the bottom
            shade = np.linspace(1.0, 0.8, 480, dtype=np.float32)[:, None, None]
            wall = np.full((480, 640, 3), rng.integers(170, 240, 3), np.float32)
            frame = (wall * shade).astype(np.uint8)
        shown.append(pipe.step(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)).label)
    assert sum(label is None for label in shown) >= 18, shown
