"""Export the trained Keras model to TFLite and ONNX and validate every file against Keras.

Needs the ``train`` extra (TensorFlow, tf2onnx, onnx); the files it writes run without them.
"""

from export.settings import ExportSettings


def main_export(settings: ExportSettings, **kwargs):
    """Export and validate; see :func:`export.core.main_export`."""
    from export.core import main_export as _main_export

    return _main_export(settings, **kwargs)


__all__ = ["ExportSettings", "main_export"]
