"""Training the seed SIGNS CNN (needs the `train` extra: TensorFlow/Keras, matplotlib)."""

from collections.abc import Sequence
from typing import Any

from train.settings import TrainSettings


def run(settings: TrainSettings, callbacks: Sequence[Any] = ()) -> dict:
    """Train and write artifacts; see :func:`train.core.run`."""
    from train.core import run as _run

    return _run(settings, callbacks)


__all__ = ["TrainSettings", "run"]
