"""Turning measured rows into the three outputs: targets, results.md and results.png."""

from __future__ import annotations

import math
from pathlib import Path

FORMAT_ORDER = (
    "keras",
    "tflite-fp32",
    "tflite-fp16",
    "tflite-dynamic",
    "tflite-int8",
    "onnx-fp32",
    "onnx-int8",
)
BACKEND_ORDER = ("keras-predict", "keras-call")

# The targets, as data: (key, description, limit).
SPEEDUP_TARGET = 100.0  # best edge format vs Keras predict, same thread count, x
PIPELINE_TARGET_US = 300.0  # end-to-end p50 per 640x480 frame, capture excluded, us
TFLITE_RSS_TARGET_MB = 150.0  # peak RSS of a process running one TFLite model, MiB
TFLITE_LOAD_TARGET_S = 0.5  # model load (interpreter + allocate), seconds


def _format_key(fmt: str) -> tuple[int, str]:
    return (FORMAT_ORDER.index(fmt) if fmt in FORMAT_ORDER else len(FORMAT_ORDER), fmt)


def sort_rows(rows: list[dict]) -> list[dict]:
    """Keras baselines first, then TFLite and ONNX from widest to narrowest type; threads."""

    def key(r: dict) -> tuple:
        b = r["backend"]
        return (
            _format_key(r["format"]),
            r["threads"],
            BACKEND_ORDER.index(b) if b in BACKEND_ORDER else len(BACKEND_ORDER),
        )

    return sorted(rows, key=key)


def _target(name: str, value, limit: float, ok: bool | None, detail: str) -> dict:
    return {"target": name, "value": value, "limit": limit, "met": ok, "detail": detail}


def evaluate_targets(results: dict) -> list[dict]:
    """The issue's targets checked against this run (``met`` is None when not measured)."""
    rows = results["rows"]
    out = []

    edge = [r for r in rows if r["format"] != "keras" and r.get("speedup_vs_keras_predict")]
    name = f"best edge format >= {SPEEDUP_TARGET:.0f}x faster than Keras predict per image"
    if edge:
        # The best format at each thread count; the target is judged on the least of them.
        best: dict[int, dict] = {}
        for r in edge:
            t = r["threads"]
            if t not in best or r["speedup_vs_keras_predict"] > best[t]["speedup_vs_keras_predict"]:
                best[t] = r
        base = {r["threads"]: r["p50_us"] for r in rows if r["backend"] == "keras-predict"}
        parts = [
            f"{t} thread(s): {r['format']} p50 {_us(r['p50_us'])} us vs Keras predict "
            f"{_us(base[t])} us = {r['speedup_vs_keras_predict']:,.0f}x"
            for t, r in sorted(best.items())
        ]
        s = min(r["speedup_vs_keras_predict"] for r in best.values())
        out.append(_target(name, s, SPEEDUP_TARGET, s >= SPEEDUP_TARGET, "; ".join(parts)))
    else:
        out.append(_target(name, None, SPEEDUP_TARGET, None, "no Keras baseline in this run"))

    totals = [
        p for p in results["pipeline"] if p["capture"] == "excluded" and p["stage"] == "total"
    ]
    name = f"pipeline p50 <= {PIPELINE_TARGET_US:.0f} us per 640x480 frame (capture excluded)"
    if totals:
        best = min(totals, key=lambda p: p["p50_us"])
        each = ", ".join(f"{p['model']} {p['p50_us']:.0f} us" for p in totals)
        out.append(
            _target(
                name, best["p50_us"], PIPELINE_TARGET_US, best["p50_us"] <= PIPELINE_TARGET_US, each
            )
        )
    else:
        out.append(_target(name, None, PIPELINE_TARGET_US, None, "pipeline not measured"))

    tfl = [r for r in rows if r["format"].startswith("tflite")]
    for key, limit, unit, label in (
        ("peak_rss_mb", TFLITE_RSS_TARGET_MB, "MB", "TFLite runtime process peak RSS"),
        ("load_s", TFLITE_LOAD_TARGET_S, "s", "TFLite model load"),
    ):
        name = f"{label} <= {limit:g} {unit}"
        if tfl:
            worst = max(tfl, key=lambda r, k=key: r[k])
            out.append(
                _target(
                    name,
                    worst[key],
                    limit,
                    worst[key] <= limit,
                    f"worst row {worst['format']} t={worst['threads']}: {worst[key]:g} {unit}"
                    + (
                        f"; importing the runtime library takes another {worst['import_s']:g} s"
                        if key == "load_s" and "import_s" in worst
                        else ""
                    ),
                )
            )
        else:
            out.append(_target(name, None, limit, None, "no TFLite rows"))
    return out


# --- markdown -------------------------------------------------------------------------------


def _kib(n: int) -> str:
    return f"{n / 1024:,.1f} KiB"


def _us(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    sep = ["---:" if a == "r" else "---" for a in align]
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(sep) + " |",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def inference_table(rows: list[dict]) -> list[str]:
    header = [
        "format",
        "backend",
        "threads",
        "size",
        "accuracy",
        "load s",
        "p50 µs",
        "p95 µs",
        "p99 µs",
        "FPS",
        "peak RSS MB",
        "× Keras predict",
    ]
    body = []
    for r in rows:
        s = r.get("speedup_vs_keras_predict")
        # A file that failed the export's accuracy gate is still measured, and marked.
        flagged = r.get("status") not in ("passed", "ok", "baseline")
        body.append(
            [
                r["format"] + (f" ({r['status']})" if flagged else ""),
                r["backend"],
                str(r["threads"]),
                _kib(r["size_bytes"]),
                f"{r['accuracy'] * 100:.2f}%",
                f"{r['load_s']:.3f}",
                _us(r["p50_us"]),
                _us(r["p95_us"]),
                _us(r["p99_us"]),
                f"{r['fps']:,.0f}",
                f"{r['peak_rss_mb']:.0f}",
                f"{s:,.1f}×" if s else "n/a",
            ]
        )
    return _table(header, body, "llrrrrrrrrrr")


def pipeline_table(pipeline: list[dict]) -> list[str]:
    """One line per model and capture mode; p50 per stage, then p50/p95/p99 of the total."""
    groups: dict[tuple[str, str], dict[str, dict]] = {}
    stages: list[str] = []
    for p in pipeline:
        groups.setdefault((p["model"], p["capture"]), {})[p["stage"]] = p
        if p["stage"] != "total" and p["stage"] not in stages:
            stages.append(p["stage"])
    if "capture" in stages:  # capture happens first
        stages.insert(0, stages.pop(stages.index("capture")))
    header = [
        "model",
        "capture",
        *(f"{s} p50" for s in stages),
        "total p50",
        "total p95",
        "total p99",
        "frames",
    ]
    body = []
    for (model, capture), d in groups.items():
        tot = d["total"]
        body.append(
            [
                model,
                capture,
                *(_us(d[s]["p50_us"]) if s in d else "" for s in stages),
                f"**{_us(tot['p50_us'])}**",
                _us(tot["p95_us"]),
                _us(tot["p99_us"]),
                str(tot["iterations"]),
            ]
        )
    return _table(header, body, "ll" + "r" * (len(header) - 2))


def training_table(training: list[dict]) -> list[str]:
    header = [
        "recipe",
        "batch",
        "steps/epoch",
        "s/epoch",
        "first epoch s",
        "epochs timed",
        "full run (est.)",
    ]
    body = [
        [
            t["name"],
            str(t["batch_size"]),
            str(t["steps_per_epoch"]),
            f"{t['epoch_s']:.2f}",
            f"{t['first_epoch_s']:.2f}",
            str(t["epochs"]),
            f"{t['full_run_epochs']} epochs ≈ {t['full_run_est_s'] / 60:.1f} min",
        ]
        for t in training
    ]
    return _table(header, body, "lrrrrrl")


def render_markdown(results: dict) -> str:
    m = results["machine"]
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items())
    st = results["settings"]
    lines = [
        f"# signs-edge benchmarks: {m['host']}",
        "",
        f"- CPU: {m['cpu']} ({m['arch']}, {m['cores']} cores; "
        f"SIMD: {', '.join(m['simd']) or 'none read'})",
        f"- OS: {m['os']}; {libs}",
        f"- Load average (1/5/15 min) at start {m['load_avg_start']}, end {m['load_avg_end']}",
        f"- Run: {results['date']}, {results['duration_s']:.0f} s, "
        f"{'quick' if st['quick'] else 'full'}; up to {st['iterations']} timed calls per row "
        f"after {st['warmup']} warm-up calls, at most {st['max_seconds']:g} s per row",
        f"- Models: {results['manifest']}; data: {results['data']}",
        "",
        "## Inference, one 64x64 image per call",
        "",
        *inference_table(results["rows"]),
        "",
        "Latency is one `predict_one` call of the runtime backend on a 64x64 uint8 RGB image, "
        "input scaling or quantization included (Keras: `model.predict(x[None])` and "
        "`model(x[None], training=False)` on the float input). FPS = 1e6 / p50. Accuracy: the "
        "test set through the same call. Load: creating the interpreter or session (Keras: "
        "`load_model`), imports excluded. Peak RSS: high-water mark of a fresh process that "
        "only loads and runs that model (Python + NumPy + OpenCV alone: "
        f"{results['idle_rss_mb']} MB). × Keras predict: Keras predict p50 / row p50 at the "
        "same thread count, in this run. Threads: LiteRT `num_threads`, onnxruntime "
        "`intra_op_num_threads`, TensorFlow intra-op threads.",
        "",
    ]
    if results["pipeline"]:
        threads = results["pipeline"][0]["threads"]
        lines += [
            f"## Frame pipeline, 640x480 video, {threads} inference thread(s)",
            "",
            *pipeline_table(results["pipeline"]),
            "",
            "Microseconds per frame through `runtime.pipeline.FramePipeline.step` (the "
            "`runtime.webcam` loop), smoothing on. Capture excluded: frames decoded beforehand, "
            "each copied into the frame buffer just before its (timed) step; capture included: "
            "`cv2.VideoCapture.read` of the MJPG video (decoding a 640x480 JPEG) is timed too. "
            "A camera delivering raw frames costs less than that decode.",
            "",
        ]
    if results["training"]:
        lines += [
            "## Training cost (Keras, all cores)",
            "",
            *training_table(results["training"]),
            "",
            "Each recipe is one real `train.run` (what `python -m train` runs, plots off) in a "
            "fresh process, timed per epoch with validation included: the first epoch (which "
            "also traces the graph) apart, s/epoch the median of the others. Full run: first "
            "epoch + the remaining epochs at s/epoch.",
            "",
        ]
    lines += ["## Targets", ""]
    for t in results["targets"]:
        mark = {True: "met", False: "**missed**", None: "not measured"}[t["met"]]
        lines.append(f"- {t['target']}: {mark} ({t['detail']})")
    if results["notes"]:
        lines += ["", "## Notes", "", *(f"- {n}" for n in results["notes"])]
    return "\n".join(lines) + "\n"


# --- plot -----------------------------------------------------------------------------------

_COLORS = {"keras": "#7f7f7f", "tflite": "#1f77b4", "onnx": "#ff7f0e"}


def render_png(results: dict, path: Path) -> None:
    """Latency (log) against accuracy, marker area ~ file size, one point per format/backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from runtime.fsutil import atomic_path

    rows = results["rows"]
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=120)
    ax.set_xlabel("latency p50 per image (µs, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.text(
        0.99,
        0.02,
        "marker area ~ file size; blue TFLite, orange ONNX, grey Keras",
        transform=ax.transAxes,
        ha="right",
        fontsize=8,
        color="0.3",
    )
    if rows:
        t_min = min(r["threads"] for r in rows)
        pts = sorted((r for r in rows if r["threads"] == t_min), key=lambda r: r["p50_us"])
        ax.set_title(
            f"SIGNS CNN, one image per call, {t_min} thread(s): {results['machine']['cpu']}",
            fontsize=10,
        )
        ax.set_xscale("log")
        xs = [r["p50_us"] for r in pts]
        ax.set_xlim(min(xs) / 2, max(xs) * 12)  # room for the slowest point's label
        ys = [r["accuracy"] * 100 for r in pts]
        lo, hi = min(ys), max(ys)
        pad = max(2.0, (hi - lo) * 0.5)
        ax.set_ylim(lo - pad, min(100.5, hi + pad))
        biggest = max(r["size_bytes"] for r in pts)
        for r in pts:
            ax.scatter(
                r["p50_us"],
                r["accuracy"] * 100,
                s=_marker_area(r["size_bytes"], biggest),
                color=_COLORS.get(r["format"].split("-")[0], "#2ca02c"),
                alpha=0.6,
                edgecolors="black",
                linewidths=0.6,
                zorder=3,
            )
        names = [r["backend"] if r["format"] == "keras" else r["format"] for r in pts]
        _place_labels(fig, ax, pts, names, [_marker_area(r["size_bytes"], biggest) for r in pts])
    else:
        fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)


def _marker_area(size_bytes: int, biggest: int) -> float:
    """Scatter marker area in pt^2: proportional to file size, with a visible minimum."""
    return 40 + 900 * size_bytes / biggest


Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in points


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _place_labels(fig, ax, pts: list[dict], names: list[str], areas: list[float]) -> None:
    """Label every point without covering another label or marker.

    Formats often share an accuracy and differ by a few microseconds, so their markers
    overlap. Such a crowd gets a column of one-line labels beside it (right or left, above or
    below, the first spot that is free), ordered so that no two leader lines cross: the label
    farthest from the crowd goes to the point farthest from the column. A lone point gets a
    two-line label at the first free corner.
    """
    fig.tight_layout()  # fix the axes geometry before measuring distances on it
    px = fig.dpi / 72.0  # display pixels per point
    xy = [ax.transData.transform((r["p50_us"], r["accuracy"] * 100)) / px for r in pts]
    rad = [math.sqrt(a) / 2 for a in areas]  # marker radius, points
    frame = ax.get_window_extent()
    inside = (frame.x0 / px, frame.y0 / px, frame.x1 / px, frame.y1 / px)
    markers = [(x - r, y - r, x + r, y + r) for (x, y), r in zip(xy, rad, strict=True)]
    placed: list[Box] = []

    def free(box: Box, own: set[int]) -> bool:
        within = (
            box[0] >= inside[0] and box[2] <= inside[2] and box[1] >= inside[1]
            and box[3] <= inside[3]
        )  # fmt: skip
        return (
            within
            and not any(_overlaps(box, b) for b in placed)
            and not any(_overlaps(box, m) for j, m in enumerate(markers) if j not in own)
        )

    # Crowds: points whose markers (nearly) touch, joined transitively.
    parent = list(range(len(pts)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(pts)):
        for j in range(i + 1, len(pts)):
            dx, dy = abs(xy[i][0] - xy[j][0]), abs(xy[i][1] - xy[j][1])
            if dx < rad[i] + rad[j] + 40 and dy < rad[i] + rad[j] + 6:
                parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(pts)):
        groups.setdefault(root(i), []).append(i)

    line = {"arrowstyle": "-", "color": "0.35", "lw": 0.6}
    char_w, line_h = 4.8, 13.0  # points per character and per line at 8 pt
    for members in sorted(groups.values(), key=len, reverse=True):  # crowds first
        own = set(members)
        if len(members) == 1:
            (i,) = members
            r = pts[i]
            text = f"{names[i]}\n{_us(r['p50_us'])} µs, {_kib(r['size_bytes'])}"
            w, h = char_w * max(len(t) for t in text.splitlines()), 2 * line_h
            x, y, g = xy[i][0], xy[i][1], rad[i] * 0.7 + 4
            corners = ((g, g), (g, -g - h), (-g - w, g), (-g - w, -g - h))
            boxes = [(x + dx, y + dy, x + dx + w, y + dy + h) for dx, dy in corners]
            k = next((k for k, b in enumerate(boxes) if free(b, own)), 0)
            placed.append(boxes[k])
            ax.annotate(
                text,
                (r["p50_us"], r["accuracy"] * 100),
                xytext=corners[k],
                textcoords="offset points",
                ha="left",
                va="bottom",
                fontsize=8,
                arrowprops=line,
            )
            continue

        texts = {
            i: f"{names[i]}: {_us(pts[i]['p50_us'])} µs, {_kib(pts[i]['size_bytes'])}"
            for i in members
        }
        width = char_w * max(len(t) for t in texts.values())
        height = line_h * len(members)
        right = max(xy[i][0] + rad[i] for i in members) + 12
        left = min(xy[i][0] - rad[i] for i in members) - 12
        top = max(xy[i][1] + rad[i] for i in members) + 6
        bottom = min(xy[i][1] - rad[i] for i in members) - 6
        options = []
        for side in ("right", "left"):
            x0 = right if side == "right" else left - width
            for vert in ("above", "below"):
                y0 = top if vert == "above" else bottom - height
                options.append((side, vert, (x0, y0, x0 + width, y0 + height)))
        side, vert, box = next((o for o in options if free(o[2], own)), options[0])
        placed.append(box)
        column_x = box[0] if side == "right" else box[2]
        # Farthest-from-the-column point gets the label farthest from the crowd.
        by_reach = sorted(members, key=lambda i: -abs(column_x - xy[i][0]))
        for k, i in enumerate(by_reach):
            row = k if vert == "above" else len(members) - 1 - k  # row 0 at the column's top
            y_mid = box[3] - line_h * (row + 0.5)
            ax.annotate(
                texts[i],
                (pts[i]["p50_us"], pts[i]["accuracy"] * 100),
                xytext=(column_x - xy[i][0], y_mid - xy[i][1]),
                textcoords="offset points",
                ha="left" if side == "right" else "right",
                va="center",
                fontsize=8,
                arrowprops={**line, "relpos": (0.0 if side == "right" else 1.0, 0.5)},
            )
