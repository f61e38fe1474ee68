"""The seed model, the default training recipe and `python -m train` as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from runtime.dataset import load_dataset
from tests.conftest import FIXTURE_EPOCHS
from tests.helpers import assert_user_error, run_module
from train.model import (  # NumPy only: Keras is imported inside its functions
    activation_model,
    averaged_turn,
    build_model,
    is_mirror_averaged,
    mirror_averaged,
    plain_network,
    turn_taps,
)
from train.settings import TrainSettings


@pytest.mark.slow  # imports TensorFlow (10-20 s)
def test_weight_init_changes_the_start_not_the_network():
    import keras

    assert TrainSettings().resolved().weight_init == "he_normal"  # the default recipe
    assert TrainSettings(recipe="notebook").resolved().weight_init == "glorot_uniform"
    keras.utils.set_random_seed(0)
    he = build_model(init="he_normal")
    glorot = build_model()
    assert he.count_params() == glorot.count_params() == 82_102
    for a, b in zip(he.layers, glorot.layers, strict=True):
        if not a.weights or a.name == "probs":
            continue
        k_he, k_glorot = a.weights[0].numpy(), b.weights[0].numpy()
        fan_in = int(np.prod(k_he.shape[:-1]))
        # He: a normal of std sqrt(2 / fan_in) cut at 2 std (the cut leaves 0.88 of the std).
        assert 0.8 < k_he.std() / (0.88 * np.sqrt(2 / fan_in)) < 1.2, a.name
        # Told apart by shape: a uniform's extreme is sqrt(3) std, the cut normal's ~2.27 std.
        assert np.abs(k_he).max() / k_he.std() > 2.0 > np.abs(k_glorot).max() / k_glorot.std()
    # The softmax layer keeps Glorot's uniform weights, within +-sqrt(6 / (fan_in + fan_out)).
    assert np.abs(he.get_layer("probs").weights[0].numpy()).max() <= np.sqrt(6 / (32 + 6))


@pytest.mark.slow  # imports TensorFlow (10-20 s)
def test_model_matches_the_notebook():

    model = build_model()
    shapes = [tuple(layer.output.shape[1:]) for layer in model.layers[1:]]
    assert shapes == [
        (62, 62, 8),
        (31, 31, 8),
        (29, 29, 16),
        (14, 14, 16),
        (12, 12, 32),
        (6, 6, 32),
        (1152,),
        (64,),
        (32,),
        (6,),
    ]
    params = [layer.count_params() for layer in model.layers if layer.weights]
    assert params == [224, 1168, 4640, 73792, 2080, 198]
    assert model.count_params() == 82_102
    assert [o.shape[1:] for o in activation_model(model).outputs] == [
        (62, 62, 8),
        (31, 31, 8),
        (29, 29, 16),
        (14, 14, 16),
        (12, 12, 32),
        (6, 6, 32),
    ]


def _turned(images: np.ndarray, turn: float) -> np.ndarray:
    """(N, 64, 64, 3) images turned through :func:`turn_taps`'s table, in NumPy."""
    index, weight = turn_taps(turn)
    flat = images.reshape(len(images), -1, 3)[:, index] * weight[None, ..., None]
    return flat.sum(1).reshape(images.shape)


def test_turn_taps_turn_like_opencv():
    """The graph's bilinear turn is OpenCV's warpAffine (edges replicated), up to its 1/32-pixel
    fixed-point weights."""
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3)).astype(np.float32)
    image = cv2.GaussianBlur(image, (0, 0), 2.0)  # a smooth picture, as photos are
    for turn in (15.0, -15.0, 7.5):
        index, weight = turn_taps(turn)
        ours = _turned(image[None], turn)[0]
        m = cv2.getRotationMatrix2D((31.5, 31.5), turn, 1.0)
        theirs = cv2.warpAffine(image, m, (64, 64), borderMode=cv2.BORDER_REPLICATE)
        assert np.abs(ours - theirs).max() < 1.0 and np.abs(ours - theirs).mean() < 0.1
        assert np.allclose(weight.sum(0), 1.0) and index.min() >= 0 and index.max() < 64 * 64
    index, weight = turn_taps(0.0)
    assert np.array_equal(index[0], np.arange(64 * 64)) and np.allclose(weight[0], 1.0)


@pytest.mark.slow  # imports TensorFlow (10-20 s)
def test_turned_views_average_six_passes_and_survive_saving(tmp_path: Path):
    import keras

    assert TrainSettings().resolved().turn_average == 0.0  # opt-in: the int8 file's 100 KB
    assert TrainSettings(turn_average=15.0).resolved().turn_average == 15.0
    keras.utils.set_random_seed(0)
    net = build_model(init="he_normal")
    six = mirror_averaged(net, 15.0)
    assert six.count_params() == 82_102 and is_mirror_averaged(six)
    assert averaged_turn(six) == 15.0 and averaged_turn(mirror_averaged(net)) == 0.0
    x = np.random.default_rng(0).random((5, 64, 64, 3), np.float32)
    x[:, :, :32] *= 0.2
    views = [_turned(v, t) for v in (x, x[:, :, ::-1]) for t in (0.0, 15.0, -15.0)]
    expected = np.mean([net.predict(v, verbose=0) for v in views], axis=0)
    np.testing.assert_allclose(six.predict(x, verbose=0), expected, atol=1e-5)
    # The six views of a mirror image are the six views of the image.
    np.testing.assert_allclose(
        six.predict(x[:, :, ::-1].copy(), verbose=0), six.predict(x, verbose=0), atol=1e-6
    )
    np.testing.assert_array_equal(
        plain_network(six).predict(x, verbose=0), net.predict(x, verbose=0)
    )
    path = tmp_path / "m.keras"
    six.save(path)
    loaded = keras.models.load_model(path)  # safe mode: no Lambda layer, no custom class
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, atol=1e-5)
    assert averaged_turn(loaded) == 15.0 and loaded.count_params() == 82_102


@pytest.mark.slow  # imports TensorFlow (10-20 s)
def test_mirror_average_shares_the_weights_and_survives_saving(tmp_path: Path):
    import keras

    assert TrainSettings().resolved().mirror_average  # the default recipe
    assert not TrainSettings(recipe="notebook").resolved().mirror_average
    keras.utils.set_random_seed(0)
    net = build_model(init="he_normal")
    both = mirror_averaged(net)
    assert both.count_params() == 82_102 and is_mirror_averaged(both)
    assert not is_mirror_averaged(net)
    x = np.random.default_rng(0).random((5, 64, 64, 3), np.float32)
    x[:, :, :32] *= 0.2  # left and right halves differ, so the mirror is a different image
    expected = (net.predict(x, verbose=0) + net.predict(x[:, :, ::-1], verbose=0)) / 2
    assert not np.allclose(net.predict(x, verbose=0), expected, atol=1e-4)
    # The plain network and the activation maps inside it, in the process that built it (where
    # the layers' first calls belong to `net`'s graph) as after loading.
    np.testing.assert_array_equal(
        plain_network(both).predict(x, verbose=0), net.predict(x, verbose=0)
    )
    maps = activation_model(both).predict(x, verbose=0)
    np.testing.assert_array_equal(maps[-1], activation_model(net).predict(x, verbose=0)[-1])
    path = tmp_path / "m.keras"
    both.save(path)
    loaded = keras.models.load_model(path)  # safe mode: no Lambda layer, no custom class
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, atol=1e-6)
    assert is_mirror_averaged(loaded) and loaded.count_params() == 82_102
    np.testing.assert_array_equal(
        plain_network(loaded).predict(x, verbose=0), net.predict(x, verbose=0)
    )


def test_default_recipe_reaches_target_and_writes_everything(trained_dir: Path):
    metrics = json.loads((trained_dir / "metrics.json").read_text())
    assert metrics["params"] == 82_102
    # The session fixture's shortened run (tests/conftest.py); the full recipe's figures are
    # in the README (0.9 or more on every seed measured).
    assert metrics["test"]["accuracy"] >= 0.85, metrics
    for split in ("train", "val", "test"):
        assert {"loss", "accuracy"} <= metrics[split].keys()
    assert metrics["val"]["n"] == 120 and metrics["train"]["n"] == 960
    assert metrics["fit_seconds"] > 0

    config = json.loads((trained_dir / "config.json").read_text())
    assert config["labels"] == ["0", "1", "2", "3", "4", "5"]
    assert config["settings"]["epochs"] == FIXTURE_EPOCHS
    assert config["settings"]["recipe"] == "robust" and config["settings"]["outliers"] > 0
    assert len(config["data"]["val_names"]) == 120
    history = json.loads((trained_dir / "history.json").read_text())
    assert len(history["loss"]) == FIXTURE_EPOCHS == len(history["val_accuracy"])
    # The calibrated min-confidence and both of its rates, for the export manifest.
    chosen = metrics["min_confidence"]["chosen"]
    assert 0.0 < chosen["min_confidence"] < 1.0 and chosen["empty_no_sign"] >= 0.9
    summary = (trained_dir / "summary.txt").read_text()
    assert "(3*3*3 + 1) * 8" in summary and "82102" in summary

    pngs = ["curves.png", "predictions.png", "confusion.png"] + [
        f"activations/{n}.png"
        for n in (
            "input",
            "layer1_conv1",
            "layer2_pool1",
            "layer3_conv2",
            "layer4_pool2",
            "layer5_conv3",
            "layer6_pool3",
        )
    ]
    for name in pngs:
        img = cv2.imread(str(trained_dir / name))
        assert img is not None and img.shape[0] > 100, name
    assert not list(trained_dir.rglob("*.tmp*")), "temporary files left behind"


def test_saved_model_reproduces_the_reported_test_accuracy(trained_dir: Path, signs_data: Path):
    import keras

    from runtime.preprocess import to_model_input

    model = keras.models.load_model(trained_dir / "model.keras")
    test = load_dataset(signs_data).test
    acc = float(np.mean(model.predict(to_model_input(test.x), verbose=0).argmax(1) == test.y))
    metrics = json.loads((trained_dir / "metrics.json").read_text())
    assert acc == pytest.approx(metrics["test"]["accuracy"], abs=1e-6)


def write_h5(folder: Path, train_x, train_y, test_x, test_y) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        with h5py.File(folder / f"{name}_signs.h5", "w") as f:
            f[f"{name}_set_x"] = x
            f[f"{name}_set_y"] = y
            f["list_classes"] = np.arange(6)
    return folder


@pytest.mark.slow  # trains
def test_train_cli_on_the_hdf5_edition(signs_data: Path, tmp_path: Path):
    ds = load_dataset(signs_data)
    data = write_h5(tmp_path / "h5", ds.train.x, ds.train.y, ds.test.x, ds.test.y)
    out = tmp_path / "out"
    proc = run_module(
        "train",
        "--data",
        str(data),
        "--epochs",
        "2",
        "--out",
        str(out),
        "--no-plots",
        "--verbose",
        "0",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "hdf5" in proc.stdout and "test" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["n"] == 120 and metrics["train"]["n"] == 960
    assert (out / "model.keras").is_file()


@pytest.mark.slow  # trains 2 epochs and exports one format: ~1 min
def test_hand_search_threshold_travels_from_training_to_the_runtime(
    signs_data: Path, tmp_path: Path
):
    """Training calibrates the --find-hand threshold on val scenes (metrics.json), export copies
    it into manifest.json, and the runtime's search uses it when no flag is given."""
    from export import ExportSettings, main_export
    from runtime.manifest import read_manifest
    from train import TrainSettings, run

    out = tmp_path / "run"
    metrics = run(
        TrainSettings(data=str(signs_data), out=str(out), verbose=0, epochs=2, plots=False)
    )
    search = json.loads((out / "metrics.json").read_text())["hand_search"]
    assert search == metrics["hand_search"]
    assert 0.0 <= search["threshold"] <= 1.0 and search["score"] == "margin"
    # The lowest threshold with 95% of the empty val scenes below it.
    assert search["target_empty_no_sign"] == 0.95 and search["empty_no_sign"] >= 0.95
    assert search["scenes"] == 300 and 150 <= search["empty_scenes"] <= 250
    assert "val" in search["data"] and search["seconds"] > 0

    export = tmp_path / "export"
    main_export(
        ExportSettings(
            model=str(out / "model.keras"), data=str(signs_data), out=str(export),
            formats=("tflite-int8",), max_drop=100.0,  # a 2-epoch model: int8 may lose more
        )
    )  # fmt: skip
    recorded = read_manifest(export / "manifest.json").hand_search
    assert recorded.threshold == search["threshold"] and recorded.calibrated
    assert recorded.empty_no_sign == search["empty_no_sign"]

    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), np.full((480, 640, 3), 200, np.uint8))
    proc = run_module(
        "runtime.webcam", "--model", str(export / "tflite-int8.tflite"), "--source", str(frame),
        "--headless", "--find-hand", "--hand-finder", "scan",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"score >= {search['threshold']:g} (calibrated)" in proc.stdout, proc.stdout


# --- bad input: one line, exit 2, nothing written --------------------------------------------


def _bad_h5(tmp_path: Path, **overrides) -> Path:
    rng = np.random.default_rng(0)
    arrays = {
        "train_x": rng.integers(0, 255, (200, 64, 64, 3), dtype=np.uint8),
        "train_y": np.repeat(np.arange(6), 34)[:200],
        "test_x": rng.integers(0, 255, (12, 64, 64, 3), dtype=np.uint8),
        "test_y": np.arange(12) % 6,
    }
    arrays.update(overrides)
    return write_h5(
        tmp_path / "data", arrays["train_x"], arrays["train_y"], arrays["test_x"], arrays["test_y"]
    )


def _corrupt_h5(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    (d / "train_signs.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    (d / "test_signs.h5").write_bytes(b"not hdf5")
    return d


def _missing_dataset(tmp_path: Path) -> Path:
    d = _bad_h5(tmp_path)
    with h5py.File(d / "train_signs.h5", "w") as f:
        f["train_set_x"] = np.zeros((10, 64, 64, 3), np.uint8)
    return d


def _unreadable_jpeg(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    for split in ("train_signs", "test_signs"):
        (d / split).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(d / split / f"{i}_IMG_{i}.jpg"), np.full((64, 64, 3), 40 * i, np.uint8))
    (d / "train_signs" / "2_IMG_9 (1).jpg").write_bytes(b"\xff\xd8\xff truncated")
    return d


def _empty_folder(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    (d / "train_signs").mkdir(parents=True)
    (d / "test_signs").mkdir()
    return d


def _nothing(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    (d / "notes.txt").write_text("hello")
    return d


BAD_INPUTS = {
    "no data": (_nothing, ["no SIGNS data found", "SIGNS_DATA"]),
    "missing path": (lambda p: p / "nowhere", ["does not exist"]),
    "corrupt hdf5": (_corrupt_h5, ["train_signs.h5", "not a readable HDF5"]),
    "missing dataset": (_missing_dataset, ["train_signs.h5", "train_set_y"]),
    "not HxWx3 uint8": (
        lambda p: _bad_h5(p, train_x=np.zeros((200, 64, 64), np.float32)),
        ["train_set_x", "uint8"],
    ),
    "labels out of range": (
        lambda p: _bad_h5(p, test_y=np.arange(12) % 6 + 3),
        ["test_set_y", "outside 0..5"],
    ),
    "length mismatch": (
        lambda p: _bad_h5(p, train_y=np.zeros(150, np.int64)),
        ["train_set_y", "200 images"],
    ),
    "unreadable image": (_unreadable_jpeg, ["2_IMG_9 (1).jpg", "not a readable image"]),
    "empty folder": (_empty_folder, ["train_signs", "empty folder"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_data_gives_one_line_error_and_writes_nothing(case: str, tmp_path: Path):
    """In-process: the data checks run before TensorFlow is imported, and say what is wrong."""
    from runtime.errors import SignsError
    from train import TrainSettings, run

    make, needles = BAD_INPUTS[case]
    data = make(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(SignsError) as info:
        run(TrainSettings(data=str(data), out=str(out), epochs=1, verbose=0))
    message = str(info.value)
    assert "\n" not in message and info.value.exit_code == 2
    for needle in needles:
        assert needle in message, (needle, message)
    assert not out.exists()


def test_bad_data_from_the_command_line_is_one_line_and_exit_2(tmp_path: Path):
    data = _corrupt_h5(tmp_path)
    out = tmp_path / "out"
    proc = run_module("train", "--data", str(data), "--out", str(out), "--epochs", "1")
    assert_user_error(proc, "train_signs.h5", "not a readable HDF5")
    assert not out.exists()
