"""Synthetic 640x480 scenes: hands cut out and placed anywhere on held-out natural backgrounds.

A scene folder holds ``frame-NNNNNN.png`` (lossless), ``labels.csv`` (one :class:`SceneLabel`
per frame) and ``scenes.json`` (how it was made). The same seed, split and count give the same
pixels. It is also a valid ``runtime.webcam --source`` image folder.

Hands:
- SIGNS photos, cut from their light wall with :func:`train.backgrounds.hand_mask` (the same mask
  training uses). "test" scenes use the SIGNS *test* images, "val" scenes the validation split
  of the training images (``stratified_split(seed=1)``, as ``python -m train`` makes it), and so
  do "dev" scenes.
- other-hands photos (test scenes only; never used to choose anything): they are also shot on a
  light wall, and the same mask cuts them cleanly (checked by eye on a sample). A photo whose
  mask keeps less than 5% or more than 85% of its pixels is placed whole, as a patch with its
  own wall, and counted in ``scenes.json``.

Each hand is scaled to a square of 144-320 px (the SIGNS framing: the hand fills most of the
square, its arm reaching the bottom edge), mirrored half the time and pasted at a uniformly
random position; the box in the labels is that square. Backgrounds are crops of the
scikit-image images of the same split (``train.backgrounds.NATURAL_IMAGES``), so test scenes are
never scenes that training or calibration saw. "dev" scenes put the validation hands on the 14
*training* images: more kinds of clutter (a face, a cat, brick, coins...) than the 3 val images,
for choosing the palm detector's settings. The detector never saw them; the classifier did, in
training's background replacement, so dev scenes never choose the classifier's settings.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from benchmarks.scenes import BACKGROUNDS
from runtime.errors import DataError, SettingError, SignsError

if TYPE_CHECKING:
    from runtime.dataset import Split

SCHEMA_VERSION = 1
FRAME_W, FRAME_H = 640, 480
HAND_SIDES = (144, 320)  # placed hand square, px (a hand at arm's length to close up)
LABELS_NAME = "labels.csv"
META_NAME = "scenes.json"
MASK_RANGE = (0.05, 0.85)  # mask fraction outside this: the mask failed, place the whole photo


@dataclass(frozen=True)
class SceneLabel:
    """One row of labels.csv: the frame, its hand's class and box (empty for no hand)."""

    frame: int
    file: str
    label: int | None  # 0-5, None: no hand in the scene
    x: int | None = None  # box of the placed hand square, frame pixels
    y: int | None = None
    w: int | None = None
    h: int | None = None
    source: str = "empty"  # signs-test, signs-val, other-hands or empty
    hand: str = ""  # the hand photo's name

    def box(self) -> tuple[int, int, int, int] | None:
        return None if self.label is None else (self.x, self.y, self.w, self.h)


def write_labels(path: Path, labels: list[SceneLabel]) -> None:
    names = [f.name for f in fields(SceneLabel)]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        for row in labels:
            w.writerow(["" if v is None else v for v in asdict(row).values()])


def read_scenes(folder: str | Path) -> tuple[dict, list[SceneLabel]]:
    """(scenes.json contents, labels) of a scene folder made by :func:`make_scenes`."""
    folder = Path(folder)
    meta_path, labels_path = folder / META_NAME, folder / LABELS_NAME
    if not meta_path.is_file() or not labels_path.is_file():
        raise DataError(f"{folder}: not a scene folder (no {META_NAME} / {LABELS_NAME})")
    meta = json.loads(meta_path.read_text())
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise DataError(
            f"{meta_path}: schema_version {meta.get('schema_version')}, expected {SCHEMA_VERSION}"
        )
    ints = {"frame", "label", "x", "y", "w", "h"}
    out = []
    with open(labels_path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            out.append(
                SceneLabel(
                    **{k: (int(v) if v else None) if k in ints else v for k, v in row.items()}
                )
            )
    return meta, out


# --- material ------------------------------------------------------------------------------


def _rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"{path}: unreadable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def load_hands(split: str, signs: str | None, other_hands: str | None) -> list[tuple]:
    """[(name, source, label, rgb, mask or None)] of the hands a split may use."""
    from runtime.dataset import load_dataset, stratified_split
    from train.backgrounds import hand_mask

    ds = load_dataset(signs, need_train=split in ("val", "dev"))
    if split in ("val", "dev"):
        _, val_idx = stratified_split(ds.train.y, 120, seed=1)
        hands = signs_hands(ds.train.subset(val_idx), "signs-val")
    else:
        hands = signs_hands(ds.evaluation_split(), "signs-test")
    if split == "test" and other_hands:
        root = Path(other_hands)
        files = sorted(root.glob("[0-5]/*.jpg"))
        if not files:
            raise DataError(f"{root}: no <label>/*.jpg photos (other-hands)")
        for f in files:
            rgb = _rgb(f)
            m = hand_mask(rgb)
            ok = MASK_RANGE[0] < m.mean() < MASK_RANGE[1]
            hands.append((f"{f.parent.name}/{f.name}", "other-hands", int(f.parent.name), rgb,
                          m if ok else None))  # fmt: skip
    return hands


def signs_hands(part: Split, source: str, masks: np.ndarray | None = None) -> list[tuple]:
    """[(name, source, label, rgb, mask)] of SIGNS images; ``masks``: their hand masks, if
    already made (:func:`train.backgrounds.hand_masks`)."""
    from train.backgrounds import hand_masks

    masks = hand_masks(part.x) if masks is None else masks
    return [
        (n, source, int(y), x, m)
        for n, y, x, m in zip(part.names, part.y, part.x, masks, strict=True)
    ]


def background(images: tuple[np.ndarray, ...], rng: np.random.Generator) -> np.ndarray:
    """A 640x480 RGB crop of one image: random 4:3 window of 45-100% of the largest, jittered."""
    img = images[rng.integers(len(images))]
    h, w = img.shape[:2]
    fw = min(w, h * 4 / 3)
    cw = int(fw * rng.uniform(0.45, 1.0))
    ch = int(cw * 3 / 4)
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    interp = cv2.INTER_AREA if cw > FRAME_W else cv2.INTER_LINEAR
    bg = cv2.resize(img[y : y + ch, x : x + cw], (FRAME_W, FRAME_H), interpolation=interp)
    if rng.random() < 0.5:
        bg = bg[:, ::-1]
    gain, offset = rng.uniform(0.75, 1.25), rng.uniform(-20, 20)
    return np.clip(bg.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


def place(frame: np.ndarray, hand: np.ndarray, mask: np.ndarray | None, x: int, y: int, side: int,
          mirror: bool) -> None:  # fmt: skip
    """Paste ``hand`` scaled to ``side`` px at (x, y), through its feathered mask, in place."""
    from train.backgrounds import feather

    big = cv2.resize(hand, (side, side), interpolation=cv2.INTER_LINEAR)
    alpha = np.ones((side, side), np.float32)
    if mask is not None:  # feather at the photo's own scale, then scale: soft, not blocky, edges
        alpha = cv2.resize(feather(mask), (side, side), interpolation=cv2.INTER_LINEAR)
    if mirror:
        big, alpha = big[:, ::-1], alpha[:, ::-1]
    roi = frame[y : y + side, x : x + side].astype(np.float32)
    a = alpha[..., None]
    frame[y : y + side, x : x + side] = np.clip(big * a + roi * (1 - a) + 0.5, 0, 255)


# --- the generator -------------------------------------------------------------------------


def generate(
    hands: list[tuple],
    images: tuple[np.ndarray, ...],
    count: int,
    empty: float,
    rng: np.random.Generator,
) -> Iterator[tuple[np.ndarray, SceneLabel]]:
    """``count`` scenes, one at a time, as (640x480 BGR frame, label); ``empty``: the chance of
    a hand-free scene. The same ``rng`` state gives the same scenes (:func:`make_scenes` writes
    them; ``python -m train`` calibrates the hand search on them in memory)."""
    for i in range(count):
        frame = background(images, rng)
        name = f"frame-{i:06d}.png"
        if rng.random() < empty:
            lab = SceneLabel(i, name, None)
        else:
            hname, source, label, rgb, mask = hands[rng.integers(len(hands))]
            side = int(rng.integers(HAND_SIDES[0], HAND_SIDES[1] + 1))
            x = int(rng.integers(0, FRAME_W - side + 1))
            y = int(rng.integers(0, FRAME_H - side + 1))
            place(frame, rgb, mask, x, y, side, mirror=bool(rng.random() < 0.5))
            lab = SceneLabel(i, name, label, x, y, side, side, source, hname)
        yield cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), lab


def make_scenes(
    out: str | Path,
    seed: int = 1,
    count: int = 300,
    split: str = "test",
    empty: float = 0.3,
    signs: str | None = None,
    other_hands: str | None = None,
    video: str | None = None,
    hold: int = 10,
) -> Path:
    """Write ``count`` scenes to ``out`` (replacing an earlier scene folder there, atomically).

    Args:
        out: folder to write (created; an existing non-scene folder with files is refused).
        seed: the same seed gives the same scenes.
        count: number of frames.
        split: "test" (the bench), "val" (for choosing the hand search's settings) or "dev"
            (validation hands on the training backgrounds, for the palm detector's score).
        empty: fraction of hand-free scenes.
        signs: SIGNS data path (None: $SIGNS_DATA, else ./data).
        other_hands: other-hands folder (test split only); None or "" leaves them out.
        video: also write the scenes as an MJPG .avi here, each held for ``hold`` frames at
            30 fps (JPEG, so lossy: the PNG frames are the reference).
        hold: frames per scene in the video.
    """
    from train.backgrounds import NATURAL_IMAGES, natural_images

    if split not in BACKGROUNDS:
        raise SettingError("split", split, f"expected one of {', '.join(BACKGROUNDS)}")
    out = Path(out)
    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / META_NAME).is_file())
    ):
        raise SettingError("out", out, "exists and is not a scene folder; refusing to replace it")
    hands = load_hands(split, signs, other_hands)
    images = natural_images(BACKGROUNDS[split])
    rng = np.random.default_rng(seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        labels: list[SceneLabel] = []
        for bgr, lab in generate(hands, images, count, empty, rng):
            labels.append(lab)
            if not cv2.imwrite(str(tmp / lab.file), bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
                raise SignsError(f"{tmp / lab.file}: could not write")
        write_labels(tmp / LABELS_NAME, labels)
        if video is not None:
            write_video(tmp, labels, Path(video), hold)
        meta = {
            "schema_version": SCHEMA_VERSION,
            "seed": seed,
            "count": count,
            "split": split,
            "empty": empty,
            "size": [FRAME_W, FRAME_H],
            "hand_sides": list(HAND_SIDES),
            "backgrounds": list(NATURAL_IMAGES[BACKGROUNDS[split]]),
            "hands": {s: sum(1 for h in hands if h[1] == s) for s in {h[1] for h in hands}},
            "whole_photo_patches": sum(1 for h in hands if h[4] is None),
            "video": None if video is None else {"path": str(video), "hold": hold, "fps": 30},
        }
        (tmp / META_NAME).write_text(json.dumps(meta, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def write_video(folder: Path, labels: list[SceneLabel], path: Path, hold: int) -> None:
    """The frames of ``folder`` as an MJPG .avi, each held ``hold`` frames (temp, then rename)."""
    from runtime.fsutil import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(
            str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (FRAME_W, FRAME_H)
        )
        if not writer.isOpened():
            raise SignsError(f"--video {path}: OpenCV cannot write MJPG video here")
        try:
            for lab in labels:
                frame = cv2.imread(str(folder / lab.file), cv2.IMREAD_COLOR)
                for _ in range(hold):
                    writer.write(frame)
        finally:
            writer.release()
