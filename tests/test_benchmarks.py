"""python -m benchmarks: a real quick run on the exported models, and its bad-input paths."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import pytest

from benchmarks.machine import cpu_info
from tests.helpers import assert_user_error, run_module

ROW_FIELDS = {
    "name": str,
    "format": str,
    "backend": str,
    "threads": int,
    "size_bytes": int,
    "accuracy": float,
    "load_s": float,
    "p50_us": float,
    "p95_us": float,
    "p99_us": float,
    "fps": float,
    "peak_rss_mb": float,
}
PIPELINE_FIELDS = {"name": str, "p50_us": float, "p95_us": float, "p99_us": float}
MACHINE_FIELDS = ("cpu", "cores", "os", "python", "libraries")


@pytest.fixture(scope="module")
def quick_run(exported_dir: Path, signs_data: Path, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("bench") / "results"
    proc = run_module(
        "benchmarks",
        "--quick",
        "--iterations",
        "20",
        "--max-seconds",
        "1",
        "--models",
        str(exported_dir),
        "--data",
        str(signs_data),
        "--out",
        str(out),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc


def _check_fields(obj: dict, fields: dict) -> None:
    for key, typ in fields.items():
        assert key in obj, (key, obj)
        value = obj[key]
        if typ is float:
            assert isinstance(value, (int, float)) and math.isfinite(value), (key, value)
        else:
            assert isinstance(value, typ), (key, value)


def test_quick_run_writes_complete_json(quick_run, exported_dir: Path) -> None:
    out, _ = quick_run
    results = json.loads((out / "results.json").read_text())
    for key in ("machine", "rows", "pipeline", "training"):
        assert key in results
    for key in MACHINE_FIELDS:
        assert results["machine"][key], key
    assert results["machine"]["cores"] >= 1
    assert results["training"] == []  # --quick skips training cost

    manifest = json.loads((exported_dir / "manifest.json").read_text())
    rows = results["rows"]
    for r in rows:
        _check_fields(r, ROW_FIELDS)
        assert r["threads"] == 1  # --quick measures one thread
        assert 0 < r["p50_us"] <= r["p95_us"] <= r["p99_us"], r
        assert r["fps"] == pytest.approx(1e6 / r["p50_us"], rel=0.01, abs=0.01)
        assert 0.0 <= r["accuracy"] <= 1.0
        assert r["peak_rss_mb"] > 10 and r["load_s"] >= 0
        # Runtime rows come from processes without TensorFlow, as on the device.
        assert r["tensorflow_loaded"] == (r["format"] == "keras"), r

    # Every exported file has a row, with its real size and an accuracy that agrees with the
    # export's own check of the same file (one test image of slack: single vs batched calls).
    by_format = {r["format"]: r for r in rows}
    n_test = 120
    for m in manifest["models"]:
        path = exported_dir / m["path"]
        if not path.is_file():
            continue
        row = by_format[m["format"]]
        assert row["size_bytes"] == path.stat().st_size
        assert row["backend"] in ("ai-edge-litert", "tflite-runtime", "tf.lite", "onnxruntime")
        assert abs(row["accuracy"] - m["accuracy"]) <= 1.0 / n_test + 1e-9, (row, m)

    keras = {r["backend"]: r for r in rows if r["format"] == "keras"}
    assert set(keras) == {"keras-predict", "keras-call"}
    assert keras["keras-predict"]["accuracy"] == pytest.approx(
        manifest["keras"]["accuracy"], abs=1e-6
    )
    for r in rows:
        # Rounded to 0.1: a 3.55x ratio is written 3.6 (1.3% off), so half a step is allowed too.
        assert r["speedup_vs_keras_predict"] == pytest.approx(
            keras["keras-predict"]["p50_us"] / r["p50_us"], rel=0.01, abs=0.05
        )

    pipeline = results["pipeline"]
    assert pipeline, "the frame pipeline was not measured"
    for p in pipeline:
        _check_fields(p, PIPELINE_FIELDS)
        assert 0 < p["p50_us"] <= p["p95_us"] <= p["p99_us"], p
    totals = {(p["model"], p["capture"]) for p in pipeline if p["stage"] == "total"}
    assert totals == {
        (f, c) for f in ("tflite-fp32", "tflite-int8") for c in ("excluded", "included")
    }
    assert {t["met"] for t in results["targets"]} <= {True, False, None}


def test_quick_run_writes_table_and_plot(quick_run) -> None:
    out, proc = quick_run
    md = (out / "results.md").read_text()
    lines = md.splitlines()
    start = lines.index(next(ln for ln in lines if ln.startswith("| format |")))
    body = []
    for ln in lines[start + 2 :]:
        if not ln.startswith("|"):
            break
        body.append(ln)
    assert len(body) >= 3, md  # Keras predict, Keras call and at least one exported file
    assert "keras-predict" in md and "tflite-int8" in md
    assert "## Frame pipeline" in md and "## Targets" in md

    image = cv2.imread(str(out / "results.png"))
    assert image is not None and image.shape[0] > 200 and image.shape[1] > 200
    assert not list(out.glob(".*tmp*")), "a temporary file was left behind"
    assert "target" in proc.stdout and "wrote" in proc.stdout


def test_missing_models_folder_is_one_line_error(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    proc = run_module("benchmarks", "--models", str(missing), "--out", str(tmp_path / "o"))
    assert_user_error(proc, str(missing), "python -m export")
    assert not (tmp_path / "o").exists()


def test_folder_without_manifest_is_one_line_error(tmp_path: Path) -> None:
    proc = run_module("benchmarks", "--models", str(tmp_path), "--out", str(tmp_path / "o"))
    assert_user_error(proc, str(tmp_path / "manifest.json"), "python -m export")


def test_cpu_info_reads_x86_and_raspberry_pi() -> None:
    x86 = "model name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu avx2 avx512f avx512_vnni\n"
    assert cpu_info(x86) == ("Intel(R) Xeon(R) Processor", ["avx2", "avx512f", "avx512_vnni"])
    pi5 = (
        "processor\t: 0\nFeatures\t: fp asimd evtstrm aes asimddp\nCPU part\t: 0xd0b\n\n"
        "Model\t\t: Raspberry Pi 5 Model B Rev 1.0\n"
    )
    name, simd = cpu_info(pi5)
    assert name == "Raspberry Pi 5 Model B Rev 1.0 (CPU part 0xd0b)"
    assert simd == ["asimd", "asimddp"]


def test_broken_model_fails_loudly_and_keeps_the_rest(
    exported_dir: Path, signs_data: Path, tmp_path: Path
) -> None:
    """A truncated file is reported (exit 1, one line naming it); the good rows are written."""
    import shutil

    models = tmp_path / "export"
    models.mkdir()
    manifest = json.loads((exported_dir / "manifest.json").read_text())
    keep = [m for m in manifest["models"] if m["format"] in ("tflite-fp32", "tflite-fp16")]
    for m in keep:
        shutil.copy(exported_dir / m["path"], models / m["path"])
    broken = models / next(m["path"] for m in keep if m["format"] == "tflite-fp16")
    broken.write_bytes(broken.read_bytes()[:1000])
    manifest["models"] = keep
    manifest.pop("keras")  # no Keras baseline: keeps this test to a few seconds
    (models / "manifest.json").write_text(json.dumps(manifest))

    out = tmp_path / "results"
    proc = run_module(
        "benchmarks",
        "--quick",
        "--iterations",
        "5",
        "--models",
        str(models),
        "--data",
        str(signs_data),
        "--out",
        str(out),
    )
    assert_user_error(proc, "tflite-fp16", "results.md", code=1)
    results = json.loads((out / "results.json").read_text())
    assert [r["format"] for r in results["rows"]] == ["tflite-fp32"]
    assert any("tflite-fp16" in n and broken.name in n for n in results["notes"])
    assert "tflite-fp16" in (out / "results.md").read_text()


@pytest.mark.slow  # a benchmark worker process per file: ~4 s
def test_a_file_that_cannot_be_measured_exits_1(signs_data: Path, tmp_path: Path) -> None:
    """An export-failed entry (no file) is reported and the run exits 1, as the README says."""
    from runtime.dataset import DEFAULT_LABELS
    from runtime.manifest import MANIFEST_NAME, Manifest, ModelEntry, NoSign, Quantization, Status
    from tests.test_fuzz import tiny_onnx

    models = tmp_path / "export"
    models.mkdir()
    m = Manifest(
        models / MANIFEST_NAME,
        list(DEFAULT_LABELS),
        [
            ModelEntry("onnx-fp32", tiny_onnx(models / "onnx-fp32.onnx"), Status.PASSED),
            ModelEntry(
                "onnx-int8", models / "onnx-int8.onnx", Status.EXPORT_FAILED, Quantization.INT8
            ),
        ],
        NoSign(),
    )
    m.path.write_text(m.to_json())
    out = tmp_path / "results"
    proc = run_module(
        "benchmarks", "--quick", "--iterations", "5", "--models", str(models),
        "--data", str(signs_data), "--out", str(out),
    )  # fmt: skip
    assert_user_error(proc, "onnx-int8", "results.md", code=1)
    results = json.loads((out / "results.json").read_text())
    assert [r["format"] for r in results["rows"]] == ["onnx-fp32"]
    assert any("onnx-int8" in n and "export-failed" in n for n in results["notes"])
