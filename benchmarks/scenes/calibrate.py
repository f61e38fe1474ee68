"""Choose the hand search's threshold on *val* scenes (validation hands, val backgrounds).

For each frame the search's windows are classified once; then, per neighbourhood size, the
frame's best score is compared with every candidate threshold. The chosen threshold is the
lowest one that keeps ``target`` of the empty val scenes at "no sign" (a frame whose best score
stays below it). The test scenes are never read here.
"""

from __future__ import annotations

import cv2
import numpy as np

from benchmarks.scenes.make import read_scenes
from runtime.errors import SignsError

NEIGHBOURHOODS = (1, 3)
SCORES = ("top", "margin")


def _agreed(raw: np.ndarray, grids, k: int) -> np.ndarray:
    out, start = [], 0
    for g in grids:
        p = raw[start : start + g.nx * g.ny].reshape(g.ny, g.nx, -1)
        start += g.nx * g.ny
        if k > 1:
            p = cv2.blur(p, (k, k), borderType=cv2.BORDER_REPLICATE)
        out.append(p.reshape(-1, raw.shape[1]))
    return np.concatenate(out)


def calibrate(
    model: str,
    scenes: str,
    target: float = 0.95,
    sides: tuple[int, ...] | None = None,
    stride: float | None = None,
    skin: float | None = None,
) -> dict:
    """Per neighbourhood size and score: the threshold for ``target`` no-sign on empty val
    scenes, and the val hand accuracy and box hit rate it gives. Prints a table; returns it."""
    from benchmarks.scenes.report import _inside, resolve_models
    from runtime.backends import load_backend
    from runtime.handsearch import HandSearch, SearchConfig, window_scores

    meta, labels = read_scenes(scenes)
    if meta["split"] != "val":
        raise SignsError(f"{scenes}: a {meta['split']!r} scene folder; calibrate on val scenes")
    (name, path), *_ = resolve_models([model])
    d = SearchConfig()
    skin = d.skin if skin is None else skin
    config = SearchConfig(sides=tuple(sides or d.sides), stride=stride or d.stride, skin=skin)
    search = HandSearch(load_backend(path, threads=1), config)
    frames, classified = [], []
    for lab in labels:
        frame = cv2.imread(f"{scenes}/{lab.file}", cv2.IMREAD_COLOR)
        boxes, raw, _ = search.scores(frame)
        frames.append((lab, boxes, raw))
        classified.append(search.classified)
    grids = search.grids(*frame.shape[1::-1])
    out = {
        "model": name,
        "scenes": str(scenes),
        "target": target,
        "sides": [g.side for g in grids],
        "stride": config.stride,
        "windows": int(sum(g.nx * g.ny for g in grids)),
        "skin": skin,
        "classified_mean": round(float(np.mean(classified)), 1),
        "by_neighbourhood": {},
    }
    print(
        f"{name}: sides {out['sides']}, stride {config.stride}, {out['windows']} windows, "
        f"skin {skin}: {out['classified_mean']} classified a frame on average"
    )
    for k, kind in ((k, kind) for k in NEIGHBOURHOODS for kind in SCORES):
        best = []
        for lab, boxes, raw in frames:
            a = _agreed(raw, grids, k)
            score = window_scores(a, kind)
            i = int(score.argmax())
            best.append((lab, float(score[i]), int(a[i].argmax()), tuple(boxes[i])))
        empty = np.array([s for lab, s, _, _ in best if lab.label is None])
        t = float(np.quantile(empty, target, method="higher")) + 1e-6 if len(empty) else 0.5
        hands = [(lab, s, c, b) for lab, s, c, b in best if lab.label is not None]
        acc = float(np.mean([s >= t and c == lab.label for lab, s, c, b in hands]))
        hit = float(np.mean([s >= t and _inside(b, lab.box()) for lab, s, c, b in hands]))
        top1 = float(np.mean([c == lab.label for lab, s, c, b in hands]))
        found = float(np.mean([s >= t for lab, s, c, b in hands]))
        res = {
            "threshold": round(t, 4),
            "val_found": round(found, 4),
            "val_accuracy": round(acc, 4),
            "val_box_hit": round(hit, 4),
            "val_top1_no_threshold": round(top1, 4),
            "val_empty_no_sign": round(float(np.mean(empty < t)), 4),
        }
        out["by_neighbourhood"][f"{k}x{k} {kind}"] = res
        print(f"{k}x{k} {kind:6s}: " + ", ".join(f"{a} {b}" for a, b in res.items()))
    return out
