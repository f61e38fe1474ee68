"""Command lines generated from settings dataclasses: one definition of every flag.

A settings field becomes a flag when it is declared with :func:`opt`; plain fields stay
library-only. The flag is the field name in kebab-case (``max_frames`` -> ``--max-frames``),
the type comes from the annotation, the help from :func:`opt`. A bool that defaults to False is
``--name``; one that defaults to True is ``--no-name``. ``list``/``tuple`` fields take one or
more values. A :class:`runtime.errors.SettingError` raised while the command runs is reported
with the flag's spelling, so the library can name its settings the Python way.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from runtime.errors import SettingError, run_cli

S = TypeVar("S")
T = TypeVar("T")
_META = "cli"
_METAVARS = {int: "N", float: "X", str: "PATH"}  # as the README writes them


def opt(
    default: Any = dataclasses.MISSING,
    *,
    help: str,  # noqa: A002 - argparse's own name for it
    factory: Callable[[], Any] | None = None,
    choices: typing.Sequence[Any] | None = None,
    metavar: str | None = None,
    parse: Callable[[str], Any] | None = None,
    group: str | None = None,
) -> Any:
    """A dataclass field that is also a command-line option.

    Args:
        default: the default (omit it, and ``factory``, for a required option).
        help: the ``--help`` text.
        factory: a default factory instead of ``default``.
        choices: the only values accepted.
        metavar: the value's name in ``--help``.
        parse: a converter from the command-line string, instead of the annotation's type.
        group: options with the same group name are mutually exclusive.
    """
    meta = {
        _META: {
            "help": help,
            "choices": choices,
            "metavar": metavar,
            "parse": parse,
            "group": group,
        }
    }
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in the help, except where they say nothing: on/off flags and None."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.nargs == 0 or action.default is None:
            return action.help or ""
        return super()._get_help_string(action)


def _base_type(hint: Any) -> Any:
    """``int | None`` -> int; other hints unchanged."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def build_parser(
    cls: type, *, prog: str, description: str | None, epilog: str | None = None
) -> tuple[argparse.ArgumentParser, dict[str, str]]:
    """The parser for settings class ``cls``, and each field's flag (for error messages)."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, epilog=epilog, formatter_class=_HelpFormatter
    )
    hints = typing.get_type_hints(cls)
    groups: dict[str, Any] = {}
    flags: dict[str, str] = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata.get(_META)
        if meta is None:
            continue
        name = f.name.replace("_", "-")
        target = parser
        if meta["group"]:
            if meta["group"] not in groups:
                groups[meta["group"]] = parser.add_mutually_exclusive_group()
            target = groups[meta["group"]]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        kw: dict[str, Any] = {"dest": f.name, "help": meta["help"]}
        base = _base_type(hints[f.name])
        if base is bool:
            flag = f"--no-{name}" if default else f"--{name}"
            kw["action"] = "store_false" if default else "store_true"
        else:
            flag = f"--{name}"
            if default is dataclasses.MISSING:
                kw["required"] = True
            else:
                kw["default"] = default
            if meta["parse"] is not None:
                kw["type"] = meta["parse"]
            elif typing.get_origin(base) in (list, tuple):
                kw["type"] = typing.get_args(base)[0]
                kw["nargs"] = "+"
            else:
                kw["type"] = base
            if meta["choices"] is not None:
                kw["choices"] = meta["choices"]
            kw["metavar"] = meta["metavar"] or _METAVARS.get(kw["type"])
        target.add_argument(flag, **kw)
        flags[f.name] = flag
    return parser, flags


def run_command(
    cls: type[S],
    run: Callable[[S], T],
    argv: list[str] | None = None,
    *,
    prog: str,
    description: str | None,
    epilog: str | None = None,
) -> T:
    """Parse ``argv`` into ``cls``, then ``run(settings)`` inside :func:`runtime.errors.run_cli`.

    Bad settings (from ``cls``'s own checks or later) are one ``error:`` line naming the flag,
    exit code 2.
    """
    parser, flags = build_parser(cls, prog=prog, description=description, epilog=epilog)
    args = vars(parser.parse_args(argv))
    hints = typing.get_type_hints(cls)
    for key, value in args.items():
        if isinstance(value, list) and typing.get_origin(_base_type(hints[key])) is tuple:
            args[key] = tuple(value)

    def call() -> T:
        try:
            return run(cls(**args))
        except SettingError as exc:
            flag = flags.get(exc.setting)
            if flag is None or flag.startswith("--no-"):
                raise
            raise exc.renamed(flag) from None

    return run_cli(call)
