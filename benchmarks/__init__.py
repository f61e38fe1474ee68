"""Benchmarks: every exported format side by side, against Keras, on the machine it runs on.

Light to import (the settings dataclass only), so ``python -m benchmarks.worker`` processes do
not pay for, or count the memory of, anything they do not measure.
"""

from benchmarks.settings import BenchSettings


def run(settings: BenchSettings) -> dict:
    """Measure and write results.json/.md/.png; see :func:`benchmarks.core.run`."""
    from benchmarks.core import run as _run

    return _run(settings)


__all__ = ["BenchSettings", "run"]
