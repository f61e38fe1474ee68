"""What the runtime knows about a model file: its export manifest, or safe defaults.

``python -m export`` writes ``manifest.json`` beside the files it exports::

    {"keras": {"path", "accuracy"}, "labels": [...], "preprocessing": {...},
     "models": [{"format", "path" (relative to the manifest), "status", "size_bytes", "sha256",
                 "accuracy", "drop", "agreement", "input": {...}, "output": {...}}],
     "versions": {...}}

The runtime reads the labels, checks that the recorded preprocessing is the one it implements,
and finds the model's own entry (status, accuracy, input quantization). A bare model file with no
manifest beside it still works: labels "0".."5" and the standard preprocessing.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.dataset import DEFAULT_LABELS, NUM_CLASSES
from runtime.errors import ModelError
from runtime.preprocess import PreprocessConfig

if TYPE_CHECKING:
    from runtime.backends import Backend

MANIFEST_NAME = "manifest.json"
DEFAULT_EXPORT_DIR = Path("artifacts") / "export"  # where `python -m export` writes, from the cwd
DEFAULT_MODEL_NAME = "tflite-int8.tflite"  # smallest and fastest file; preferred when it passed
PASSED = "passed"  # the export gate's status for a file that kept the Keras accuracy
RUNNABLE_SUFFIXES = (".tflite", ".onnx")


@dataclass(frozen=True)
class ModelEntry:
    """One item of the manifest's ``models`` list."""

    format: str
    path: Path  # resolved against the manifest's folder
    status: str
    accuracy: float | None = None  # test accuracy measured by the export gate
    drop: float | None = None  # percentage points below the Keras accuracy
    size_bytes: int | None = None
    sha256: str | None = None
    input: dict = field(default_factory=dict)  # name, shape, dtype, scale, zero_point
    output: dict = field(default_factory=dict)
    uint8_shortcut: bool | None = None  # int8 input is exactly pixel - 128 (see backends)
    reason: str | None = None  # why the export gate passed or failed it

    @property
    def passed(self) -> bool:
        return self.status == PASSED


@dataclass(frozen=True)
class Manifest:
    path: Path
    labels: list[str]
    preprocessing: dict
    models: list[ModelEntry]
    keras_accuracy: float | None = None
    # The parsed JSON as written by the export, for fields only some readers need (the Keras
    # file, the calibration and validation data), so nobody parses the file a second time.
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    def entry_for(self, model_path: Path) -> ModelEntry | None:
        target = model_path.resolve()
        for entry in self.models:
            if entry.path.resolve() == target:
                return entry
        return None


@dataclass(frozen=True)
class ModelInfo:
    """A model file plus what its manifest says about it (or the defaults)."""

    path: Path
    labels: list[str]
    manifest: Manifest | None = None
    entry: ModelEntry | None = None
    warnings: tuple[str, ...] = ()  # things the user should know before trusting the output

    def describe(self) -> str:
        """One line for the start-up log."""
        if self.manifest is None:
            return f"{self.path} (no {MANIFEST_NAME} beside it: default labels and preprocessing)"
        if self.entry is None:
            return f"{self.path} (not listed in {self.manifest.path})"
        e = self.entry
        acc = f", test accuracy {e.accuracy:.4f}" if e.accuracy is not None else ""
        return f"{self.path} ({e.format}, export status {e.status}{acc})"


def read_manifest(path: Path) -> Manifest:
    """Parse and check ``manifest.json``.

    Raises:
        ModelError: unreadable JSON, labels that are not six names, or preprocessing this runtime
            does not implement (the model would silently see different pixels).
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the manifest ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not a valid JSON manifest ({exc})") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{path}: not an export manifest (expected a JSON object)")

    labels = raw.get("labels", DEFAULT_LABELS)
    if (
        not isinstance(labels, list)
        or len(labels) != NUM_CLASSES
        or not all(isinstance(v, (str, int)) for v in labels)
    ):
        raise ModelError(f"{path}: 'labels' must list {NUM_CLASSES} class names, got {labels!r}")
    preprocessing = raw.get("preprocessing") or {}
    if not isinstance(preprocessing, dict):
        raise ModelError(f"{path}: 'preprocessing' must be an object")
    _check_preprocessing(path, preprocessing)

    models = []
    for i, m in enumerate(raw.get("models") or []):
        if not isinstance(m, dict) or not m.get("path"):
            raise ModelError(f"{path}: models[{i}] has no 'path'")
        models.append(
            ModelEntry(
                format=str(m.get("format", Path(m["path"]).stem)),
                path=path.parent / m["path"],
                status=str(m.get("status", "unknown")),
                accuracy=_float_or_none(m.get("accuracy")),
                drop=_float_or_none(m.get("drop")),
                size_bytes=m.get("size_bytes"),
                sha256=m.get("sha256"),
                input=m.get("input") or {},
                output=m.get("output") or {},
                uint8_shortcut=m.get("uint8_shortcut")
                if isinstance(m.get("uint8_shortcut"), bool)
                else None,
                reason=str(m["reason"]) if m.get("reason") else None,
            )
        )
    keras = raw.get("keras") or {}
    return Manifest(
        path=path,
        labels=[str(v) for v in labels],
        preprocessing=preprocessing,
        models=models,
        keras_accuracy=_float_or_none(keras.get("accuracy") if isinstance(keras, dict) else None),
        raw=raw,
    )


def _float_or_none(v: object) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _check_preprocessing(path: Path, recorded: dict) -> None:
    """Refuse a model exported with preprocessing other than this runtime's."""
    ours = PreprocessConfig().to_dict()
    for key, value in recorded.items():
        if key not in ours:
            continue  # informational extras are fine
        mine = ours[key]
        same = (
            math.isclose(float(value), float(mine), rel_tol=1e-6)
            if isinstance(mine, float) and isinstance(value, (int, float))
            else value == mine
        )
        if not same:
            raise ModelError(
                f"{path}: the model was exported with preprocessing {key}={value!r}, but this "
                f"runtime implements {key}={mine!r}"
            )


def describe_model(model_path: str | Path, *, verify: bool = True) -> ModelInfo:
    """The model file plus its manifest entry, if a manifest sits beside it.

    Args:
        model_path: a ``.tflite`` or ``.onnx`` file.
        verify: compare the file's sha256 with the manifest (a few hundred KB: ~1 ms).

    Raises:
        ModelError: the manifest beside the model is unreadable or incompatible.
    """
    path = Path(model_path)
    manifest_path = path.parent / MANIFEST_NAME
    if not manifest_path.is_file():
        return ModelInfo(path=path, labels=list(DEFAULT_LABELS))
    manifest = read_manifest(manifest_path)
    entry = manifest.entry_for(path)
    warnings = []
    if entry is None:
        warnings.append(
            f"{path.name} is not listed in {manifest_path}: nothing says it passed the export gate"
        )
    else:
        if not entry.passed:
            why = f" ({entry.reason})" if entry.reason else ""
            warnings.append(
                f"{path.name} is marked {entry.status!r} in {manifest_path}{why}: "
                "its predictions may be wrong"
            )
        if verify and entry.sha256 and path.is_file() and _sha256(path) != entry.sha256:
            warnings.append(
                f"{path.name} differs from the file recorded in {manifest_path} (sha256): "
                "the recorded status and accuracy do not describe it"
            )
    return ModelInfo(
        path=path, labels=manifest.labels, manifest=manifest, entry=entry, warnings=tuple(warnings)
    )


def check_backend(info: ModelInfo, backend: Backend) -> list[str]:
    """Warnings where the loaded model's input quantization disagrees with its manifest entry.

    The backend always quantizes from the file's own tensor parameters; a disagreement means
    the manifest describes another file.
    """
    from runtime.backends import uint8_shortcut

    if info.entry is None:
        return []
    recorded, actual = info.entry.input or {}, backend.input
    out = []
    shortcut = info.entry.uint8_shortcut
    if shortcut is not None and shortcut != uint8_shortcut(actual):
        out.append(
            f"manifest says the uint8 input shortcut {'applies' if shortcut else 'does not apply'}"
            f", the file's input quantization says otherwise"
        )
    if recorded.get("dtype") not in (None, actual.dtype):
        out.append(f"manifest says input dtype {recorded['dtype']}, the file has {actual.dtype}")
    for key in ("scale", "zero_point"):
        r = recorded.get(key)
        a = getattr(actual, key)
        if isinstance(r, (int, float)) and not math.isclose(float(r), float(a), rel_tol=1e-6):
            out.append(f"manifest says input {key} {r}, the file has {a}")
    return [f"{info.path.name}: {w} (the file's own values are used)" for w in out]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def default_model(export_dir: str | Path = DEFAULT_EXPORT_DIR) -> Path:
    """The model ``runtime.webcam`` uses when ``--model`` is not given.

    ``<export_dir>/tflite-int8.tflite`` when it exists and passed the export gate (or there is no
    manifest to say otherwise); else the best passing model in the manifest: highest test
    accuracy, then the smaller file, then manifest order.

    Raises:
        ModelError: no usable model in ``export_dir``.
    """
    export_dir = Path(export_dir)
    hint = f"run `python -m export --int8` first or pass --model FILE (looked in {export_dir})"
    preferred = export_dir / DEFAULT_MODEL_NAME
    manifest_path = export_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        if preferred.is_file():
            return preferred
        raise ModelError(f"no model given and no {DEFAULT_MODEL_NAME} or {MANIFEST_NAME}: {hint}")
    manifest = read_manifest(manifest_path)
    entry = manifest.entry_for(preferred)
    if preferred.is_file() and entry is not None and entry.passed:
        return preferred
    candidates = [
        (i, e)
        for i, e in enumerate(manifest.models)
        if e.passed and e.path.suffix.lower() in RUNNABLE_SUFFIXES and e.path.is_file()
    ]
    if not candidates:
        raise ModelError(f"no model given and none marked {PASSED!r} in {manifest_path}: {hint}")

    def rank(item: tuple[int, ModelEntry]) -> tuple[float, int, int]:
        i, e = item
        return -(e.accuracy or 0.0), e.size_bytes or e.path.stat().st_size, i

    return min(candidates, key=rank)[1].path
