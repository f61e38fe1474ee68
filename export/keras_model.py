"""The trained Keras model as export and fine-tuning read it: one check, one loader."""

from __future__ import annotations

from pathlib import Path

from runtime.backends import EXPECTED_INPUT
from runtime.errors import ModelError

KERAS_SUFFIXES = (".keras", ".h5")


def check_model_file(path: Path) -> None:
    """A ModelError unless ``path`` is an existing .keras file (cheap: before TensorFlow loads)."""
    if not path.exists():
        raise ModelError(f"{path}: model file not found (train one with: python -m train)")
    if not path.is_file():
        raise ModelError(f"{path}: not a file (expected a Keras .keras model)")
    if path.suffix.lower() not in KERAS_SUFFIXES:
        raise ModelError(f"{path}: not a Keras model (expected a .keras file)")


def load_keras(path: Path, verbose: bool = False):
    """The Keras model at ``path``; a ModelError for an unreadable file or a wrong shape."""
    from train.tfquiet import import_tensorflow

    import_tensorflow(verbose)
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises ValueError, OSError, zipfile errors, ...
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a readable Keras model ({first})") from None
    try:
        in_shape, out_shape = model.input_shape, model.output_shape
    except (AttributeError, ValueError):  # e.g. a Sequential model that was never built
        raise ModelError(f"{path}: model has no defined input shape") from None
    if not isinstance(in_shape, tuple) or tuple(in_shape[1:]) != EXPECTED_INPUT:
        raise ModelError(f"{path}: model input shape {in_shape}, expected (None, 64, 64, 3)")
    if not isinstance(out_shape, tuple) or tuple(out_shape[1:]) != (6,):
        raise ModelError(f"{path}: model output shape {out_shape}, expected (None, 6)")
    return model
