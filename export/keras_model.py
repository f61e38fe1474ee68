"""The trained Keras model as export and fine-tuning read it: one check, one loader, and the
two thresholds its training run calibrated (min-confidence and hand search)."""

from __future__ import annotations

import json
from pathlib import Path

from runtime.backends import EXPECTED_INPUT
from runtime.errors import ModelError
from runtime.manifest import NoSign, SearchThreshold

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


def _metrics(model_path: Path) -> tuple[dict, str]:
    """The ``metrics.json`` beside the model, or ({}, why it cannot be used)."""
    metrics = Path(model_path).parent / "metrics.json"
    if not metrics.is_file():
        return {}, f"no {metrics.name} beside the model (nothing calibrated)"
    try:
        found = json.loads(metrics.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}, f"the {metrics.name} beside the model is unreadable"
    return (found, "") if isinstance(found, dict) else ({}, f"the {metrics.name} is not a record")


def _number(record: dict, key: str) -> float | None:
    v = record.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _target(record: dict) -> str:
    target = _number(record, "target_empty_no_sign")
    return f" >= {target:.0%} of" if target is not None else ""


def _rates(record: dict) -> dict:
    """The two held-out rates both calibrations record beside their value."""
    return {
        "empty_no_sign": _number(record, "empty_no_sign"),
        "hands_correct_shown": _number(record, "hands_correct_shown"),
    }


def _no_sign(found: dict, why: str) -> NoSign:
    if why:
        return NoSign(source=f"default: {why}")
    calib = found.get("min_confidence")
    chosen = calib.get("chosen") if isinstance(calib, dict) else None
    value = _number(chosen, "min_confidence") if isinstance(chosen, dict) else None
    if value is None or not 0 <= value <= 1:
        return NoSign(source="default: the model's metrics.json has no calibration")
    assert isinstance(calib, dict) and isinstance(chosen, dict)
    data = calib.get("data") or "held-out data"
    floor = _number(calib, "floor")
    start = f" from {floor:g} up" if floor is not None else ""
    how = f'the lowest value{start} with "no sign" on{_target(calib)} the empty scenes'
    return NoSign(
        min_confidence=value,
        calibrated=True,
        **_rates(chosen),
        source=f"calibrated at training time: {how}; {data}",
    )


def _search(found: dict, why: str) -> SearchThreshold:
    if why:
        return SearchThreshold(source=f"default: {why}")
    calib = found.get("hand_search")
    value = _number(calib, "threshold") if isinstance(calib, dict) else None
    if value is None or not 0 <= value <= 1:
        return SearchThreshold(source="default: the model's metrics.json has no hand_search")
    assert isinstance(calib, dict)
    data = calib.get("data") or "val scenes"
    how = f'the lowest {calib.get("score", "margin")} score with "no sign" on{_target(calib)}'
    return SearchThreshold(
        threshold=value,
        calibrated=True,
        **_rates(calib),
        source=f"calibrated at training time: {how} the empty scenes; {data}",
    )


def calibrated_no_sign(model_path: Path) -> NoSign:
    """The min-confidence ``python -m train`` (or ``--fine-tune``) calibrated for this model.

    Read from ``metrics.json`` beside it (``min_confidence.chosen``); the runtime default, with
    a ``source`` saying why, when the file is missing or holds no usable calibration.
    """
    return _no_sign(*_metrics(model_path))


def calibrated_search(model_path: Path) -> SearchThreshold:
    """The hand-search threshold ``python -m train`` (or ``--fine-tune``) calibrated for this
    model, from ``metrics.json`` beside it (``hand_search``); else the runtime's constant, with
    a ``source`` saying why."""
    return _search(*_metrics(model_path))


def calibrations(model_path: Path) -> dict:
    """The manifest's two records of what training calibrated, ``no_sign`` and
    ``hand_search``, from one read of the model's ``metrics.json``."""
    found, why = _metrics(model_path)
    return {"no_sign": _no_sign(found, why), "hand_search": _search(found, why)}
