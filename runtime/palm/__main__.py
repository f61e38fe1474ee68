"""``python -m runtime.palm``: fetch the palm detector that ``--find-hand`` uses (once)."""

from __future__ import annotations

from dataclasses import dataclass

from runtime.cli import opt, run_command


@dataclass
class FetchSettings:
    out: str | None = opt(
        None,
        metavar="FILE",
        help="where to write palm_detection_full.tflite (default: "
        "~/.cache/signs-edge/palm_detection_full.tflite, where --find-hand looks)",
    )


def run(settings: FetchSettings) -> None:
    from runtime.fsutil import check_output_file
    from runtime.palm.fetch import REQUIREMENT, SHA256, default_path, fetch

    dest = check_output_file(settings.out or default_path(), "palm detector file")
    path, fetched = fetch(dest)
    how = f"fetched from {REQUIREMENT} on PyPI" if fetched else "already there"
    print(
        f"palm detector: {path} ({path.stat().st_size / 1e6:.1f} MB, sha256 {SHA256[:12]}, {how})"
    )


def main(argv: list[str] | None = None) -> None:
    run_command(
        FetchSettings,
        run,
        argv,
        prog="python -m runtime.palm",
        description="Fetch MediaPipe's palm detector (Apache-2.0) for --find-hand, once.",
    )


if __name__ == "__main__":
    main()
