"""The synthetic-scene bench: hands anywhere on held-out backgrounds, and empty scenes.

``python -m benchmarks.scenes make`` writes the scenes (:mod:`benchmarks.scenes.make`);
``python -m benchmarks.scenes report`` scores models on them (:mod:`benchmarks.scenes.report`).
"""

from pathlib import Path

DEFAULT_OUT = str(Path("benchmarks") / "results" / "scenes")
# Scene split -> the scikit-image images its backgrounds are cut from (benchmarks.scenes.make).
BACKGROUNDS = {"test": "test", "val": "val", "dev": "train"}
