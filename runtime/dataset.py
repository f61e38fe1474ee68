"""Reading SIGNS in the three layouts the project supports, with NumPy, h5py and OpenCV only.

1. ``hdf5``: the notebook's ``train_signs.h5`` / ``test_signs.h5`` (or one such file).
2. ``cs230``: folders ``train_signs/`` and ``test_signs/`` of ``{label}_*.jpg`` files (or one
   such folder).
3. ``class-folders``: ``<root>/<label>/<image>`` for one evaluation set, or
   ``<root>/train/<label>/...`` and ``<root>/test/<label>/...`` for training.

Every image goes through :func:`runtime.preprocess.preprocess`, so any image size works.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runtime.errors import DataError
from runtime.preprocess import IMAGE_SIZE, NUM_CLASSES, preprocess

DEFAULT_LABELS = [str(i) for i in range(NUM_CLASSES)]  # the class is the number of fingers
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
HOW_TO_GET = (
    "pass --data PATH or set SIGNS_DATA to a folder holding train_signs.h5/test_signs.h5 "
    "(the notebook's files) or train_signs/ and test_signs/ JPEG folders"
)


@dataclass
class Split:
    """One set of images: x is (N, 64, 64, 3) uint8 RGB, y is (N,) int64 class indices."""

    x: np.ndarray
    y: np.ndarray
    names: list[str] = field(default_factory=list)  # file name or "<file>#<index>" per image

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: np.ndarray) -> Split:
        return Split(self.x[idx], self.y[idx], [self.names[i] for i in idx])


@dataclass
class Dataset:
    root: Path
    layout: str  # "hdf5" | "cs230" | "class-folders"
    train: Split | None
    test: Split | None
    labels: list[str]

    def describe(self) -> str:
        parts = [
            f"{name} {len(s)}" for name, s in (("train", self.train), ("test", self.test)) if s
        ]
        return f"{self.root} ({self.layout}: {', '.join(parts)})"

    def evaluation_split(self) -> Split:
        """The set to evaluate on: the test split if there is one, else the only split."""
        split = self.test if self.test is not None else self.train
        assert split is not None
        return split


def resolve_data_path(arg: str | os.PathLike[str] | None) -> Path:
    """``--data`` if given, else ``$SIGNS_DATA``, else ``./data``."""
    if arg:
        return Path(arg)
    env = os.environ.get("SIGNS_DATA")
    return Path(env) if env else Path("data")


def load_dataset(path: str | os.PathLike[str] | None, *, need_train: bool = False) -> Dataset:
    """Detect the layout at ``path`` and load it.

    Raises:
        DataError: nothing usable at ``path``, or a file in it is unreadable or malformed.
    """
    root = resolve_data_path(path)
    if not root.exists():
        raise DataError(f"no SIGNS data at {root}: it does not exist; {HOW_TO_GET}")
    if root.is_file():
        if root.suffix.lower() in {".h5", ".hdf5"}:
            ds = _load_h5_files(root, [root])
        else:
            raise DataError(f"{root}: not a dataset (expected a folder or an .h5 file)")
    elif (root / "train_signs.h5").is_file() or (root / "test_signs.h5").is_file():
        files = [root / n for n in ("train_signs.h5", "test_signs.h5") if (root / n).is_file()]
        ds = _load_h5_files(root, files)
    elif (root / "train_signs").is_dir() or (root / "test_signs").is_dir():
        ds = Dataset(
            root,
            "cs230",
            _load_prefixed_folder(root / "train_signs")
            if (root / "train_signs").is_dir()
            else None,
            _load_prefixed_folder(root / "test_signs") if (root / "test_signs").is_dir() else None,
            list(DEFAULT_LABELS),
        )
    elif _class_dirs(root / "train") or _class_dirs(root / "test"):
        train = _load_class_folders(root / "train") if _class_dirs(root / "train") else None
        test = _load_class_folders(root / "test") if _class_dirs(root / "test") else None
        ds = Dataset(root, "class-folders", train, test, list(DEFAULT_LABELS))
    elif _class_dirs(root):
        ds = Dataset(root, "class-folders", None, _load_class_folders(root), list(DEFAULT_LABELS))
    elif any(is_image_file(p) for p in root.iterdir()):
        ds = Dataset(root, "cs230", None, _load_prefixed_folder(root), list(DEFAULT_LABELS))
    else:
        raise DataError(
            f"no SIGNS data found in {root}: looked for train_signs.h5/test_signs.h5, "
            f"train_signs/ and test_signs/, <label>/ subfolders and {{label}}_*.jpg files; "
            f"{HOW_TO_GET}"
        )
    if need_train and (ds.train is None or ds.test is None):
        raise DataError(
            f"{root}: training needs both a training and a test set, found only "
            f"{'training' if ds.train is not None else 'test'} data ({ds.layout} layout)"
        )
    return ds


# --- HDF5 -----------------------------------------------------------------------------------


def _load_h5_files(root: Path, files: list[Path]) -> Dataset:
    splits: dict[str, Split] = {}
    labels = list(DEFAULT_LABELS)
    for f in files:
        found = _read_h5(f)
        for name, split in found["splits"].items():
            splits[name] = split
        if found["labels"] is not None:
            labels = found["labels"]
    return Dataset(root, "hdf5", splits.get("train"), splits.get("test"), labels)


def _read_h5(path: Path) -> dict:
    import h5py

    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from None
    with fh:
        prefixes = [p for p in ("train", "test") if f"{p}_set_x" in fh]
        if not prefixes:
            raise DataError(
                f"{path}: missing dataset train_set_x or test_set_x "
                f"(found: {', '.join(sorted(fh.keys())) or 'nothing'})"
            )
        splits = {}
        for p in prefixes:
            if f"{p}_set_y" not in fh:
                raise DataError(f"{path}: missing dataset {p}_set_y beside {p}_set_x")
            try:
                x = np.asarray(fh[f"{p}_set_x"][()])
                y = np.asarray(fh[f"{p}_set_y"][()])
            except (OSError, TypeError, ValueError) as exc:
                raise DataError(f"{path}: cannot read {p}_set_x/{p}_set_y ({exc})") from None
            splits[p] = _check_arrays(path, p, x, y)
        labels = None
        if "list_classes" in fh:
            raw = np.asarray(fh["list_classes"][()]).ravel()
            labels = [v.decode() if isinstance(v, bytes) else str(v) for v in raw.tolist()]
            if len(labels) != NUM_CLASSES:
                raise DataError(f"{path}: list_classes has {len(labels)} entries, expected 6")
    return {"splits": splits, "labels": labels}


def _check_arrays(path: Path, prefix: str, x: np.ndarray, y: np.ndarray) -> Split:
    if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != np.uint8:
        raise DataError(
            f"{path}: {prefix}_set_x must be N x H x W x 3 uint8 images, "
            f"got shape {x.shape} dtype {x.dtype}"
        )
    y = y.ravel() if y.ndim == 2 and 1 in y.shape else y
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(
            f"{path}: {prefix}_set_y has shape {y.shape} but {prefix}_set_x holds {len(x)} images"
        )
    if not np.issubdtype(y.dtype, np.integer) or len(y) and (y.min() < 0 or y.max() >= NUM_CLASSES):
        bad = sorted(set(np.unique(y).tolist()) - set(range(NUM_CLASSES)))[:5]
        raise DataError(f"{path}: {prefix}_set_y has labels outside 0..5: {bad}")
    if len(x) == 0:
        raise DataError(f"{path}: {prefix}_set_x holds no images")
    if x.shape[1:3] != (IMAGE_SIZE, IMAGE_SIZE):
        x = np.stack([preprocess(img, bgr=False) for img in x])
    names = [f"{path.name}#{i}" for i in range(len(y))]
    return Split(np.ascontiguousarray(x), y.astype(np.int64), names)


# --- image folders --------------------------------------------------------------------------


def is_image_file(p: Path) -> bool:
    """A file whose suffix is one of :data:`IMAGE_SUFFIXES`."""
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES


def decode_image(path: Path) -> np.ndarray:
    """The one image decoder: a file as OpenCV decodes it, H x W x 3 uint8 BGR, any size.

    ``np.fromfile`` + ``cv2.imdecode`` rather than ``cv2.imread``: non-ASCII paths work on every
    platform, and a failure is told apart from a missing file.

    Raises:
        DataError: the file cannot be read, or is not a decodable image.
    """
    import cv2

    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise DataError(f"{path}: not a readable image")
    return img


def read_image(path: Path) -> np.ndarray:
    """Read one image file as the model's 64x64 RGB uint8 input.

    Raises:
        DataError: the file cannot be read or decoded as an image.
    """
    return preprocess(decode_image(path), bgr=True)


def _label_of(path: Path) -> int:
    prefix = path.name.split("_", 1)[0]
    if "_" not in path.name or not prefix.isdigit() or int(prefix) >= NUM_CLASSES:
        raise DataError(
            f"{path}: cannot read a label 0..5 from the file name (expected {{label}}_*.jpg)"
        )
    return int(prefix)


def _stack(folder: Path, files: list[Path], labels: list[int]) -> Split:
    if not files:
        raise DataError(f"{folder}: empty folder, no images found")
    x = np.stack([read_image(f) for f in files])
    rel = [str(f.relative_to(folder)) for f in files]
    return Split(x, np.asarray(labels, dtype=np.int64), rel)


def _load_prefixed_folder(folder: Path) -> Split:
    files = sorted(p for p in folder.iterdir() if is_image_file(p))
    return _stack(folder, files, [_label_of(f) for f in files])


def _class_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(
        (
            p
            for p in root.iterdir()
            if p.is_dir() and p.name.isdigit() and int(p.name) < NUM_CLASSES
        ),
        key=lambda p: int(p.name),
    )


def _load_class_folders(root: Path) -> Split:
    files, labels = [], []
    for d in _class_dirs(root):
        for f in sorted(p for p in d.iterdir() if is_image_file(p)):
            files.append(f)
            labels.append(int(d.name))
    return _stack(root, files, labels)


def stratified_split(y: np.ndarray, n_val: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic class-stratified split: (train indices, validation indices), both sorted.

    The JPEG folder is sorted by class, so "the last n" would be a single class. Each class
    contributes to validation in proportion to its size (largest remainders fill the rest).
    """
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * n_val / len(y)
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take), kind="stable")[: n_val - take.sum()]:
        take[i] += 1
    val = np.concatenate(
        [rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take, strict=True)]
    )
    mask = np.zeros(len(y), dtype=bool)
    mask[val] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)
