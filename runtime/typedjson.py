"""Dataclasses <-> parsed JSON, by one walk over the field types.

A file format between stages is declared once, as dataclasses (see :mod:`runtime.manifest`);
this module writes them as JSON-ready values and builds them back, so a new field is one line in
its dataclass. Reading checks every value's type against the annotation and raises a one-line
:class:`ModelError` naming the key; unknown keys are ignored, missing keys take the default.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from enum import Enum
from pathlib import Path

from runtime.backends import TensorInfo
from runtime.errors import ModelError


def dump(obj: object, base: Path) -> object:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: dump(getattr(obj, f.name), base) for f in dataclasses.fields(obj)}
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, Path):
        try:
            return obj.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:  # outside the manifest's folder: relative with ".."
            return Path(os.path.relpath(obj.resolve(), base.resolve())).as_posix()
    if isinstance(obj, (list, tuple)):
        return [dump(v, base) for v in obj]
    if isinstance(obj, dict):
        return {k: dump(v, base) for k, v in obj.items()}
    return obj


def load(cls: type, data: object, base: Path, where: str, **given: object) -> object:
    """Build dataclass ``cls`` from parsed JSON; a wrong type is a ModelError naming the key."""
    if not isinstance(data, dict):
        raise ModelError(f"{where}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    kwargs = dict(given)
    for f in dataclasses.fields(cls):
        if f.name in given:
            continue
        if f.name in data:
            kwargs[f.name] = _convert(hints[f.name], data[f.name], base, f"{where}: '{f.name}'")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ModelError(f"{where}: '{f.name}' is missing")
    return cls(**kwargs)


def _convert(tp: object, value: object, base: Path, where: str) -> object:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, base, where)
    if dataclasses.is_dataclass(tp):
        return load(tp, value, base, where)
    if isinstance(tp, type) and issubclass(tp, Enum):
        try:
            return tp(value)
        except ValueError:
            valid = ", ".join(repr(m.value) for m in tp)
            raise ModelError(f"{where} is {value!r}, expected one of {valid}") from None
    if tp is TensorInfo:  # lives in runtime.backends; same walk, shape as a tuple
        info = load(TensorInfo, value, base, where)
        return dataclasses.replace(info, shape=tuple(info.shape))
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise ModelError(f"{where} must be a path string, got {value!r}")
        p = Path(value)
        return p if p.is_absolute() else Path(os.path.normpath(base / p))
    if origin is list or tp is list:
        if not isinstance(value, list):
            raise ModelError(f"{where} must be a list, got {value!r}")
        item = args[0] if args else object
        return [_convert(item, v, base, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple or tp is tuple:
        if not isinstance(value, list):
            raise ModelError(f"{where} must be a list, got {value!r}")
        return tuple(value)
    if tp is dict:
        if not isinstance(value, dict):
            raise ModelError(f"{where} must be an object, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ModelError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ModelError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is bool and not isinstance(value, bool):
        raise ModelError(f"{where} must be true or false, got {value!r}")
    if tp is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # labels may be written as numbers
        if not isinstance(value, str):
            raise ModelError(f"{where} must be a string, got {value!r}")
    if tp is object:  # e.g. a TensorInfo shape entry: int or a symbolic "N"
        return value
    return value
