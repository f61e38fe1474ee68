"""Dataset layouts and the stratified split, on the real data and on files the tests write."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from runtime.dataset import load_dataset, stratified_split
from tests.test_train import write_h5


def test_cs230_folders_keep_every_file(signs_data: Path):
    ds = load_dataset(signs_data)
    assert ds.layout == "cs230"
    assert ds.train.x.shape == (1080, 64, 64, 3) and ds.train.x.dtype == np.uint8
    assert ds.test.x.shape == (120, 64, 64, 3)
    assert np.bincount(ds.train.y).tolist() == [180] * 6
    assert np.bincount(ds.test.y).tolist() == [20] * 6
    suffixed = [n for n in ds.train.names if n.endswith(" (1).jpg")]
    assert suffixed, "the ' (1).jpg' files must be read"
    assert len(set(ds.train.names)) == 1080


def test_hdf5_single_file_and_folder(signs_data: Path, tmp_path: Path):
    src = load_dataset(signs_data)
    d = write_h5(tmp_path, src.train.x[:60], src.train.y[:60], src.test.x, src.test.y)
    both = load_dataset(d)
    assert both.layout == "hdf5" and len(both.train) == 60 and len(both.test) == 120
    np.testing.assert_array_equal(both.test.x, src.test.x)
    single = load_dataset(d / "test_signs.h5")
    assert single.train is None and len(single.evaluation_split()) == 120


def test_class_folders_of_any_image_size(signs_data: Path, tmp_path: Path):
    src = load_dataset(signs_data).test
    for i in range(0, 120, 10):
        img = cv2.cvtColor(src.x[i], cv2.COLOR_RGB2BGR)
        big = cv2.resize(img, (256, 256), interpolation=cv2.INTER_CUBIC)
        padded = cv2.copyMakeBorder(big, 0, 0, 40, 40, cv2.BORDER_REPLICATE)  # 336 x 256
        (tmp_path / str(src.y[i])).mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / str(src.y[i]) / f"img{i}.png"), padded)
    ds = load_dataset(tmp_path)
    assert ds.layout == "class-folders" and len(ds.test) == 12
    assert sorted(ds.test.y.tolist()) == sorted(src.y[::10].tolist())
    # centre crop + area resize of a 4x upscale recovers the original closely
    order = [int(n.split("img")[1].split(".")[0]) for n in ds.test.names]
    diff = np.abs(ds.test.x.astype(int) - src.x[order].astype(int))
    assert diff.mean() < 3, diff.mean()


def test_stratified_split_is_balanced_and_deterministic():
    y = np.repeat(np.arange(6), 180)  # sorted by class, as the JPEG folder is
    tr, va = stratified_split(y, 120, seed=3)
    assert len(tr) == 960 and len(va) == 120 and not set(tr) & set(va)
    assert np.bincount(y[va]).tolist() == [20] * 6
    tr2, va2 = stratified_split(y, 120, seed=3)
    np.testing.assert_array_equal(va, va2)
    assert not np.array_equal(va, stratified_split(y, 120, seed=4)[1])
