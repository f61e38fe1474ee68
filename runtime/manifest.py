"""The export manifest: the one typed contract between ``python -m export`` and its readers.

``python -m export`` writes ``manifest.json`` beside the files it exports, by filling
:class:`Manifest` and calling :meth:`Manifest.to_json`; the runtime, ``benchmarks`` and
``benchmarks.arm64`` read it with :func:`read_manifest`. Nobody else parses the file.

Schema (``schema_version`` :data:`SCHEMA_VERSION`); every key is a field of the dataclasses below:

- ``schema_version``: int, checked first; another version is a one-line :class:`ModelError`.
- ``labels``: six class names. ``preprocessing``: :class:`runtime.preprocess.PreprocessConfig`
  as a dict; a reader refuses values its own preprocessing does not implement.
- ``default_model``: file name of the model the camera uses without ``--model``.
- ``no_sign``: :class:`NoSign`, the min-confidence the runtime uses without ``--min-confidence``
  (calibrated at training time, or the runtime default, and which of the two).
- ``hand_search``: :class:`SearchThreshold`, the ``--find-hand`` threshold the runtime uses
  without ``--search-threshold`` (likewise; optional: missing, it is the runtime's constant).
- ``keras``: :class:`KerasModel` (path relative to the manifest, test accuracy, the views each
  prediction averages).
- ``validation``: :class:`Validation` (the data the gate ran on, the accuracy-drop limit).
- ``calibration``: :class:`Calibration` or null (no int8 format exported).
- ``models``: list of :class:`ModelEntry`, one per requested format, export-failed ones included
  (``path`` relative to the manifest; the file may be missing then).
- ``provenance``: :class:`Provenance`, where the Keras model came from (fine-tuned or not).
- ``versions``, ``settings``: free-form records of the export run (informational).

Compatibility: a reader ignores keys it does not know, and a key missing from the file takes the
field's default. So a new *optional* field is one line with a default and needs no new version;
bump :data:`SCHEMA_VERSION` only when a field changes meaning or becomes required.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from runtime import typedjson
from runtime.backends import TensorInfo
from runtime.dataset import NUM_CLASSES
from runtime.errors import ModelError
from runtime.handsearch import DEFAULT_THRESHOLD
from runtime.pipeline import DEFAULT_MIN_CONFIDENCE
from runtime.preprocess import PreprocessConfig

# 1: the unversioned manifests written before the typed schema; 2: no ``no_sign``; 3: ``no_sign``
SCHEMA_VERSION = 3
MANIFEST_NAME = "manifest.json"
DEFAULT_EXPORT_DIR = Path("artifacts") / "export"  # where `python -m export` writes, from the cwd
DEFAULT_MODEL_NAME = "tflite-int8.tflite"  # smallest and fastest file; preferred when it passed
RUNNABLE_SUFFIXES = (".tflite", ".onnx")


class Status(str, Enum):
    """The export gate's verdict on one file (a str, so the JSON stays readable)."""

    PASSED = "passed"  # kept the Keras accuracy within the tolerances
    FAILED = "failed"  # written, but failed the accuracy or probability gate
    EXPORT_FAILED = "export-failed"  # the conversion itself failed: no file


class Quantization(str, Enum):
    """What arithmetic a file computes in; set by export from its FORMATS table."""

    FLOAT32 = "float32"
    FLOAT16 = "float16"  # float16 weights, float compute
    DYNAMIC = "dynamic"  # int8 weights, activations quantized at run time
    INT8 = "int8"  # int8 weights and calibrated int8 activations

    @property
    def quantized(self) -> bool:
        """int8 compute somewhere: results may differ by a quantization step across CPUs."""
        return self in (Quantization.DYNAMIC, Quantization.INT8)


PASSED = Status.PASSED.value  # kept for messages that quote the status


@dataclass(frozen=True)
class ModelEntry:
    """One exported file and the gate's verdict on it."""

    format: str  # the FORMATS name, e.g. "tflite-int8"
    path: Path  # absolute in memory; written relative to the manifest's folder
    status: Status
    quantization: Quantization = Quantization.FLOAT32
    reason: str = ""  # why it failed; empty when passed
    size_bytes: int | None = None
    sha256: str | None = None
    accuracy: float | None = None  # test accuracy through the runtime backend
    drop: float | None = None  # Keras accuracy minus this accuracy, percentage points
    agreement: float | None = None  # fraction of test images with Keras's top-1 class
    max_abs_diff: float | None = None  # max |probability - Keras probability|
    tolerance: float | None = None  # the format's gate on max_abs_diff; None: drop only
    export_seconds: float | None = None
    runtime: str | None = None  # the library that ran it in the gate, with its version
    input: TensorInfo | None = None
    output: TensorInfo | None = None
    uint8_shortcut: bool | None = None  # int8 input is exactly pixel - 128 (see backends)
    conversion: dict = field(default_factory=dict)  # the converter's settings (informational)

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED


@dataclass(frozen=True)
class KerasModel:
    path: Path | None = None  # the Keras file the formats were converted from
    accuracy: float | None = None  # its test accuracy, the gate's reference
    # The model averages its output on the image and on the mirror image: two passes of the
    # network per prediction, in every exported file (optional: missing, it is a single pass).
    mirror_average: bool = False
    # With the mirror average, also both views turned by + and - this many degrees: six passes
    # (optional: missing, no turned views).
    turn_average: float = 0.0

    @property
    def passes(self) -> int:
        """Passes of the network per prediction."""
        return (2 if self.mirror_average else 1) * (3 if self.turn_average else 1)

    def describe_views(self) -> str:
        """How a prediction averages views, for start-up lines ("" for a single pass)."""
        if not self.mirror_average:
            return ""
        if not self.turn_average:
            return "mirror-averaged"
        return f"mirror-averaged and turned +-{self.turn_average:g} deg, {self.passes} passes"


@dataclass(frozen=True)
class Validation:
    data: str | None = None  # absolute path of the dataset the gate used
    split: str = "test"
    images: int | None = None
    max_drop: float | None = None  # percentage points


@dataclass(frozen=True)
class Calibration:
    split: str = "train"  # int8 calibration never sees test images
    images: int | None = None
    selection: str = ""


@dataclass(frozen=True)
class NoSign:
    """The decision threshold: below this smoothed top probability the runtime shows "no sign".

    ``python -m train`` (and ``--fine-tune``) calibrate it on held-out data and write it to the
    model's ``metrics.json``; export copies it here, or the runtime default when there is none.
    """

    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    calibrated: bool = False  # False: the runtime default, not a value measured for this model
    empty_no_sign: float | None = None  # share of held-out empty scenes shown as "no sign"
    hands_correct_shown: float | None = None  # share of held-out hands shown, and right
    source: str = "default: nothing calibrated"  # where the value comes from, in words

    def resolve(self, given: float | None) -> tuple[float, str]:
        """The threshold to use and where it comes from: ``given`` (a flag) always wins."""
        if given is not None:
            return float(given), "--min-confidence"
        return self.min_confidence, "calibrated" if self.calibrated else self.source


@dataclass(frozen=True)
class SearchThreshold:
    """The hand search's threshold (``--find-hand``): the best window's score (top probability
    minus the second) a frame needs to show a sign.

    ``python -m train`` (and ``--fine-tune``) calibrate it on val scenes and write it to the
    model's ``metrics.json`` (``hand_search``); export copies it here, or the runtime's constant
    (:data:`runtime.handsearch.DEFAULT_THRESHOLD`) when there is none.
    """

    threshold: float = DEFAULT_THRESHOLD
    calibrated: bool = False  # False: the runtime's constant, not a value measured for this model
    empty_no_sign: float | None = None  # share of empty val scenes kept at "no sign"
    hands_correct_shown: float | None = None  # share of val hand scenes shown, and right
    source: str = "default: nothing calibrated"  # where the value comes from, in words

    def resolve(self, given: float | None) -> tuple[float, str]:
        """The threshold to use and where it comes from: ``given`` (a flag) always wins."""
        if given is not None:
            return float(given), "--search-threshold"
        return self.threshold, "calibrated" if self.calibrated else self.source


NO_RECORD = f"default: no hand_search in the {MANIFEST_NAME} (exported before it had one)"


@dataclass(frozen=True)
class Provenance:
    """Where the Keras model came from: ``python -m train``, or ``--fine-tune`` of a base model."""

    fine_tuned: bool = False
    base_model: str | None = None  # absolute path of the model it was fine-tuned from
    base_sha256: str | None = None
    samples: str | None = None  # absolute path of the user's sample folder
    counts: dict = field(default_factory=dict)  # samples per class: {"0": n, ...}
    calibration_samples: int = 0  # how many of them joined the int8 calibration


@dataclass(frozen=True)
class Manifest:
    """The whole ``manifest.json``; ``path`` is where it lives (not written into it)."""

    path: Path
    labels: list[str]
    models: list[ModelEntry]
    no_sign: NoSign  # required since schema version 3
    hand_search: SearchThreshold = field(default_factory=lambda: SearchThreshold(source=NO_RECORD))
    schema_version: int = SCHEMA_VERSION
    preprocessing: dict = field(default_factory=lambda: PreprocessConfig().to_dict())
    default_model: str | None = None
    keras: KerasModel = field(default_factory=KerasModel)
    validation: Validation = field(default_factory=Validation)
    calibration: Calibration | None = None
    provenance: Provenance = field(default_factory=Provenance)
    versions: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    @property
    def keras_accuracy(self) -> float | None:
        return self.keras.accuracy

    def entry_for(self, model_path: Path) -> ModelEntry | None:
        target = Path(model_path).resolve()
        for entry in self.models:
            if entry.path.resolve() == target:
                return entry
        return None

    def choose_default(self) -> ModelEntry | None:
        """The recorded default if it passed and exists; else the best passing runnable file.

        Best: highest test accuracy, then the smaller file, then manifest order.
        """
        usable = [
            (i, e)
            for i, e in enumerate(self.models)
            if e.passed and e.path.suffix.lower() in RUNNABLE_SUFFIXES and e.path.is_file()
        ]
        for _, e in usable:
            if e.path.name == (self.default_model or DEFAULT_MODEL_NAME):
                return e
        if not usable:
            return None

        def rank(item: tuple[int, ModelEntry]) -> tuple[float, int, int]:
            i, e = item
            return -(e.accuracy or 0.0), e.size_bytes or e.path.stat().st_size, i

        return min(usable, key=rank)[1]

    def to_json(self) -> str:
        data = {"schema_version": self.schema_version}
        data.update(typedjson.dump(self, self.path.parent))
        data.pop("path")
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, path: Path) -> Manifest:
        """Parse and check the text of the manifest at ``path``.

        Raises:
            ModelError: not JSON, another schema version, a malformed field, labels that are not
                six names, or preprocessing this runtime does not implement.
        """
        try:
            raw = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelError(f"{path}: not a valid JSON manifest ({exc})") from None
        if not isinstance(raw, dict):
            raise ModelError(f"{path}: not an export manifest (expected a JSON object)")
        version = raw.get("schema_version", 1)
        if version != SCHEMA_VERSION:
            if isinstance(version, int) and version < SCHEMA_VERSION:
                age = "older than this signs-edge's; re-export with `python -m export`"
            else:
                age = "not one this signs-edge reads; update signs-edge or re-export"
            raise ModelError(
                f"{path}: manifest schema version {version!r} is {age} "
                f"(this signs-edge reads version {SCHEMA_VERSION})"
            )
        manifest = typedjson.load(cls, raw, path.parent, str(path), path=path)
        labels = manifest.labels
        if len(labels) != NUM_CLASSES:
            raise ModelError(f"{path}: 'labels' must list {NUM_CLASSES} class names, got {labels}")
        _check_preprocessing(path, manifest.preprocessing)
        return manifest


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


def read_manifest(path: str | Path) -> Manifest:
    """Read and check the manifest file at ``path``.

    Raises:
        ModelError: unreadable file, or anything :meth:`Manifest.from_json` refuses.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the manifest ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ModelError(f"{path}: not a valid JSON manifest ({exc})") from None
    return Manifest.from_json(text, path)


def find_manifest(models: str | Path, hint: str) -> Manifest:
    """The manifest in folder ``models`` (or the file itself); ModelError if there is none."""
    p = Path(models)
    path = p if p.suffix == ".json" else p / MANIFEST_NAME
    if not p.exists():
        raise ModelError(f"{p}: models folder not found; {hint}")
    if not path.is_file():
        raise ModelError(f"{path}: no export manifest; {hint}")
    manifest = read_manifest(path)
    if not manifest.models:
        raise ModelError(f"{path}: the manifest lists no exported models; {hint}")
    return manifest
