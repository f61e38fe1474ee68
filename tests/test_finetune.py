"""Fine-tuning on a user's samples: input checks, the held-out split, and real fine-tunes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.dataset import Split
from runtime.errors import DataError, ModelError, SignsError
from tests.helpers import assert_user_error, run_module
from train.finetune import (
    MIN_SAMPLES,
    burst_of,
    few_bursts,
    hold_out,
    load_samples,
    summary,
    user_calibration,
)
from train.settings import TrainSettings

BACKGROUND = (40, 110, 200)  # RGB: a blue wall, far from SIGNS's light grey one


def shifted(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A SIGNS image as another camera might show it: coloured background, hand turned 70-100
    deg (a camera on its side). The default recipe trains rotations up to 25 deg and reads hands
    turned 30-45 deg well already (0.85 of the check images), so the shift goes beyond that.

    SIGNS backgrounds are light and unsaturated, hands are saturated: a saturation threshold
    separates them well enough for a strong, label-preserving shift.
    """
    out = img.copy()
    out[cv2.cvtColor(img, cv2.COLOR_RGB2HSV)[..., 1] < 60] = BACKGROUND
    angle = rng.uniform(70, 100) * rng.choice([-1, 1])
    rot = cv2.getRotationMatrix2D((32, 32), angle, 1.0)
    return cv2.warpAffine(
        out, rot, (64, 64), borderMode=cv2.BORDER_CONSTANT, borderValue=BACKGROUND
    )


def write_captures(folder: Path, images: np.ndarray, labels: np.ndarray, side: int = 160) -> Path:
    """``<folder>/<label>/<timestamp>_<n>.jpg`` at a ROI-like resolution, as captures are."""
    for n, (img, label) in enumerate(zip(images, labels, strict=True)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        big = cv2.resize(img, (side, side), interpolation=cv2.INTER_CUBIC)
        # One burst per image: they are distinct pictures, not near-copies of one another.
        path = folder / str(label) / f"20260101-120000-{n:03d}_000.jpg"
        assert cv2.imwrite(str(path), cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    return folder


def tiny_set(folder: Path, counts: dict[int, int]) -> Path:
    rng = np.random.default_rng(0)
    labels = np.repeat(list(counts), list(counts.values()))
    images = rng.integers(0, 256, (len(labels), 64, 64, 3), dtype=np.uint8)
    return write_captures(folder, images, labels, side=100)


def settings(tmp_path: Path, samples: Path, **kw) -> TrainSettings:
    init = tmp_path / "base" / "model.keras"
    if not init.exists():  # input checks fail before the model is loaded: any file will do
        init.parent.mkdir(parents=True, exist_ok=True)
        init.write_bytes(b"not read")
    return TrainSettings(
        fine_tune=str(samples), init=str(init), out=str(tmp_path / "out"), plots=False, **kw
    )


# --- bad input: one error, nothing written (no training) -----------------------------------


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda d: d, "no such folder"),
        (lambda d: tiny_set(d, {0: 5, 7: 3}), "outside 0-5"),
        (lambda d: tiny_set(d, {c: MIN_SAMPLES - 1 for c in range(6)}), "too few samples"),
        (lambda d: d.mkdir() or d, "no samples found"),
    ],
    ids=["missing", "label-7", "too-few", "empty"],
)
def test_bad_samples_folder(tmp_path, make, needle):
    from train import run

    folder = make(tmp_path / "caps")
    s = settings(tmp_path, folder)
    with pytest.raises(DataError, match=needle):
        run(s)
    assert not (tmp_path / "out").exists()


def test_bad_fine_tune_settings():
    from runtime.errors import SettingError

    bad = ({"fine_tune_epochs": 0}, {"fine_tune_user_share": 1.0}, {"fine_tune_holdout": 0})
    for kw in (*bad, {"fine_tune_distill": -1.0}):
        with pytest.raises(SettingError):
            TrainSettings(**kw)


def test_unreadable_sample_is_named(tmp_path):
    folder = tiny_set(tmp_path / "caps", {c: 4 for c in range(6)})
    (folder / "2" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DataError, match=r"broken\.jpg: not a readable image"):
        load_samples(folder)


def test_loose_image_and_skipped_files(tmp_path):
    folder = tiny_set(tmp_path / "caps", {c: 3 for c in range(6)})
    (folder / "3" / ".20260101_000.tmp.jpg").write_bytes(b"half-written capture")
    (folder / "3" / "notes.txt").write_text("ignored")
    assert len(load_samples(folder)) == 18
    (folder / "stray.jpg").write_bytes((folder / "0").iterdir().__next__().read_bytes())
    with pytest.raises(DataError, match="stray.jpg: a sample must sit in its class subfolder"):
        load_samples(folder)


def test_base_model_checks(tmp_path, signs_data):
    from train import run

    folder = tiny_set(tmp_path / "caps", {c: 3 for c in range(6)})
    s = settings(tmp_path, folder, data=str(signs_data))
    s.init = str(tmp_path / "nothing.keras")
    with pytest.raises(ModelError, match="model file not found"):
        run(s)
    s = settings(tmp_path, folder, data=str(signs_data))
    s.out = str(Path(s.init).parent)
    with pytest.raises(SignsError, match="would overwrite the base model"):
        run(s)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # imports TensorFlow to try the file
def test_corrupt_base_model(tmp_path, signs_data):
    from train import run

    folder = tiny_set(tmp_path / "caps", {c: 3 for c in range(6)})
    s = settings(tmp_path, folder, data=str(signs_data))  # a .keras file that is not a model
    with pytest.raises(ModelError, match="not a readable Keras model"):
        run(s)
    assert not (tmp_path / "out").exists()


def test_cli_bad_label_one_line(tmp_path):
    folder = tiny_set(tmp_path / "caps", {1: 4, 9: 4})
    out = tmp_path / "ft"
    init = tmp_path / "model.keras"
    init.write_bytes(b"never read: the samples are checked first")
    proc = run_module(
        "train", "--fine-tune", str(folder), "--init", str(init), "--out", str(out), timeout=120
    )
    assert_user_error(proc, str(folder / "9"), "outside 0-5")
    assert not out.exists()


@pytest.mark.parametrize(
    "n, held", [(1, 0), (2, 1), (3, 1), (4, 1), (5, 1), (8, 2), (10, 2), (40, 8)]
)
def test_hold_out_counts(n, held):
    y = np.repeat(np.arange(6), n)
    tr, val = hold_out(y, 0.2, seed=1)
    assert np.bincount(y[val], minlength=6).tolist() == [held] * 6
    assert sorted(np.concatenate([tr, val]).tolist()) == list(range(len(y)))


def test_hold_out_keeps_bursts_whole():
    names = [f"0/20260101-1200{b:02d}-000_{i:03d}.jpg" for b in range(3) for i in range(5)]
    names += [f"1/20260101-130000-000_{i:03d}.jpg" for i in range(10)]  # one burst only
    y = np.array([0] * 15 + [1] * 10)
    groups = [burst_of(n) for n in names]
    _, val = hold_out(y, 0.2, seed=1, groups=groups)
    held0 = [groups[i] for i in val if y[i] == 0]
    assert len(held0) == 5 and len(set(held0)) == 1  # one whole burst of three
    assert sum(y[val] == 1) == 2  # one burst: frames, as without bursts
    assert burst_of("3/IMG_1118.jpg") == "3/IMG_1118.jpg"
    samples = Split(np.zeros((25, 64, 64, 3), np.uint8), y, names)
    assert few_bursts(samples) == [1]


def test_hold_out_is_seeded():
    y = np.repeat(np.arange(6), 10)
    assert np.array_equal(hold_out(y, 0.2, 3)[1], hold_out(y, 0.2, 3)[1])
    assert not np.array_equal(hold_out(y, 0.2, 3)[1], hold_out(y, 0.2, 4)[1])


def test_summary_warns_loudly_when_signs_is_forgotten():
    acc = lambda a, n=10: {"accuracy": a, "n": n, "loss": 0.0}  # noqa: E731
    ft = {
        "before": {"user_val": acc(0.5), "user_all": acc(0.5), "signs_test": acc(0.95)},
        "after": {"user_val": acc(0.9), "user_all": acc(0.9), "signs_test": acc(0.92)},
        "signs_test_change_pp": -3.0, "forgetting_limit_pp": 2.0, "forgot": True,
        "user_train": 8, "repeats": 120, "seconds": 30.0,
    }  # fmt: skip
    m = {"fine_tune": ft, "best_epoch": 3, "epochs": 10, "fit_seconds": 25.0, "train": acc(1, 960)}
    warning = [ln for ln in summary(m).splitlines() if ln.startswith("WARNING:")]
    assert len(warning) == 1 and "lost 3.0 points on the SIGNS test" in warning[0]
    ft["forgot"], ft["signs_test_change_pp"] = False, -1.0
    assert "WARNING" not in summary(m)


def test_export_finds_the_samples_through_config(tmp_path):
    folder = tiny_set(tmp_path / "caps", {c: 3 for c in range(6)})
    model = tmp_path / "ft" / "model.keras"
    model.parent.mkdir()
    assert user_calibration(model) == (None, None)  # no config.json: not fine-tuned
    (model.parent / "config.json").write_text(json.dumps({"settings": {}}))
    assert user_calibration(model) == (None, None)  # a python -m train config
    config = {"fine_tune": {"samples": str(folder), "base_model": "b", "counts": {"0": 3}}}
    (model.parent / "config.json").write_text(json.dumps(config))
    samples, prov = user_calibration(model)
    assert len(samples) == 18 and prov.fine_tuned and prov.samples == str(folder)
    config["fine_tune"]["samples"] = str(tmp_path / "gone")
    (model.parent / "config.json").write_text(json.dumps(config))
    samples, prov = user_calibration(model)
    assert samples is None and prov.samples == str(tmp_path / "gone")


# --- real fine-tunes ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shifted_sets(signs_data, tmp_path_factory):
    """Captures of shifted SIGNS *training* images (the SIGNS test set stays clean for the
    forgetting check): 10 per class to learn from, 20 other ones per class to check on."""
    from runtime.dataset import load_dataset

    ds = load_dataset(signs_data, need_train=True)
    rng = np.random.default_rng(7)
    pick = {c: rng.permutation(np.flatnonzero(ds.train.y == c))[:30] for c in range(6)}
    root = tmp_path_factory.mktemp("shifted")
    user = np.concatenate([p[:10] for p in pick.values()])
    check = np.concatenate([p[10:] for p in pick.values()])
    make = lambda idx: np.stack([shifted(ds.train.x[i], rng) for i in idx])  # noqa: E731
    write_captures(root / "captures", make(user), ds.train.y[user])
    write_captures(root / "check", make(check), ds.train.y[check])
    return root / "captures", root / "check"


@pytest.fixture(scope="module")
def shift_fine_tune(trained_dir, signs_data, shifted_sets, tmp_path_factory):
    """The session's model fine-tuned on the shifted captures with the default settings (one
    run, two tests)."""
    from train import run

    captures, check = shifted_sets
    init = trained_dir / "model.keras"
    before_bytes = init.read_bytes()
    out = tmp_path_factory.mktemp("shift-ft") / "ft"
    s = TrainSettings(
        data=str(signs_data), fine_tune=str(captures), init=str(init), out=str(out),
        plots=False, verbose=0,
    )  # fmt: skip
    metrics = run(s)
    assert init.read_bytes() == before_bytes  # the base model is never modified
    return metrics, init, out, check


@pytest.mark.slow
def test_fine_tune_learns_the_shift(shift_fine_tune):
    import keras

    from runtime.dataset import load_dataset
    from runtime.preprocess import to_model_input

    m, init, out, check = shift_fine_tune
    held = load_dataset(check).evaluation_split()

    def accuracy(path: Path) -> float:
        model = keras.models.load_model(path, compile=False)
        return float((model.predict(to_model_input(held.x), verbose=0).argmax(1) == held.y).mean())

    before, after = accuracy(init), accuracy(out / "model.keras")
    assert after >= before + 0.2, (before, after)
    ft = m["fine_tune"]
    assert ft["after"]["user_val"]["accuracy"] > ft["before"]["user_val"]["accuracy"]
    # The runtime's "no sign" threshold is calibrated again, the user's held-out samples included.
    calib = m["min_confidence"]
    assert 0 < calib["chosen"]["min_confidence"] < 1 and "user's held-out" in calib["data"]
    config = json.loads((out / "config.json").read_text())["fine_tune"]
    assert config["counts"] == {str(c): 10 for c in range(6)}


# On the session's model (the default recipe, seed 1: SIGNS test 0.983) the check images start
# at 0.29; a 4-epoch fine-tune reached 0.45 and kept the SIGNS test at 0.983, the default 10
# epochs pass both tests. (Earlier bases: the 60-epoch model already read hands turned 30-45 deg,
# this test's shift then, at 0.85, so the shift is now larger; a 40-epoch model lost 2.5 SIGNS
# points, over the limit: the better-trained base forgets less, README "Forgetting".)
# Distillation's strength was chosen on SIGNS validation, never on this test.
@pytest.mark.slow
def test_fine_tune_keeps_signs_within_the_forgetting_limit(shift_fine_tune):
    ft = shift_fine_tune[0]["fine_tune"]
    assert ft["signs_test_change_pp"] >= -ft["forgetting_limit_pp"], ft


def capture_video(path: Path, images: np.ndarray, frames_each: int = 3) -> Path:
    """An MJPG video, 30 fps, showing each RGB image in the webcam's default ROI for 0.1 s."""
    from tests.web_helpers import ROI

    x, y, side = ROI
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480))
    assert writer.isOpened()
    for img in [*images, images[-1]]:  # one spare: the last sample is not at the last frame
        frame = np.full((480, 640, 3), 90, np.uint8)
        big = cv2.resize(img, (side, side), interpolation=cv2.INTER_CUBIC)
        frame[y : y + side, x : x + side] = cv2.cvtColor(big, cv2.COLOR_RGB2BGR)
        for _ in range(frames_each):
            writer.write(frame)
    writer.release()
    return path


@pytest.mark.slow
def test_end_to_end_capture_fine_tune_export_evaluate(
    trained_dir, signs_data, shifted_sets, tmp_path
):
    """The commands a user runs, as subprocesses: headless capture of each class from a video,
    fine-tune, export --int8, runtime.evaluate on the captures."""
    from runtime.dataset import load_dataset
    from tests.web_helpers import tiny_colour_model

    user = load_dataset(shifted_sets[0]).evaluation_split()  # 10 shifted images per class
    captures, ft, exp = tmp_path / "captures", tmp_path / "ft", tmp_path / "export"
    camera_model = tiny_colour_model(tmp_path / "tiny.onnx")  # capture needs no real model
    for c in range(6):
        video = capture_video(tmp_path / f"class{c}.avi", user.x[user.y == c])
        proc = run_module(
            "runtime.webcam", "--model", str(camera_model), "--source", str(video), "--headless",
            "--capture-label", str(c), "--capture-count", "10", "--capture-countdown", "0",
            "--capture-dir", str(captures), timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
    env = {"SIGNS_DATA": str(signs_data)}
    proc = run_module(
        "train", "--fine-tune", str(captures), "--init", str(trained_dir / "model.keras"),
        "--out", str(ft), "--fine-tune-epochs", "2", "--no-plots", "--verbose", "0", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "user held-out" in proc.stdout and "SIGNS test" in proc.stdout
    assert "fewer than 3 bursts" in proc.stdout  # one burst per class: the check flatters
    proc = run_module(
        "export", "--int8", "--model", str(ft / "model.keras"), "--out", str(exp), env=env
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "calibration: + 60 user samples" in proc.stdout
    manifest = json.loads((exp / "manifest.json").read_text())
    prov = manifest["provenance"]
    assert prov["fine_tuned"] and prov["samples"] == str(captures.resolve())
    assert prov["calibration_samples"] == 60
    assert manifest["no_sign"]["calibrated"], manifest["no_sign"]  # the fine-tune calibrated it
    assert "user's held-out samples" in manifest["no_sign"]["source"]
    proc = run_module(
        "runtime.evaluate", "--model", str(exp / "tflite-int8.tflite"), "--data", str(captures),
        "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["n"] == 60 and result["accuracy"] >= 0.6, result


def test_people_grouped_by_consecutive_numbers(tmp_path):
    """other-hands' numbering: a person's six photos are consecutive, with a skipped number now
    and then and not always in class order; people are further apart."""
    from benchmarks.finetune import group_people

    numbers = {0: [1118, 4040], 1: [1119, 4041], 2: [1120, 4042], 3: [1121, 4043]}
    numbers |= {4: [1123, 4044], 5: [1124, 4039]}  # 1122 skipped; 4039 is class 5
    for label, ns in numbers.items():
        (tmp_path / str(label)).mkdir()
        for n in ns:
            (tmp_path / str(label) / f"IMG_{n}.jpg").write_bytes(b"")
    people = group_people(tmp_path)
    assert [sorted(lb for _, lb in p) for p in people] == [list(range(6))] * 2
    assert {f.name for f, _ in people[1]} == {f"IMG_{n}.jpg" for n in range(4039, 4045)}
    (tmp_path / "3" / "IMG_4043.jpg").rename(tmp_path / "3" / "IMG_4060.jpg")
    with pytest.raises(DataError, match="not one photo per class"):
        group_people(tmp_path)
