"""The Raspberry Pi path, checked: the runtime in an emulated arm64 Raspberry Pi OS userland.

``python -m benchmarks.arm64`` builds (once, cached) a Debian bookworm arm64 userland with
Python 3.11 and the runtime's aarch64 wheels, runs ``runtime.evaluate``, ``runtime.webcam`` and
a raw-output probe in it under ``qemu-aarch64 -cpu cortex-a72`` (Pi 4) or ``cortex-a76``
(Pi 5), runs the same natively, and compares. Heavy work happens in :mod:`.core`; importing this
package costs nothing.
"""

from benchmarks.arm64.settings import Arm64Settings


def run(settings: Arm64Settings) -> dict:
    """See :func:`benchmarks.arm64.core.run`."""
    from benchmarks.arm64.core import run as _run

    return _run(settings)


__all__ = ["Arm64Settings", "run"]
