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
    """Latency (log) against accuracy, marker area ~ file size, one point per format/backend.

    Formats often share an accuracy and differ by a few microseconds, so labels beside the
    points would collide. Each point carries a number instead (fastest first) and a table
    beside the plot names it, with its latency, size and accuracy: readable however crowded.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from runtime.fsutil import atomic_path

    rows = results["rows"]
    fig, (ax, key) = plt.subplots(
        1, 2, figsize=(11, 5.5), dpi=120, gridspec_kw={"width_ratios": [2.3, 1]}
    )
    ax.set_xlabel("latency p50 per image (µs, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, which="both", alpha=0.3)
    key.axis("off")
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
        fig.suptitle(
            f"SIGNS CNN, one image per call, {t_min} thread(s): {results['machine']['cpu']}",
            fontsize=10,
        )
        ax.set_xscale("log")
        xs = [r["p50_us"] for r in pts]
        ax.set_xlim(min(xs) / 2, max(xs) * 2)
        ys = [r["accuracy"] * 100 for r in pts]
        lo, hi = min(ys), max(ys)
        pad = max(2.0, (hi - lo) * 0.5)
        ax.set_ylim(lo - pad, min(100.5, hi + pad))
        biggest = max(r["size_bytes"] for r in pts)
        lines = [f"{'':>2}  {'format':<15}{'p50 µs':>9}{'size':>13}{'acc %':>7}"]
        for n, r in enumerate(pts, start=1):
            x, y = r["p50_us"], r["accuracy"] * 100
            area = _marker_area(r["size_bytes"], biggest)
            ax.scatter(
                x,
                y,
                s=area,
                color=_COLORS.get(r["format"].split("-")[0], "#2ca02c"),
                alpha=0.6,
                edgecolors="black",
                linewidths=0.6,
                zorder=3,
            )
            # Just outside the marker, alternately above and below, so that neighbours on the
            # same accuracy row keep their numbers apart.
            dy = (math.sqrt(area) / 2 + 6) * (1 if n % 2 else -1)
            ax.annotate(
                str(n), (x, y), xytext=(0, dy), textcoords="offset points", ha="center",
                va="center", fontsize=8, fontweight="bold", zorder=4,
            )  # fmt: skip
            name = r["backend"] if r["format"] == "keras" else r["format"]
            lines.append(
                f"{n:>2}  {name:<15}{_us(r['p50_us']):>9}{_kib(r['size_bytes']):>13}{y:>7.2f}"
            )
        key.text(0.0, 0.98, "\n".join(lines), va="top", ha="left", family="monospace", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)


def _marker_area(size_bytes: int, biggest: int) -> float:
    """Scatter marker area in pt^2: proportional to file size, with a visible minimum."""
    return 40 + 900 * size_bytes / biggest
