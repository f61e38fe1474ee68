"""The export's report: one row per format against the Keras reference."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runtime.manifest import MANIFEST_NAME, ModelEntry

KB = 1000  # bytes; sizes in the table are SI kilobytes


@dataclass
class ExportReport:
    out: Path
    keras_accuracy: float
    test_images: int
    results: list[ModelEntry]  # one per requested format, as written into the manifest
    seconds: float = 0.0  # wall time of the whole export, validation included

    @property
    def failures(self) -> list[ModelEntry]:
        return [r for r in self.results if not r.passed]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def manifest(self) -> Path:
        return self.out / MANIFEST_NAME


def format_table(report: ExportReport) -> str:
    """The benchmark-style table: one row per format, Keras first as the reference."""
    header = (
        f"{'format':<15} {'status':<13} {'size KB':>8} {'accuracy':>9} {'drop pp':>8} "
        f"{'agree':>7} {'max |dp|':>9} {'tol':>6} {'export s':>9}"
    )
    lines = [
        header,
        "-" * len(header),
        f"{'keras':<15} {'reference':<13} {'':>8} {report.keras_accuracy:>9.4f} {'':>8} "
        f"{'':>7} {'':>9} {'':>6} {'':>9}",
    ]

    def num(v: float | None, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    for r in report.results:
        lines.append(
            f"{r.format:<15} {r.status.value:<13} "
            f"{num(r.size_bytes / KB if r.size_bytes else None, '.1f'):>8} "
            f"{num(r.accuracy, '.4f'):>9} {num(r.drop, '+.2f'):>8} "
            f"{num(None if r.agreement is None else r.agreement * 100, '.1f') + '%':>7} "
            f"{num(r.max_abs_diff, '.1e'):>9} {num(r.tolerance, '.0e'):>6} "
            f"{num(r.export_seconds if r.status != 'export-failed' else None, '.1f'):>9}"
        )
    lines.append(
        f"{report.test_images} test images; drop = Keras accuracy - file accuracy "
        f"(percentage points); agree = same top-1 class as Keras"
    )
    return "\n".join(lines)
