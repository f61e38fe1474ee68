"""benchmarks.report's plot on hand-made rows (no training, no measurement)."""

from __future__ import annotations

from pathlib import Path

import cv2

from benchmarks.report import render_png


def _row(fmt: str, backend: str, p50: float, kib: float, acc: float = 0.9583) -> dict:
    return {
        "format": fmt, "backend": backend, "threads": 1, "p50_us": p50,
        "size_bytes": int(kib * 1024), "accuracy": acc,
    }  # fmt: skip


def test_crowded_plot_renders_atomically(tmp_path: Path) -> None:
    rows = [
        _row("keras", "keras-predict", 58019, 1015),
        _row("keras", "keras-call", 7434, 1015),
        _row("tflite-fp32", "ai-edge-litert", 146, 326),
        _row("tflite-fp16", "ai-edge-litert", 104, 167.5),
        _row("tflite-int8", "ai-edge-litert", 53.8, 90.3),
        _row("tflite-dynamic", "ai-edge-litert", 54.0, 88.9),  # on top of int8
        _row("onnx-int8", "onnxruntime", 159, 100.9, 0.95),
    ]
    path = tmp_path / "results.png"
    render_png({"rows": rows, "machine": {"cpu": "test"}}, path)
    image = cv2.imread(str(path))
    assert image is not None and image.shape[1] > image.shape[0] > 200
    assert [p.name for p in tmp_path.iterdir()] == ["results.png"]
    render_png({"rows": [], "machine": {"cpu": "test"}}, path)  # nothing measured: still a plot
