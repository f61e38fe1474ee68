"""Robustness report settings: one dataclass, saved in results.json."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from runtime.pipeline import DEFAULT_MIN_CONFIDENCE


def default_other_hands() -> str | None:
    """$SIGNS_OTHER_HANDS, else ../shared/other-hands if it exists (the project's layout)."""
    env = os.environ.get("SIGNS_OTHER_HANDS")
    if env:
        return env
    path = Path("..") / "shared" / "other-hands"
    return str(path) if path.is_dir() else None


@dataclass
class RobustnessSettings:
    models: str = "artifacts/export"  # folder with manifest.json, or one .keras/.tflite/.onnx
    data: str | None = None  # SIGNS data for the test split; None: $SIGNS_DATA, else ./data
    other_hands: str | None = field(default_factory=default_other_hands)  # real-world row
    out: str = str(Path("benchmarks") / "results" / "robustness")  # results.json/.md/.png
    seed: int = 0  # seeds every shift and every empty scene; same seed, same pixels
    min_confidence: float = DEFAULT_MIN_CONFIDENCE  # the runtime's "no sign" threshold
    empty_per_kind: int = 150  # hand-free scenes per kind (photo, wall, texture, noise)
    keras: bool = True  # also score the manifest's Keras model (needs TensorFlow)

    def to_dict(self) -> dict:
        return asdict(self)
