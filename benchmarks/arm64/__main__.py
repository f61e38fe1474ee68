"""python -m benchmarks.arm64: the runtime on an emulated Raspberry Pi (arm64) vs natively."""

from __future__ import annotations

from benchmarks.arm64 import Arm64Settings, run
from runtime.cli import run_command

EPILOG = (
    "Exit code 0 only when every label is identical and every output is within its tolerance; "
    "1 when one differs; 2 for bad input or a missing tool or registry. Needs qemu-user-static "
    "(sudo apt-get install qemu-user-static)."
)


def main(argv: list[str] | None = None) -> None:
    run_command(
        Arm64Settings, run, argv, prog="python -m benchmarks.arm64", description=__doc__,
        epilog=EPILOG,
    )  # fmt: skip


if __name__ == "__main__":
    main()
