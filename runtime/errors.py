"""Typed user-facing errors and the one CLI wrapper that turns them into a one-line message."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class SignsError(Exception):
    """An error caused by the user's input (a file, a device, a flag), not by a bug.

    The CLI prints ``error: <message>`` on one line and exits with ``exit_code``.
    """

    exit_code = 2


class SettingError(SignsError):
    """A setting has a value it cannot take. The message names the setting as the library
    spells it (``max_frames -1: must be ...``); a CLI re-raises it with its flag
    (:meth:`renamed`), so ``run()`` called from Python and the command line both read well."""

    def __init__(self, setting: str, value: object, reason: str) -> None:
        self.setting, self.value, self.reason = setting, value, reason
        super().__init__(f"{setting} {value}: {reason}")

    def renamed(self, name: str) -> SettingError:
        """The same error, naming the setting ``name`` (e.g. its ``--flag``)."""
        exc = type(self)(name, self.value, self.reason)
        exc.setting = self.setting
        return exc


class DataError(SignsError):
    """The dataset is missing, unreadable or malformed."""


class ModelError(SignsError):
    """A model file is missing, unreadable, or has the wrong input/output shape."""


class SourceError(SignsError):
    """A camera or video source cannot be opened or stopped delivering frames."""


class ValidationError(SignsError):
    """An exported model failed its accuracy or tolerance gate."""

    exit_code = 1


def run_cli(fn: Callable[[], T]) -> T:
    """Run ``fn``; on a user error print one line to stderr and exit non-zero, no traceback."""
    try:
        return fn()
    except SignsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
