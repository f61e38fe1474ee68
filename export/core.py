"""`python -m export`: convert the Keras model, then prove every file against the Keras score.

Every input is checked before anything is written. Each format is converted into a temporary
file that is renamed only when complete, then run over the whole test set by the runtime's own
backends (the code the webcam uses, not TensorFlow) and gated on its accuracy drop and, for
float formats, on its probability difference from Keras. ``manifest.json`` is written last.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from export.formats import FORMATS, ConvertContext, ExportFormat
from export.keras_model import calibrations, check_model_file, load_keras
from export.report import KB, ExportReport, format_table
from export.settings import ExportSettings
from runtime.backends import EXPECTED_INPUT, installed_versions, load_backend, uint8_shortcut
from runtime.dataset import Dataset, Split, load_dataset, stratified_split
from runtime.errors import DataError, SignsError, ValidationError
from runtime.fsutil import atomic_path, check_output_dir, ensure_writable_dir, write_text
from runtime.manifest import (
    MANIFEST_NAME,
    Calibration,
    KerasModel,
    Manifest,
    ModelEntry,
    Provenance,
    Status,
    Validation,
)
from runtime.preprocess import to_model_input
from train.model import averaged_turn, is_mirror_averaged

# Recorded in the manifest: what made and checked the files.
EXPORT_LIBRARIES = (
    "numpy",
    "tensorflow",
    "keras",
    "tf2onnx",
    "onnx",
    "onnxruntime",
    "ai-edge-litert",
)
MANIFEST = MANIFEST_NAME  # kept for callers that import it from here


class ExportFailed(ValidationError):
    """At least one requested format failed its gate or its conversion (exit code 1)."""

    def __init__(self, message: str, report: ExportReport) -> None:
        super().__init__(message)
        self.report = report


def main_export(settings: ExportSettings, table: Sequence[ExportFormat] = FORMATS) -> ExportReport:
    """Export, validate and write the manifest; return the report when every format passed.

    Args:
        settings: what to export and where.
        table: the format table (tests pass variants to exercise the gate).

    Raises:
        SignsError: bad input (model, data, output directory, format names); nothing written.
        ExportFailed: a format failed; every file and the manifest were still written, the
            report is attached.
    """
    t_start = time.perf_counter()
    formats = select_formats(settings, table)
    if settings.calibration_images < 1:
        raise SignsError("calibration_images must be at least 1")
    model_path = Path(settings.model)
    check_model_file(model_path)
    ds = load_dataset(settings.data)
    test, calibration, held_out = _splits(ds, formats, settings)
    calibration, provenance = _add_user_samples(model_path, calibration)
    out = check_output_dir(settings.out)
    # The slow part (TensorFlow), after the cheap checks.
    model = load_keras(model_path, settings.verbose)
    labels = _labels(model_path, ds)

    views = KerasModel(mirror_average=is_mirror_averaged(model), turn_average=averaged_turn(model))
    described = f", {text}" if (text := views.describe_views()) else ""
    print(f"model: {model_path} ({model.count_params():,} parameters{described})")
    print(f"data: {ds.describe()}; validating on {len(test)} test images")
    if calibration is not None:
        print(
            f"calibration: {len(calibration)} training images (class-stratified, "
            f"seed {settings.calibration_seed})"
        )
    keras_probs = model.predict(to_model_input(test.x), verbose=0, batch_size=256)
    keras_acc = float(np.mean(keras_probs.argmax(1) == test.y))
    print(f"keras: test accuracy {keras_acc:.4f}")

    ensure_writable_dir(out)
    # A manifest from an earlier run would describe files this run is about to replace.
    with contextlib.suppress(FileNotFoundError):
        (out / MANIFEST).unlink()

    calib_x = calibration.x if calibration is not None else np.empty((0, *EXPECTED_INPUT), np.uint8)
    results = []
    with tempfile.TemporaryDirectory(prefix="signs-export-") as work:
        ctx = ConvertContext(
            model=model,
            calibration=calib_x,
            workdir=Path(work),
            opset=settings.opset,
            held_out=held_out,
        )
        for fmt in formats:
            result = _export_one(fmt, ctx, out, test, keras_probs, keras_acc, settings)
            results.append(result)

    report = ExportReport(out, keras_acc, len(test), results, time.perf_counter() - t_start)
    print()
    print(format_table(report))
    keras_model = dataclasses.replace(
        views, path=model_path, accuracy=round(report.keras_accuracy, 6)
    )
    manifest = _manifest(report, settings, keras_model, labels, ds, test, calibration)
    manifest = dataclasses.replace(manifest, provenance=provenance)
    no_sign, search = manifest.no_sign, manifest.hand_search
    print(f"no sign: min confidence {no_sign.min_confidence:g}; {no_sign.source}")
    print(f"hand search: threshold {search.threshold:g}; {search.source}")
    write_text(manifest.path, manifest.to_json())
    written = sum(1 for r in results if r.status is not Status.EXPORT_FAILED)
    print(f"\nwrote {out}/ ({written} model files + {MANIFEST}) in {report.seconds:.1f} s")
    if not report.passed:
        names = ", ".join(f"{r.format} ({r.status.value}: {r.reason})" for r in report.failures)
        # Which file the camera will run matters more to the user than which one failed.
        fallback = (
            f"; the runtime's default is {manifest.default_model}, which passed"
            if manifest.default_model
            else "; no file passed, so the runtime has no default model here"
        )
        raise ExportFailed(
            f"{len(report.failures)} of {len(results)} formats did not pass: {names}{fallback}",
            report,
        )
    return report


def select_formats(
    settings: ExportSettings, table: Sequence[ExportFormat] = FORMATS
) -> list[ExportFormat]:
    """The formats to export, in table order; an unknown name is a one-line error."""
    by_name = {f.name: f for f in table}
    if not settings.formats:
        return [f for f in table if settings.int8 or not f.quantized]
    unknown = [n for n in settings.formats if n not in by_name]
    if unknown:
        raise SignsError(
            f"unknown format {', '.join(map(repr, unknown))}; valid formats: {', '.join(by_name)}"
        )
    wanted = set(settings.formats)
    return [f for f in table if f.name in wanted]


# --- input checks (nothing is written until all pass) ---------------------------------------


def _splits(
    ds: Dataset, formats: list[ExportFormat], settings: ExportSettings
) -> tuple[Split, Split | None, np.ndarray]:
    """(test, calibration, held out). The held-out images, only for a format that ``chooses``,
    are the training images calibration does not use, each also under one seeded robustness
    shift (near class boundaries, where int8 rounding shows)."""
    if ds.test is None:
        raise DataError(
            f"{ds.root}: no test images to validate on ({ds.layout} layout, training data only); "
            "the exported files are checked on the test set"
        )
    calibration, held_out = None, np.empty((0, *EXPECTED_INPUT), np.uint8)
    if any(f.calibrated for f in formats):
        if ds.train is None:
            raise DataError(
                f"{ds.root}: no training images for int8 calibration ({ds.layout} layout, test "
                "data only); calibration never uses test images"
            )
        n = min(settings.calibration_images, len(ds.train))
        if n == len(ds.train):
            calibration = ds.train
        else:
            rest, idx = stratified_split(ds.train.y, n, settings.calibration_seed)
            calibration = ds.train.subset(idx)
            if any(f.chooses for f in formats):
                from benchmarks.robustness.shifts import random_shift

                seen = {im.tobytes() for im in calibration.x}  # SIGNS repeats some photos
                x = np.stack([im for im in ds.train.x[rest] if im.tobytes() not in seen])
                held_out = np.concatenate([x, random_shift(x, settings.calibration_seed)[0]])
    return ds.test, calibration, held_out


def _add_user_samples(
    model_path: Path, calibration: Split | None
) -> tuple[Split | None, Provenance]:
    """Calibrate a fine-tuned model on its user's samples too (found via its config.json).

    Int8 ranges fitted to SIGNS alone could clip the user's own pictures (another camera,
    background, light): the pictures the model will actually see.
    """
    from train.finetune import user_calibration

    samples, provenance = user_calibration(model_path)
    if provenance is None:
        return calibration, Provenance()
    if samples is None:
        print(
            f"warning: {provenance.samples}, the samples {model_path} was fine-tuned on, "
            "cannot be read; int8 calibration uses SIGNS images only",
            file=sys.stderr,
        )
    elif calibration is not None:
        provenance = dataclasses.replace(provenance, calibration_samples=len(samples))
        calibration = Split(
            np.concatenate([calibration.x, samples.x]),
            np.concatenate([calibration.y, samples.y]),
            calibration.names + [f"user:{n}" for n in samples.names],
        )
        print(f"calibration: + {len(samples)} user samples from {provenance.samples}")
    return calibration, provenance


def _labels(model_path: Path, ds: Dataset) -> list[str]:
    """The class names from the training run's config.json beside the model, else the data's."""
    config = model_path.parent / "config.json"
    with contextlib.suppress(OSError, ValueError, TypeError):
        labels = json.loads(config.read_text()).get("labels")
        if isinstance(labels, list) and len(labels) == 6:
            return [str(v) for v in labels]
    return list(ds.labels)


# --- one format: convert, then validate -----------------------------------------------------


def _export_one(
    fmt: ExportFormat,
    ctx: ConvertContext,
    out: Path,
    test: Split,
    keras_probs: np.ndarray,
    keras_acc: float,
    settings: ExportSettings,
) -> ModelEntry:
    dest = out / fmt.filename
    # A file left by an earlier run must not pass for this run's output if conversion fails.
    with contextlib.suppress(FileNotFoundError):
        dest.unlink()
    entry = ModelEntry(
        fmt.name, dest, Status.EXPORT_FAILED, fmt.quantization, tolerance=fmt.tolerance
    )
    t0 = time.perf_counter()
    try:
        with atomic_path(dest) as tmp:
            notes = fmt.converter(ctx, tmp)
    except Exception as exc:  # any converter crash is this format's failure, not the run's
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        reason = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
        print(f"{fmt.name}: export-failed ({reason})", flush=True)
        return dataclasses.replace(entry, reason=reason)
    seconds = time.perf_counter() - t0
    data = dest.read_bytes()
    entry = dataclasses.replace(
        entry,
        status=Status.FAILED,
        export_seconds=round(seconds, 3),
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        conversion=notes,
    )
    print(f"{fmt.name}: wrote {dest} ({len(data) / KB:.1f} KB) in {seconds:.1f} s", flush=True)
    entry = _validate(entry, test, keras_probs, keras_acc, settings)
    if entry.accuracy is None:
        print(f"{fmt.name}: {entry.status.value} ({entry.reason})", flush=True)
    else:
        print(
            f"{fmt.name}: {entry.status.value}, accuracy {entry.accuracy:.4f} "
            f"(drop {entry.drop:+.2f} pp, agreement {entry.agreement:.1%}, "
            f"max |dp| {entry.max_abs_diff:.1e})" + (f": {entry.reason}" if entry.reason else ""),
            flush=True,
        )
    return entry


def _validate(
    entry: ModelEntry,
    test: Split,
    keras_probs: np.ndarray,
    keras_acc: float,
    settings: ExportSettings,
) -> ModelEntry:
    """Run the file on the whole test set with the runtime backend and apply the gate."""
    try:
        backend = load_backend(entry.path, threads=settings.threads)
        probs = backend.predict(test.x)
    except SignsError as exc:
        return dataclasses.replace(entry, reason=f"does not load in the runtime: {exc}")
    shortcut = None
    if entry.path.suffix == ".tflite" and backend.input.dtype == "int8":
        shortcut = uint8_shortcut(backend.input)
    pred = probs.argmax(1)
    accuracy = float(np.mean(pred == test.y))
    drop = (keras_acc - accuracy) * 100.0
    max_abs_diff = float(np.max(np.abs(probs - keras_probs)))
    reasons = []
    # A float epsilon keeps an exact tie with --max-drop a pass.
    if drop > settings.max_drop + 1e-9:
        reasons.append(f"accuracy drop {drop:.2f} pp > max {settings.max_drop:g} pp")
    if entry.tolerance is not None and max_abs_diff > entry.tolerance:
        reasons.append(f"max prob diff {max_abs_diff:.2e} > tolerance {entry.tolerance:.0e}")
    return dataclasses.replace(
        entry,
        status=Status.FAILED if reasons else Status.PASSED,
        reason="; ".join(reasons),
        accuracy=round(accuracy, 6),
        drop=round(drop, 4),
        agreement=round(float(np.mean(pred == keras_probs.argmax(1))), 6),
        max_abs_diff=float(f"{max_abs_diff:.3e}"),
        runtime=backend.runtime,
        input=backend.input,
        output=backend.output,
        uint8_shortcut=shortcut,
    )


def _manifest(
    report: ExportReport,
    settings: ExportSettings,
    keras_model: KerasModel,
    labels: list[str],
    ds: Dataset,
    test: Split,
    calibration: Split | None,
) -> Manifest:
    manifest = Manifest(
        path=report.out / MANIFEST_NAME,
        labels=labels,
        models=report.results,
        # no_sign and hand_search, from the model's metrics.json
        **calibrations(keras_model.path),
        keras=keras_model,
        validation=Validation(str(ds.root.resolve()), "test", len(test), settings.max_drop),
        calibration=None
        if calibration is None
        else Calibration(
            "train", len(calibration), f"class-stratified, seed {settings.calibration_seed}"
        ),
        versions=installed_versions(EXPORT_LIBRARIES),
        settings=settings.to_dict(),
    )
    default = manifest.choose_default()
    return dataclasses.replace(manifest, default_model=default.path.name if default else None)
