"""One measurement in a process of its own: ``python -m benchmarks.worker '<json spec>'``.

The parent (:mod:`benchmarks.core`) starts one worker per model and thread count, so the peak
RSS a worker reports is that backend's own footprint, not the benchmark's. Workers for TFLite
and ONNX files never import TensorFlow (the device does not have it); only the ``keras`` and
``train`` modes do. A worker writes its result as JSON to ``spec["out"]``; a user error (bad
model file, missing data) is written as ``{"error": "..."}``.

Peak RSS is the kernel's high-water mark of this process (``VmHWM`` in /proc/self/status).
``getrusage(RUSAGE_SELF).ru_maxrss`` is only the fallback (macOS): on Linux it can include the
memory of the parent that spawned the worker, which would overstate small runtimes.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

import numpy as np

from runtime.stats import peak_rss_mb, percentiles

MIN_TIMED = 20  # timed calls kept even when the time cap is hit, so p50/p95 exist


def time_calls(
    fn: Callable[[int], object], iterations: int, warmup: int, max_seconds: float
) -> np.ndarray:
    """Call ``fn(i)`` ``warmup`` times untimed, then up to ``iterations`` times timed.

    Stops early after ``max_seconds`` of timed calls (but not before ``MIN_TIMED`` calls), so
    a 50 ms Keras call does not take minutes. Returns per-call latencies in microseconds.
    """
    for i in range(warmup):
        fn(i)
    samples = np.empty(iterations, dtype=np.int64)
    clock = time.perf_counter_ns
    deadline = clock() + int(max_seconds * 1e9)
    n = 0
    for i in range(iterations):
        t0 = clock()
        fn(i)
        t1 = clock()
        samples[i] = t1 - t0
        n = i + 1
        if t1 > deadline and n >= MIN_TIMED:
            break
    return samples[:n] / 1000.0


def summarize(us: np.ndarray) -> dict:
    """p50/p95/p99 in microseconds and the number of samples behind them."""
    p50, p95, p99 = percentiles(us, [50, 95, 99])
    return {
        "p50_us": round(float(p50), 1),
        "p95_us": round(float(p95), 1),
        "p99_us": round(float(p99), 1),
        "iterations": int(len(us)),
    }


def _latency_row(us: np.ndarray) -> dict:
    row = summarize(us)
    row["fps"] = round(1e6 / row["p50_us"], 2)  # single-image rate implied by the median
    return row


# --- modes ----------------------------------------------------------------------------------


def bench_backend(spec: dict) -> dict:
    """A .tflite or .onnx file through runtime.backends: load, accuracy, latency, peak RSS."""
    t0 = time.perf_counter()
    from runtime.backends import load_backend, tflite_interpreter_class

    if spec["model"].endswith(".tflite"):
        tflite_interpreter_class()  # imports the TFLite runtime, so load_s is the model alone
    else:
        import onnxruntime  # noqa: F401
    t1 = time.perf_counter()
    backend = load_backend(spec["model"], threads=spec["threads"])
    t2 = time.perf_counter()

    data = np.load(spec["data"])
    x, y = data["x"], data["y"]
    # Accuracy one image at a time, as the camera loop calls it.
    pred = np.array([int(np.argmax(backend.predict_one(img))) for img in x])
    us = time_calls(
        lambda i: backend.predict_one(x[i % len(x)]),
        spec["iterations"],
        spec["warmup"],
        spec["max_seconds"],
    )
    return {
        "backend": backend.runtime.split()[0],
        "runtime": backend.runtime,
        "accuracy": round(float(np.mean(pred == y)), 6),
        "import_s": round(t1 - t0, 4),
        "load_s": round(t2 - t1, 4),
        **_latency_row(us),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        # The device has no TensorFlow; if anything pulled it in, the RSS above would lie.
        "tensorflow_loaded": "tensorflow" in sys.modules,
    }


def bench_keras(spec: dict) -> dict:
    """The Keras baseline: ``model.predict(x[None])`` and ``model(x[None], training=False)``."""
    from train.tfquiet import import_tensorflow

    t0 = time.perf_counter()
    tf = import_tensorflow()
    import keras

    from runtime.preprocess import to_model_input

    # Intra-op threads only: predict's input pipeline also uses inter-op threads, and starving
    # them would make the baseline look slower than Keras really is.
    tf.config.threading.set_intra_op_parallelism_threads(spec["threads"])
    t1 = time.perf_counter()
    model = keras.models.load_model(spec["model"], compile=False)
    t2 = time.perf_counter()

    data = np.load(spec["data"])
    xf, y = to_model_input(data["x"]), data["y"]
    accuracy = float(np.mean(np.argmax(model.predict(xf, verbose=0), axis=1) == y))
    n = len(xf)
    runs = {
        "keras-predict": lambda i: model.predict(xf[i % n][None], verbose=0),
        "keras-call": lambda i: np.asarray(model(xf[i % n][None], training=False)),
    }
    rows = {}
    for backend, fn in runs.items():
        us = time_calls(fn, spec["iterations"], spec["warmup"], spec["max_seconds"])
        rows[backend] = _latency_row(us)
    common = {
        "runtime": f"keras {keras.__version__} / tensorflow {tf.__version__}",
        "accuracy": round(accuracy, 6),
        "import_s": round(t1 - t0, 4),
        "load_s": round(t2 - t1, 4),
    }
    rss = round(peak_rss_mb(), 1)  # one process served both rows
    return {
        "rows": [
            {"backend": b, **common, **r, "peak_rss_mb": rss, "tensorflow_loaded": True}
            for b, r in rows.items()
        ]
    }


def bench_pipeline(spec: dict) -> dict:
    """runtime.pipeline.FramePipeline on a 640x480 video, capture excluded and included."""
    import cv2

    from runtime.backends import load_backend
    from runtime.errors import SourceError
    from runtime.pipeline import FramePipeline

    backend = load_backend(spec["model"], threads=spec["threads"])
    video = spec["video"]

    def open_video() -> cv2.VideoCapture:
        cap = cv2.VideoCapture(video)
        if not cap.isOpened():
            raise SourceError(f"{video}: cannot open the generated video")
        return cap

    cap = open_video()
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if not frames:
        raise SourceError(f"{video}: no frames decoded")
    shape = list(frames[0].shape)

    iterations, warmup, cap_s = spec["iterations"], spec["warmup"], spec["max_seconds"]
    results: dict[str, dict[str, list[float]]] = {}

    # Capture excluded: only FramePipeline.step is timed. Each decoded frame is first copied
    # (untimed) into one buffer, as a camera driver or decoder writes the frame just before the
    # loop reads it; cycling through 100 MB of stored frames would time cache misses instead.
    pipe = FramePipeline(backend)
    stages: dict[str, list[float]] = {}
    total: list[int] = []
    clock = time.perf_counter_ns
    deadline = None
    buf = np.empty_like(frames[0])
    for i in range(warmup + iterations):
        np.copyto(buf, frames[i % len(frames)])
        t0 = clock()
        res = pipe.step(buf)
        t1 = clock()
        if i < warmup:
            continue
        deadline = deadline or t0 + int(cap_s * 1e9)
        total.append(t1 - t0)
        for name, ms in res.times.items():
            stages.setdefault(name, []).append(ms * 1000.0)
        if t1 > deadline and len(total) >= MIN_TIMED:
            break
    results["excluded"] = {**stages, "total": [t / 1000.0 for t in total]}

    # Capture included: cv2.VideoCapture.read (decode of the 640x480 frame) + step.
    pipe = FramePipeline(backend)
    cap = open_video()
    stages, total, grab = {}, [], []
    deadline = None
    i = 0
    while i < warmup + iterations:
        t0 = clock()
        ok, frame = cap.read()
        t1 = clock()
        if not ok:  # end of the video: rewind, untimed
            cap.release()
            cap = open_video()
            continue
        res = pipe.step(frame)
        t2 = clock()
        i += 1
        if i <= warmup:
            continue
        deadline = deadline or t0 + int(cap_s * 1e9)
        grab.append(t1 - t0)
        total.append(t2 - t0)
        for name, ms in res.times.items():
            stages.setdefault(name, []).append(ms * 1000.0)
        if t2 > deadline and len(total) >= MIN_TIMED:
            break
    cap.release()
    results["included"] = {
        "capture": [t / 1000.0 for t in grab],
        **stages,
        "total": [t / 1000.0 for t in total],
    }
    return {
        "frame_shape": shape,
        "runtime": backend.runtime,
        "stages": {
            mode: {name: summarize(np.asarray(v)) for name, v in d.items()}
            for mode, d in results.items()
        },
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def bench_train(spec: dict) -> dict:
    """Seconds per epoch of one training recipe, measured inside a real ``train.run``.

    The recipe is exactly what ``python -m train`` does (with plots off): this process only
    adds a timing callback to the ``fit`` call that ``train.run`` makes, so nothing of the
    recipe is copied here. Epoch times include the validation pass.
    """
    import tempfile

    from train.tfquiet import import_tensorflow

    import_tensorflow()
    import keras

    from train import TrainSettings, run

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self._t0 = 0.0

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.seconds.append(time.perf_counter() - self._t0)

    timer = EpochTimer()
    with tempfile.TemporaryDirectory(prefix="signs-bench-train-") as out:
        settings = TrainSettings(
            data=spec["data"], out=out, plots=False, verbose=0, **spec.get("overrides", {})
        )
        metrics = run(settings, callbacks=[timer])
    settings = settings.resolved()
    if len(timer.seconds) != settings.epochs:
        raise RuntimeError(f"timed {len(timer.seconds)} epochs of {settings.epochs}")
    later = timer.seconds[1:] or timer.seconds
    return {
        "batch_size": settings.batch_size,
        "hands_per_batch": settings.batch_size - settings.outliers,  # the rest: hand-free
        "epochs": settings.epochs,
        "train_images": int(metrics["train"]["n"]),
        "first_epoch_s": round(timer.seconds[0], 3),
        "epoch_s": round(float(np.median(later)), 3),
        "epoch_seconds": [round(t, 3) for t in timer.seconds],
        "fit_s": float(metrics["fit_seconds"]),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def bench_idle(spec: dict) -> dict:
    """Peak RSS of Python + NumPy + OpenCV alone: the floor under every runtime row."""
    import runtime.preprocess  # noqa: F401  (imports cv2)

    return {"peak_rss_mb": round(peak_rss_mb(), 1)}


MODES: dict[str, Callable[[dict], dict]] = {
    "backend": bench_backend,
    "keras": bench_keras,
    "pipeline": bench_pipeline,
    "train": bench_train,
    "idle": bench_idle,
}


def main(argv: list[str]) -> int:
    from runtime.errors import SignsError
    from runtime.fsutil import write_json

    spec = json.loads(argv[0])
    try:
        result = MODES[spec["mode"]](spec)
    except SignsError as exc:
        result = {"error": str(exc)}
    write_json(spec["out"], result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
