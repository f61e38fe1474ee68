"""Training the seed SIGNS CNN (needs the `train` extra: TensorFlow/Keras, matplotlib)."""

from train.settings import TrainSettings


def run(settings: TrainSettings) -> dict:
    """Train and write artifacts; see :func:`train.core.run`."""
    from train.core import run as _run

    return _run(settings)


__all__ = ["TrainSettings", "run"]
