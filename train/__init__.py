"""Training the seed SIGNS CNN (needs the `train` extra: TensorFlow/Keras, matplotlib)."""

from collections.abc import Sequence
from typing import Any

from train.settings import TrainSettings


def run(settings: TrainSettings, callbacks: Sequence[Any] = ()) -> dict:
    """Train (or fine-tune, with ``settings.fine_tune``) and write artifacts.

    See :func:`train.core.run` and :func:`train.finetune.run`.
    """
    if settings.fine_tune is not None:
        from train.finetune import run as _run
    else:
        from train.core import run as _run

    return _run(settings, callbacks)


__all__ = ["TrainSettings", "run"]
