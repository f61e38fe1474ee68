"""The scene bench's report: per model, accuracy on hand scenes and "no sign" on empty ones.

Every number comes from the runtime's own code on the scene frames:

- **centred**: the hand's box cut out and classified (``runtime.preprocess`` + backend): the
  "cluttered background, hand centred" figure. ``top1`` ignores the threshold; ``shown`` is the
  label the loop would show (top probability >= ``--min-confidence``).
- **roi**: the full frame through :class:`runtime.pipeline.FramePipeline` with its default
  centred ROI, as ``runtime.webcam`` runs it.
- **search**: the same pipeline with :class:`runtime.handsearch.HandSearch` (``--find-hand
  --hand-finder scan``);
- **palm**: the same pipeline with :class:`runtime.palm.search.PalmSearch` (``--find-hand``,
  the default finder), when the palm detector file is there (``python -m runtime.palm``).

Scenes are independent stills, so the pipelines run with ``smooth=0`` and the search is reset
before each scene: a single frame decides (no help from earlier frames). "No sign" on the empty
scenes is the share of frames whose label is None. Time: the median wall time of
``FramePipeline.step`` (what the webcam and ``python -m benchmarks`` time), capture excluded;
the CPU is shared, so the load average is recorded with it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.scenes.make import SceneLabel, read_scenes
from runtime.errors import SignsError
from runtime.fsutil import ensure_writable_dir, write_json, write_text

DEFAULT_FORMAT = "tflite-int8"


def resolve_models(paths: list[str], fmt: str = DEFAULT_FORMAT) -> list[tuple[str, Path]]:
    """[(name, model file)]: an export folder gives its ``fmt`` file, a file is taken as is.
    Names are the shortest path endings that tell the models apart (``s1/export/tflite-int8``
    and ``s2/export/tflite-int8`` for two runs' export folders)."""
    from runtime.manifest import MANIFEST_NAME, read_manifest

    named, files = [], []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            manifest = read_manifest(path / MANIFEST_NAME)
            entries = [m for m in manifest.models if m.format == fmt]
            if not entries or not entries[0].path.is_file():
                raise SignsError(f"--models {path}: no {fmt} file in its manifest")
            named.append(path.resolve() / fmt)
            files.append(entries[0].path)
        elif path.is_file():
            named.append(path.resolve())
            files.append(path)
        else:
            raise SignsError(f"--models {path}: no such model file or export folder")
    if len(set(named)) < len(named):
        raise SignsError(f"--models: a model is given twice ({' '.join(paths)})")
    for k in range(2, max(len(n.parts) for n in named) + 1):
        names = ["/".join(n.parts[-k:]) for n in named]
        if len(set(names)) == len(names):
            break
    return list(zip(names, files, strict=True))


def _inside(box: tuple[int, int, int], truth: tuple[int, int, int, int]) -> bool:
    """The found box's centre lies inside the true hand square."""
    cx, cy = box[0] + box[2] / 2, box[1] + box[2] / 2
    return truth[0] <= cx <= truth[0] + truth[2] and truth[1] <= cy <= truth[1] + truth[3]


def _rate(hits: list[bool]) -> float | None:
    return round(float(np.mean(hits)), 4) if hits else None


def evaluate_model(
    model: Path,
    folder: Path,
    labels: list[SceneLabel],
    min_confidence: float,
    search_config=None,
    palm_model: Path | None = None,
) -> dict:
    """All figures of one model on one scene folder (see the module docstring); the palm
    finder's only with a ``palm_model``."""
    from runtime.backends import load_backend
    from runtime.handsearch import HandSearch
    from runtime.pipeline import FramePipeline
    from runtime.preprocess import preprocess

    backend = load_backend(model, threads=1)
    roi = FramePipeline(load_backend(model, threads=1), smooth=0, min_confidence=min_confidence)
    search = HandSearch(backend, search_config)
    finders = {"search": search}
    if palm_model is not None:
        from runtime.handfinder import make_finder

        finders["palm"] = make_finder(backend, "palm", 0.0, palm_model)
    pipes = {
        name: FramePipeline(backend, smooth=0, min_confidence=min_confidence, search=f)
        for name, f in finders.items()
    }
    rows = []
    step_ms: dict[str, list[float]] = {"roi": [], **{k: [] for k in finders}}
    cpu_ms: dict[str, list[float]] = {k: [] for k in step_ms}
    cpu = time.thread_time
    classified: list[int] = []
    for lab in labels:
        frame = cv2.imread(str(folder / lab.file), cv2.IMREAD_COLOR)
        if frame is None:
            raise SignsError(f"{folder / lab.file}: unreadable frame")
        row = {"label": lab.label, "source": lab.source}
        for name, pipe in (("roi", roi), *pipes.items()):
            if name in finders:
                finders[name].reset()
            c0, t0 = cpu(), time.perf_counter()
            r = pipe.step(frame)
            c1, t1 = cpu(), time.perf_counter()
            step_ms[name].append((t1 - t0) * 1e3)
            cpu_ms[name].append((c1 - c0) * 1e3)
            row[name] = r.label
            if name in finders and lab.label is not None:
                row[f"{name}_box_hit"] = bool(r.found) and _inside(r.box, lab.box())
        classified.append(search.classified)
        if lab.label is not None:
            x, y, w, h = lab.box()
            crop = preprocess(frame[y : y + h, x : x + w], bgr=True)
            p = backend.predict_one(crop)
            row["centred_top1"] = int(p.argmax())
            row["centred"] = int(p.argmax()) if p.max() >= min_confidence else None
        rows.append(row)
    hands = [r for r in rows if r["label"] is not None]
    empty = [r for r in rows if r["label"] is None]

    def acc(key: str, subset: list[dict]) -> float | None:
        return _rate([r[key] == r["label"] for r in subset])

    sources = sorted({r["source"] for r in hands})
    result = {
        "model": str(model),
        "hand_scenes": len(hands),
        "empty_scenes": len(empty),
        "centred_top1": acc("centred_top1", hands),
        "centred": acc("centred", hands),
        "roi": acc("roi", hands),
        "search": acc("search", hands),
        "search_box_hit": _rate([r["search_box_hit"] for r in hands]),
        "palm": None,
        "palm_box_hit": None,
        "roi_no_sign_empty": _rate([r["roi"] is None for r in empty]),
        "search_no_sign_empty": _rate([r["search"] is None for r in empty]),
        "palm_no_sign_empty": None,
        "per_source": {
            src: {
                k: acc(k, [r for r in hands if r["source"] == src])
                for k in ("centred_top1", "centred", "roi", *finders)
            }
            for src in sources
        },
    }
    if "palm" in finders:
        result["palm"] = acc("palm", hands)
        result["palm_box_hit"] = _rate([r["palm_box_hit"] for r in hands])
        result["palm_no_sign_empty"] = _rate([r["palm"] is None for r in empty])
    for key in ("roi", "search", "palm"):
        ms = step_ms.get(key)
        if not ms:  # the palm finder not run
            for field in ("step_ms_p50", "fps", "step_cpu_ms_p50"):
                result[f"{key}_{field}"] = None
            continue
        med = float(np.median(ms))
        result[f"{key}_step_ms_p50"] = round(med, 3)
        result[f"{key}_fps"] = round(1000.0 / med, 1)
        # This thread's CPU time: what the step costs when it has a core to itself (the wall
        # time above also counts waiting for a core on a shared machine).
        result[f"{key}_step_cpu_ms_p50"] = round(float(np.median(cpu_ms[key])), 3)
    grids = search.grids(640, 480)
    result["windows_per_frame"] = int(sum(g.nx * g.ny for g in grids))
    result["windows_classified_mean"] = round(float(np.mean(classified)), 1)
    return result


COLUMNS = (
    ("centred_top1", "hand centred (top-1)"),
    ("centred", "hand centred (shown)"),
    ("roi", "full frame, centred ROI"),
    ("search", "full frame, scan"),
    ("search_box_hit", "box on the hand (scan)"),
    ("palm", "full frame, palm"),
    ("palm_box_hit", "box on the hand (palm)"),
    ("roi_no_sign_empty", "empty: no sign (ROI)"),
    ("search_no_sign_empty", "empty: no sign (scan)"),
    ("palm_no_sign_empty", "empty: no sign (palm)"),
    ("roi_fps", "FPS (ROI)"),
    ("search_fps", "FPS (scan)"),
    ("palm_fps", "FPS (palm)"),
)
FPS_COLUMNS = 3  # the last three, whole numbers


def _thresholds(results: dict, key: str = "min_confidence") -> str:
    """The "no sign" threshold(s) (or ``key``'s) used, with where each came from."""
    seen: dict[str, list[str]] = {}
    for name, r in results["models"].items():
        value = r.get(key, results.get(key))
        where = r.get(f"{key}_source", f"--{key.replace('_', '-')}")
        seen.setdefault(f"{value:g} ({where})", []).append(name)
    if len(seen) <= 1:
        return next(iter(seen), "-")
    return "; ".join(f"{k} for {', '.join(v)}" for k, v in seen.items())


def render_markdown(results: dict) -> str:
    meta = results["scenes"]
    lines = [
        "# Scene bench",
        "",
        f"{meta['count']} synthetic 640x480 scenes ({meta['split']} split, seed {meta['seed']}, "
        f"{results['hand_scenes']} with a hand, {results['empty_scenes']} empty); backgrounds: "
        f"{', '.join(meta['backgrounds'])}; min confidence {_thresholds(results)}; "
        f"--find-hand threshold {_thresholds(results, 'search_threshold')}; "
        f"smoothing off, one frame per scene. Load average (1/5/15 min) at start "
        f"{results['load_avg']['start']}, at end {results['load_avg']['end']} on "
        f"{os.cpu_count()} cores.",
        "",
        "| model | " + " | ".join(c[1] for c in COLUMNS) + " |",
        "| --- |" + " --- |" * len(COLUMNS),
    ]
    for name, r in results["models"].items():
        cells = ["-" if r[k] is None else f"{r[k]:.3f}" for k, _ in COLUMNS[:-FPS_COLUMNS]]
        cells += ["-" if r[k] is None else f"{r[k]:.0f}" for k, _ in COLUMNS[-FPS_COLUMNS:]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Per hand source (accuracy):", ""]
    lines += ["| model | source | centred top-1 | centred shown | ROI | scan | palm |"]
    lines += ["| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in results["models"].items():
        for src, v in r["per_source"].items():
            keys = ("centred_top1", "centred", "roi", "search", "palm")
            cells = ["-" if v.get(k) is None else f"{v[k]:.3f}" for k in keys]
            lines.append(f"| {name} | {src} | " + " | ".join(cells) + " |")
    w = next(iter(results["models"].values()), {}).get("windows_per_frame")
    lines += [
        "",
        f"The search scans {w} windows a frame (those with enough skin-coloured pixels are "
        "classified). Step time, median ms (wall / CPU):",
        "",
    ]
    for name, r in results["models"].items():
        lines.append(
            f"- {name}: ROI {r['roi_step_ms_p50']} / {r['roi_step_cpu_ms_p50']}; "
            f"scan {r['search_step_ms_p50']} / {r['search_step_cpu_ms_p50']} "
            f"({r['windows_classified_mean']} windows classified a frame on average); "
            + (
                f"palm {r['palm_step_ms_p50']} / {r['palm_step_cpu_ms_p50']}"
                if r.get("palm_step_ms_p50") is not None
                else "palm not run (no detector file)"
            )
        )
    return "\n".join(lines) + "\n"


def run_report(
    models: list[str],
    scenes: str | Path,
    out: str | Path,
    min_confidence: float | None,
    fmt: str = DEFAULT_FORMAT,
    search_threshold: float | None = None,
    palm_model: str | Path | None = None,
) -> dict:
    """Evaluate every model on the scene folder; write results.json and results.md to ``out``.

    ``min_confidence`` / ``search_threshold`` None: each model's own (its manifest's calibrated
    value, else the runtime's default). ``palm_model`` None: the fetched detector if it is
    there (:func:`runtime.palm.fetch.default_path`), else the palm columns stay empty.
    """
    from runtime.handsearch import SearchConfig
    from runtime.modelinfo import describe_model
    from runtime.palm.fetch import default_path

    meta, labels = read_scenes(scenes)
    if palm_model is not None and not Path(palm_model).is_file():
        raise SignsError(f"--palm-model {palm_model}: no such file (python -m runtime.palm)")
    palm = Path(palm_model) if palm_model is not None else default_path()
    if not palm.is_file():
        print(f"palm finder skipped: no detector at {palm} (python -m runtime.palm fetches it)")
        palm = None
    resolved = resolve_models(models, fmt)
    out = ensure_writable_dir(out)
    load0 = os.getloadavg()
    results = {
        "scenes": {**meta, "folder": str(scenes)},
        "hand_scenes": sum(1 for lab in labels if lab.label is not None),
        "empty_scenes": sum(1 for lab in labels if lab.label is None),
        "min_confidence": min_confidence,
        "search_threshold": search_threshold,
        "models": {},
    }
    for name, path in resolved:
        print(f"{name}: {len(labels)} scenes ...", flush=True)
        info = describe_model(path, verify=False)
        min_conf, origin = info.no_sign.resolve(min_confidence)
        threshold, search_origin = info.hand_search.resolve(search_threshold)
        config = SearchConfig().with_threshold(threshold)
        r = evaluate_model(path, Path(scenes), labels, min_conf, config, palm)
        r["min_confidence"], r["min_confidence_source"] = min_conf, origin
        r["search_threshold"], r["search_threshold_source"] = threshold, search_origin
        results["models"][name] = r
        print(
            f"  centred {r['centred_top1']}  roi {r['roi']}  scan {r['search']}  "
            f"palm {r['palm']}  empty no-sign roi {r['roi_no_sign_empty']} "
            f"scan {r['search_no_sign_empty']} palm {r['palm_no_sign_empty']}  "
            f"fps {r['roi_fps']} / {r['search_fps']} / {r['palm_fps']}",
            flush=True,
        )
    results["load_avg"] = {
        "start": [round(v, 2) for v in load0],
        "end": [round(v, 2) for v in os.getloadavg()],
    }
    write_json(out / "results.json", results)
    write_text(out / "results.md", render_markdown(results))
    print(f"wrote {out / 'results.json'} and results.md")
    return results
