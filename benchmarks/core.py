"""`python -m benchmarks`: every exported format side by side, against Keras, in one run.

Every measurement runs in a fresh ``python -m benchmarks.worker`` process (one per model and
thread count), one after another, so each peak-RSS figure is that backend's own footprint and
no two measurements compete for the CPU. Ratios (speed-up over Keras ``predict``) compare rows
of the same run and the same thread count.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.machine import machine_info
from benchmarks.report import evaluate_targets, render_markdown, render_png, sort_rows
from benchmarks.settings import BenchSettings
from benchmarks.video import write_test_video
from runtime.errors import SignsError
from runtime.fsutil import ensure_writable_dir, write_json, write_text
from runtime.manifest import Manifest, find_manifest

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # so workers import this checkout

PIPELINE_FORMATS = ("tflite-fp32", "tflite-int8")


class MeasurementsFailed(SignsError):
    """Some measurements failed; the results that were measured are still written."""

    exit_code = 1


def run(settings: BenchSettings) -> dict:
    """Measure every model in the manifest; write results.json, results.md, results.png.

    Returns:
        The results dict written to results.json.

    Raises:
        SignsError: no manifest at ``settings.models``, bad data, bad settings or an
            unwritable output folder (all checked before anything is measured).
    """
    manifest = load_manifest(settings.models)
    manifest_path = manifest.path
    threads = settings.resolved_threads()
    if any(t < 1 for t in threads):
        raise SignsError(f"--threads {threads}: thread counts must be at least 1")
    if settings.resolved_iterations() < 1:
        raise SignsError("--iterations must be at least 1")
    from runtime.dataset import load_dataset

    ds = load_dataset(_data_path(settings.data, manifest))
    split = ds.evaluation_split()
    out = ensure_writable_dir(settings.out)
    has_tf = importlib.util.find_spec("tensorflow") is not None
    notes: list[str] = []

    machine = machine_info()
    print(
        f"machine: {machine['cpu']} ({', '.join(machine['simd']) or 'no SIMD flags read'}), "
        f"{machine['cores']} cores, load average {machine['load_avg_start']}"
    )
    print(
        f"models: {manifest_path}  data: {ds.describe()}  threads: {threads}  "
        f"iterations: {settings.resolved_iterations()}"
    )
    t_start = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="signs-bench-") as tmp_name:
        tmp = Path(tmp_name)
        data_npz = tmp / "test.npz"
        np.savez(data_npz, x=split.x, y=split.y)
        common = {
            "data": str(data_npz),
            "iterations": settings.resolved_iterations(),
            "warmup": settings.warmup(),
            "max_seconds": settings.time_cap(),
        }
        worker = _Worker(tmp)

        idle = worker.run({"mode": "idle"}, "idle")
        baseline_rss = idle.get("peak_rss_mb") if idle else None

        rows: list[dict] = []
        keras_path = manifest.keras.path
        if not has_tf:
            notes.append(
                "TensorFlow is not installed: Keras baseline rows and training cost "
                "skipped (expected on a device with the runtime-only install)"
            )
        elif keras_path is None:
            notes.append(f"{manifest_path} names no Keras model: baseline rows skipped")
        elif not keras_path.is_file():
            notes.append(f"no Keras model at {keras_path}: baseline rows skipped")
        else:
            for t in threads:
                res = worker.run(
                    {"mode": "keras", "model": str(keras_path), "threads": t, **common},
                    f"keras t={t}",
                    notes,
                )
                for r in (res or {}).get("rows", []):
                    rows.append(_row(keras_path, "keras", t, r, status="baseline"))
                    _log_row(rows[-1])

        for entry in manifest.models:
            fmt, path = entry.format, entry.path
            if not path.is_file():
                # Cannot be measured: reported, and the run exits 1 like a failed measurement.
                notes.append(f"{fmt}: no file ({entry.status.value}), not measured")
                print(f"  FAILED {fmt}: no file at {path} ({entry.status.value})")
                worker.failures.append(f"{fmt} (no file)")
                continue
            for t in threads:
                res = worker.run(
                    {"mode": "backend", "model": str(path), "threads": t, **common},
                    f"{fmt} t={t}",
                    notes,
                )
                if res:
                    rows.append(_row(path, fmt, t, res, status=entry.status.value))
                    _log_row(rows[-1])
        _add_speedups(rows)

        pipeline = _pipeline(settings, manifest, split, tmp, worker, notes)
        training: list[dict] = []
        if settings.quick:
            notes.append("training cost skipped (--quick)")
        elif has_tf:
            training = _training(settings, ds.root, worker, notes)

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    machine["load_avg_end"] = [round(v, 2) for v in load] if load else None
    results = {
        "machine": machine,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "settings": settings.to_dict(),
        "manifest": str(manifest_path),
        "data": ds.describe(),
        "idle_rss_mb": baseline_rss,
        "rows": sort_rows(rows),
        "pipeline": pipeline,
        "training": training,
        "notes": notes,
        "duration_s": round(time.perf_counter() - t_start, 1),
    }
    results["targets"] = evaluate_targets(results)

    write_json(out / "results.json", results)
    write_text(out / "results.md", render_markdown(results))
    written = ["results.json", "results.md"]
    if importlib.util.find_spec("matplotlib") is not None:
        render_png(results, out / "results.png")
        written.append("results.png")
    else:
        print("note: matplotlib is not installed, results.png skipped")
    print()
    for t in results["targets"]:
        print(
            f"target {'MET ' if t['met'] else 'MISS' if t['met'] is False else 'n/a '}: "
            f"{t['target']}: {t['detail']}"
        )
    for n in notes:
        print(f"note: {n}")
    print(f"wrote {out}/ ({', '.join(written)}) in {results['duration_s']:.0f} s")
    if worker.failures:
        raise MeasurementsFailed(
            f"{len(worker.failures)} measurement(s) failed ({'; '.join(worker.failures)}); "
            f"the rest is in {out}/results.md"
        )
    return results


def load_manifest(models: str | os.PathLike[str]) -> Manifest:
    """The export manifest at ``models`` (a folder holding manifest.json, or the file)."""
    return find_manifest(models, "run python -m export --int8 first, or pass --models DIR")


def _data_path(data: str | None, manifest: Manifest) -> str | None:
    """--data, else $SIGNS_DATA, else the data the export validated on (if it is here)."""
    if data or os.environ.get("SIGNS_DATA"):
        return data
    validated = manifest.validation.data
    return validated if validated and Path(validated).exists() else None


class _Worker:
    """Runs ``python -m benchmarks.worker`` one at a time and reads its JSON result."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.count = 0
        self.failures: list[str] = []  # labels of measurements that did not complete
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(PACKAGE_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        }

    def run(self, spec: dict, label: str, notes: list[str] | None = None) -> dict | None:
        """The worker's result, or None (with a note) if it failed."""
        self.count += 1
        out = self.tmp / f"result-{self.count}.json"
        spec = {**spec, "out": str(out)}
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.worker", json.dumps(spec)],
            capture_output=True,
            text=True,
            env=self.env,
        )
        problem = None
        if proc.returncode != 0 or not out.is_file():
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            problem = f"worker exited {proc.returncode}: {lines[-1] if lines else 'no output'}"
        else:
            result = json.loads(out.read_text())
            if "error" not in result:
                return result
            problem = result["error"]
        print(f"  FAILED {label}: {problem}")
        self.failures.append(label)
        if notes is not None:
            notes.append(f"{label} failed: {problem}")
        return None


def _row(path: Path, fmt: str, threads: int, res: dict, status: str) -> dict:
    return {
        "name": path.name,
        "format": fmt,
        "backend": res["backend"],
        "threads": threads,
        "size_bytes": path.stat().st_size,
        "accuracy": res["accuracy"],
        "load_s": res["load_s"],
        "p50_us": res["p50_us"],
        "p95_us": res["p95_us"],
        "p99_us": res["p99_us"],
        "fps": res["fps"],
        "peak_rss_mb": res["peak_rss_mb"],
        # Beyond the fields: what the figures rest on.
        "import_s": res["import_s"],
        "iterations": res["iterations"],
        "runtime": res["runtime"],
        "tensorflow_loaded": res["tensorflow_loaded"],
        "status": status,
    }


def _add_speedups(rows: list[dict]) -> None:
    """Keras predict p50 / row p50, at the same thread count (None without a baseline)."""
    base = {r["threads"]: r["p50_us"] for r in rows if r["backend"] == "keras-predict"}
    for r in rows:
        b = base.get(r["threads"])
        r["speedup_vs_keras_predict"] = round(b / r["p50_us"], 1) if b else None


def _log_row(r: dict) -> None:
    print(
        f"  {r['format']:<15} {r['backend']:<14} t={r['threads']}  p50 {r['p50_us']:>9.1f} us  "
        f"p99 {r['p99_us']:>9.1f} us  acc {r['accuracy']:.4f}  load {r['load_s']:.3f} s  "
        f"rss {r['peak_rss_mb']:.0f} MB  size {r['size_bytes'] / 1024:.0f} KiB"
    )


def _pipeline(
    settings: BenchSettings,
    manifest: Manifest,
    split,
    tmp: Path,
    worker: _Worker,
    notes: list[str],
) -> list[dict]:
    if importlib.util.find_spec("runtime.pipeline") is None:
        notes.append("runtime.pipeline is not available: frame-pipeline rows skipped")
        return []
    entries = {m.format: m for m in manifest.models}
    video = write_test_video(split.x, tmp / "frames_640x480.avi", settings.video_frames)
    rows: list[dict] = []
    for fmt in PIPELINE_FORMATS:
        path = entries[fmt].path if fmt in entries else None
        if path is None or not path.is_file():
            notes.append(f"pipeline {fmt}: no exported file, skipped")
            continue
        t = settings.pipeline_threads
        res = worker.run(
            {
                "mode": "pipeline",
                "model": str(path),
                "threads": t,
                "video": str(video),
                "iterations": settings.resolved_iterations(),
                "warmup": settings.warmup(),
                "max_seconds": settings.time_cap(),
            },
            f"pipeline {fmt}",
            notes,
        )
        if not res:
            continue
        for capture, stages in res["stages"].items():
            for stage, s in stages.items():
                rows.append(
                    {
                        "name": f"{fmt} capture {capture}: {stage}",
                        "model": fmt,
                        "capture": capture,
                        "stage": stage,
                        "threads": t,
                        **s,
                    }
                )
            tot = stages["total"]
            print(
                f"  pipeline {fmt:<12} capture {capture:<8} total p50 {tot['p50_us']:>8.1f} us  "
                f"p99 {tot['p99_us']:>8.1f} us  ({tot['iterations']} frames "
                f"{res['frame_shape'][1]}x{res['frame_shape'][0]})"
            )
    return rows


def _training(
    settings: BenchSettings, data_root: Path, worker: _Worker, notes: list[str]
) -> list[dict]:
    """Seconds per epoch of the default recipe and of the notebook's batch-size-1 recipe.

    Each recipe is one real ``train.run`` in a fresh process, timed per epoch: the first
    epoch (graph tracing included) separately, then the median of the others.
    """
    from train.settings import TrainSettings  # a dataclass: no TensorFlow import here

    defaults = TrainSettings()
    default_name = f"default (batch {defaults.batch_size}" + (
        ", augmented)" if getattr(defaults, "augment", False) else ")"
    )
    recipes = [
        (default_name, {}, settings.train_epochs),
        ("notebook (batch 1, no augmentation)", {"batch_size": 1, "augment": False},
         settings.train_epochs_batch1),
    ]  # fmt: skip
    rows = []
    for name, overrides, epochs in recipes:
        res = worker.run(
            {"mode": "train", "data": str(data_root), "overrides": {**overrides, "epochs": epochs}},
            f"training {name}",
            notes,
        )
        if not res:
            continue
        full = res["first_epoch_s"] + (defaults.epochs - 1) * res["epoch_s"]
        rows.append(
            {
                "name": name,
                **res,
                "steps_per_epoch": -(-res["train_images"] // res["batch_size"]),
                "full_run_epochs": defaults.epochs,
                "full_run_est_s": round(full, 1),
            }
        )
        print(
            f"  training {name:<36} {res['epoch_s']:.2f} s/epoch (first "
            f"{res['first_epoch_s']:.2f} s), {defaults.epochs} epochs ~ {full / 60:.1f} min"
        )
    return rows
