"""The robustness report: SIGNS test under seeded shifts, other people's hands, empty scenes."""

from benchmarks.robustness.core import run
from benchmarks.robustness.settings import RobustnessSettings

__all__ = ["RobustnessSettings", "run"]
