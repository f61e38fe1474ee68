"""Robustness report settings: one dataclass, saved in results.json."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from runtime.cli import opt
from runtime.errors import SettingError
from runtime.manifest import DEFAULT_EXPORT_DIR
from runtime.pipeline import DEFAULT_MIN_CONFIDENCE, check_min_confidence


def default_other_hands() -> str | None:
    """$SIGNS_OTHER_HANDS, else ../shared/other-hands if it exists (the project's layout)."""
    env = os.environ.get("SIGNS_OTHER_HANDS")
    if env:
        return env
    path = Path("..") / "shared" / "other-hands"
    return str(path) if path.is_dir() else None


@dataclass
class RobustnessSettings:
    models: str = opt(
        str(DEFAULT_EXPORT_DIR),
        help="folder with manifest.json (python -m export), or one .keras/.tflite/.onnx file",
    )
    data: str | None = opt(
        None, help="SIGNS data (its test split is shifted); when omitted, $SIGNS_DATA, else ./data"
    )
    other_hands: str | None = opt(
        factory=default_other_hands,
        help="folder of other people's hands (<label>/<image>); when omitted, "
        "$SIGNS_OTHER_HANDS, else ../shared/other-hands if it exists",
    )
    out: str = opt(
        str(Path("benchmarks") / "results" / "robustness"),
        help="folder for results.json, results.md, results.png",
    )
    seed: int = opt(
        0, help="seed of every shift and empty scene (same seed: same pixels for every model)"
    )
    min_confidence: float | None = opt(
        None,
        help="top probability below which the runtime shows 'no sign'; when omitted, each "
        f"model's value calibrated at training time (manifest.json), else {DEFAULT_MIN_CONFIDENCE}",
    )
    empty_per_kind: int = opt(150, help="hand-free scenes per kind (photo, wall, texture, noise)")
    keras: bool = opt(True, help="skip the manifest's Keras model (no TensorFlow needed)")

    def __post_init__(self) -> None:
        check_min_confidence(self.min_confidence)
        if self.empty_per_kind < 1:
            raise SettingError("empty_per_kind", self.empty_per_kind, "must be at least 1")

    def to_dict(self) -> dict:
        return asdict(self)
