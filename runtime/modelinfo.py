"""Which model file the runtime runs, and what its export manifest says about it.

The manifest's schema and reader live in :mod:`runtime.manifest`; this module is what the
commands do with it: find the default model of an export folder, describe a model file (its
entry, labels, thresholds and the warnings a user should see) and check a loaded backend
against that entry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from runtime.dataset import DEFAULT_LABELS
from runtime.errors import ModelError
from runtime.fsutil import file_sha256
from runtime.manifest import (
    DEFAULT_EXPORT_DIR,
    DEFAULT_MODEL_NAME,
    MANIFEST_NAME,
    PASSED,
    Manifest,
    ModelEntry,
    NoSign,
    SearchThreshold,
    read_manifest,
)


@dataclass(frozen=True)
class ModelInfo:
    """A model file plus what its manifest says about it (or the defaults)."""

    path: Path
    labels: list[str]
    manifest: Manifest | None = None
    entry: ModelEntry | None = None
    warnings: tuple[str, ...] = ()  # things the user should know before trusting the output

    @property
    def no_sign(self) -> NoSign:
        """The manifest's threshold when it lists this file, else the runtime default."""
        if self.manifest is None:
            return NoSign(source=f"default: no {MANIFEST_NAME} beside {self.path.name}")
        if self.entry is None:
            return NoSign(source=f"default: {self.path.name} is not listed in its {MANIFEST_NAME}")
        return self.manifest.no_sign

    @property
    def hand_search(self) -> SearchThreshold:
        """The manifest's search threshold when it lists this file, else the runtime constant."""
        if self.manifest is None:
            return SearchThreshold(source=f"default: no {MANIFEST_NAME} beside {self.path.name}")
        if self.entry is None:
            why = f"default: {self.path.name} is not listed in its {MANIFEST_NAME}"
            return SearchThreshold(source=why)
        return self.manifest.hand_search

    def describe(self) -> str:
        """One line for the start-up log."""
        if self.manifest is None:
            return f"{self.path} (no {MANIFEST_NAME} beside it: default labels and preprocessing)"
        if self.entry is None:
            return f"{self.path} (not listed in {self.manifest.path})"
        e = self.entry
        acc = f", test accuracy {e.accuracy:.4f}" if e.accuracy is not None else ""
        views = f", {text}" if (text := self.manifest.keras.describe_views()) else ""
        return f"{self.path} ({e.format}{views}, export status {e.status.value}{acc})"


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
                f"{path.name} is marked {entry.status.value!r} in {manifest_path}{why}: "
                "its predictions may be wrong"
            )
        if verify and entry.sha256 and path.is_file() and file_sha256(path) != entry.sha256:
            warnings.append(
                f"{path.name} differs from the file recorded in {manifest_path} (sha256): "
                "the recorded status and accuracy do not describe it"
            )
    return ModelInfo(
        path=path, labels=manifest.labels, manifest=manifest, entry=entry, warnings=tuple(warnings)
    )


def check_backend(info: ModelInfo, backend: object) -> list[str]:
    """Warnings where the loaded model's input quantization disagrees with its manifest entry.

    The backend always quantizes from the file's own tensor parameters; a disagreement means
    the manifest describes another file.
    """
    from runtime.backends import uint8_shortcut

    if info.entry is None:
        return []
    recorded, actual = info.entry.input, backend.input
    out = []
    shortcut = info.entry.uint8_shortcut
    if shortcut is not None and shortcut != uint8_shortcut(actual):
        out.append(
            f"manifest says the uint8 input shortcut {'applies' if shortcut else 'does not apply'}"
            f", the file's input quantization says otherwise"
        )
    if recorded is not None:
        if recorded.dtype != actual.dtype:
            out.append(f"manifest says input dtype {recorded.dtype}, the file has {actual.dtype}")
        for key in ("scale", "zero_point"):
            r, a = getattr(recorded, key), getattr(actual, key)
            if not math.isclose(float(r), float(a), rel_tol=1e-6):
                out.append(f"manifest says input {key} {r}, the file has {a}")
    return [f"{info.path.name}: {w} (the file's own values are used)" for w in out]


def default_model(export_dir: str | Path = DEFAULT_EXPORT_DIR) -> Path:
    """The model ``runtime.webcam`` uses when ``--model`` is not given.

    The manifest's ``default_model`` when it passed the export gate (``tflite-int8.tflite``
    when there is no manifest); else :meth:`Manifest.choose_default`.

    Raises:
        ModelError: no usable model in ``export_dir``.
    """
    export_dir = Path(export_dir)
    hint = f"run `python -m export --int8` first or pass --model FILE (looked in {export_dir})"
    manifest_path = export_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        preferred = export_dir / DEFAULT_MODEL_NAME
        if preferred.is_file():
            return preferred
        raise ModelError(f"no model given and no {DEFAULT_MODEL_NAME} or {MANIFEST_NAME}: {hint}")
    entry = read_manifest(manifest_path).choose_default()
    if entry is None:
        raise ModelError(f"no model given and none marked {PASSED!r} in {manifest_path}: {hint}")
    return entry.path
