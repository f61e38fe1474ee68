"""Choose the hand search's threshold on *val* scenes (validation hands, val backgrounds).

For each frame the search's windows are classified once; then, per neighbourhood size, the
frame's best score is compared with every candidate threshold. The chosen threshold is the
lowest one that keeps ``target`` of the empty val scenes at "no sign" (a frame whose best score
stays below it). The test scenes are never read here.

``python -m train`` calls the same code (:func:`calibrate_search`) on val scenes it generates in
memory, with the runtime's search settings only, and records the result with the model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import cv2
import numpy as np

from benchmarks.scenes.make import FRAME_H, FRAME_W, SceneLabel, read_scenes
from runtime.errors import SignsError
from train.calibrate import NO_SIGN_TARGET

NEIGHBOURHOODS = (1, 3)
SCORES = ("top", "margin")
CHUNK = 64  # frames whose windows are classified in one predict call

Frame = tuple[SceneLabel, np.ndarray, np.ndarray, int]  # label, boxes, raw probs, classified


def _agreed(raw: np.ndarray, grids, k: int) -> np.ndarray:
    out, start = [], 0
    for g in grids:
        p = raw[start : start + g.nx * g.ny].reshape(g.ny, g.nx, -1)
        start += g.nx * g.ny
        if k > 1:
            p = cv2.blur(p, (k, k), borderType=cv2.BORDER_REPLICATE)
        out.append(p.reshape(-1, raw.shape[1]))
    return np.concatenate(out)


def window_probs(
    search,
    frames: Iterable[tuple[np.ndarray, SceneLabel]],
    predict: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[Frame]:
    """Every window of every frame classified, as the search classifies it.

    Args:
        search: a :class:`runtime.handsearch.HandSearch` (its windows and skin proposal).
        frames: (BGR frame, label) pairs, all of one size; only the windows are kept.
        predict: (N, 64, 64, 3) uint8 -> (N, 6) probabilities; None: the search's backend in
            its batches of 8, as the runtime calls it. The windows of :data:`CHUNK` frames go
            in one call (a Keras model's per-call overhead is what makes calibration slow).
    """
    predict = predict or search.predict
    out: list[Frame] = []
    pending: list[tuple[SceneLabel, np.ndarray, np.ndarray | None]] = []

    def flush() -> None:
        if not pending:
            return
        probs = predict(np.concatenate([b for _, b, _ in pending]))
        start = 0
        for lab, batch, which in pending:
            boxes, raw, _ = search.combine(probs[start : start + len(batch)], which)
            out.append((lab, boxes, raw, len(batch)))
            start += len(batch)
        pending.clear()

    for frame, lab in frames:
        if len(pending) >= CHUNK:
            flush()
        pending.append((lab, *search.proposals(frame)))
    flush()
    return out


def best_windows(frames: list[Frame], grids, k: int, kind: str) -> list[tuple]:
    """Per frame: (label, best score, its class, its box) for neighbourhood ``k`` and score
    ``kind`` (see :class:`runtime.handsearch.SearchConfig`)."""
    from runtime.handsearch import window_scores

    best = []
    for lab, boxes, raw, _ in frames:
        a = _agreed(raw, grids, k)
        score = window_scores(a, kind)
        i = int(score.argmax())
        best.append((lab, float(score[i]), int(a[i].argmax()), tuple(boxes[i])))
    return best


def threshold_for(best: list[tuple], target: float = NO_SIGN_TARGET) -> dict:
    """The lowest threshold with ``target`` of the empty frames below it, and its rates.

    ``hands_shown``: hand frames whose best score passes it; ``hands_correct_shown``: passes
    with the right class; ``box_hit``: passes with the box's centre on the hand.
    """
    from benchmarks.scenes.report import _inside

    empty = np.array([s for lab, s, _, _ in best if lab.label is None])
    t = float(np.quantile(empty, target, method="higher")) + 1e-6 if len(empty) else 0.5
    hands = [(lab, s, c, b) for lab, s, c, b in best if lab.label is not None]

    def rate(hits: list[bool]) -> float | None:
        return round(float(np.mean(hits)), 4) if hits else None

    return {
        "threshold": round(t, 4),
        "empty_no_sign": rate([s < t for s in empty]),
        "hands_shown": rate([s >= t for lab, s, c, b in hands]),
        "hands_correct_shown": rate([s >= t and c == lab.label for lab, s, c, b in hands]),
        "box_hit": rate([s >= t and _inside(b, lab.box()) for lab, s, c, b in hands]),
        "hands_top1_no_threshold": rate([c == lab.label for lab, s, c, b in hands]),
    }


def calibrate_search(
    predict: Callable[[np.ndarray], np.ndarray],
    frames: Iterable[tuple[np.ndarray, SceneLabel]],
    target: float = NO_SIGN_TARGET,
) -> dict:
    """The threshold of the runtime's own search settings (``SearchConfig()``) for a model.

    Args:
        predict: the model, (N, 64, 64, 3) uint8 -> (N, 6) probabilities.
        frames: 640x480 val scenes, e.g. :func:`benchmarks.scenes.make.generate` of
            validation hands on the val backgrounds.
        target: share of the empty scenes that must stay at "no sign".
    """
    from runtime.handsearch import HandSearch, SearchConfig

    config = SearchConfig()
    search = HandSearch(None, config)  # type: ignore[arg-type]  # predict replaces the backend
    found = window_probs(search, frames, predict)
    grids = search.grids(FRAME_W, FRAME_H)
    res = threshold_for(best_windows(found, grids, config.neighbourhood, config.score), target)
    return {
        **res,
        "target_empty_no_sign": target,
        "score": config.score,
        "neighbourhood": config.neighbourhood,
        "sides": [g.side for g in grids],
        "stride": config.stride,
        "skin": config.skin,
        "scenes": len(found),
        "empty_scenes": sum(1 for f in found if f[0].label is None),
        "windows_classified_mean": round(float(np.mean([f[3] for f in found])), 1),
    }


def calibrate(
    model: str,
    scenes: str,
    target: float = NO_SIGN_TARGET,
    sides: tuple[int, ...] | None = None,
    stride: float | None = None,
    skin: float | None = None,
) -> dict:
    """Per neighbourhood size and score: the threshold for ``target`` no-sign on empty val
    scenes, and the val hand accuracy and box hit rate it gives. Prints a table; returns it."""
    from benchmarks.scenes.report import resolve_models
    from runtime.backends import load_backend
    from runtime.handsearch import HandSearch, SearchConfig

    meta, labels = read_scenes(scenes)
    if meta["split"] != "val":
        raise SignsError(f"{scenes}: a {meta['split']!r} scene folder; calibrate on val scenes")
    (name, path), *_ = resolve_models([model])
    d = SearchConfig()
    skin = d.skin if skin is None else skin
    config = SearchConfig(sides=tuple(sides or d.sides), stride=stride or d.stride, skin=skin)
    search = HandSearch(load_backend(path, threads=1), config)
    frames = window_probs(
        search, ((cv2.imread(f"{scenes}/{lab.file}", cv2.IMREAD_COLOR), lab) for lab in labels)
    )
    grids = search.grids(FRAME_W, FRAME_H)
    out = {
        "model": name,
        "scenes": str(scenes),
        "target": target,
        "sides": [g.side for g in grids],
        "stride": config.stride,
        "windows": int(sum(g.nx * g.ny for g in grids)),
        "skin": skin,
        "classified_mean": round(float(np.mean([f[3] for f in frames])), 1),
        "by_neighbourhood": {},
    }
    print(
        f"{name}: sides {out['sides']}, stride {config.stride}, {out['windows']} windows, "
        f"skin {skin}: {out['classified_mean']} classified a frame on average"
    )
    for k, kind in ((k, kind) for k in NEIGHBOURHOODS for kind in SCORES):
        res = threshold_for(best_windows(frames, grids, k, kind), target)
        out["by_neighbourhood"][f"{k}x{k} {kind}"] = res
        print(f"{k}x{k} {kind:6s}: " + ", ".join(f"{a} {b}" for a, b in res.items()))
    return out
