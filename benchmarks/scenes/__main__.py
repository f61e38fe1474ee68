"""python -m benchmarks.scenes {make,report,calibrate}: the synthetic-scene bench (no camera)."""

from __future__ import annotations

import argparse

from benchmarks.scenes import DEFAULT_OUT
from runtime.cli import flag
from runtime.errors import run_cli
from runtime.pipeline import DEFAULT_MIN_CONFIDENCE


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scenes", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter

    m = sub.add_parser(
        "make", help="write a scene folder (PNG frames + labels.csv)", formatter_class=fmt
    )
    m.add_argument("--out", required=True, help="folder to write (replaced if it holds scenes)")
    m.add_argument("--seed", type=int, default=1, help="same seed, same scenes")
    m.add_argument("--count", type=int, default=300, help="number of 640x480 frames")
    m.add_argument(
        "--split",
        choices=("test", "val"),
        default="test",
        help="test: SIGNS test hands (+ other-hands) on the test backgrounds; val: validation "
        "hands on the val backgrounds (for choosing search settings)",
    )
    m.add_argument("--empty", type=float, default=0.3, help="fraction of hand-free scenes")
    m.add_argument("--data", default=None, help="SIGNS data; None: $SIGNS_DATA, else ./data")
    m.add_argument(
        *flag("other-hands"),
        default=None,
        help="other-hands folder to add to test scenes (e.g. ../shared/other-hands)",
    )

    m.add_argument("--video", default=None, help="also write an MJPG .avi of the scenes here")
    m.add_argument("--hold", type=int, default=10, help="video frames per scene (30 fps)")

    r = sub.add_parser("report", help="score models on a scene folder", formatter_class=fmt)
    r.add_argument("--scenes", required=True, help="scene folder from `make`")
    r.add_argument(
        "--models",
        nargs="+",
        default=["artifacts/export"],
        help="export folders (their --format file) or model files",
    )
    r.add_argument("--format", default="tflite-int8", help="which file of an export folder")
    r.add_argument(*flag("min-confidence"), type=float, default=DEFAULT_MIN_CONFIDENCE)
    r.add_argument("--out", default=DEFAULT_OUT, help="folder for results.json / results.md")
    c = sub.add_parser(
        "calibrate", help="choose the search threshold on val scenes", formatter_class=fmt
    )
    c.add_argument("--scenes", required=True, help="a val scene folder (make --split val)")
    c.add_argument("--model", default="artifacts/export", help="export folder or model file")
    c.add_argument(
        "--target", type=float, default=0.95, help="no-sign rate wanted on empty val scenes"
    )
    c.add_argument("--sides", type=int, nargs="+", default=None, help="window sides, px")
    c.add_argument("--stride", type=float, default=None, help="stride, fraction of a window")
    c.add_argument(
        "--skin", type=float, default=None, help="skin-fraction proposal (0 = off); None: default"
    )
    a = p.parse_args(argv)

    if a.command == "make":
        from benchmarks.scenes.make import make_scenes

        def go() -> None:
            out = make_scenes(
                a.out, a.seed, a.count, a.split, a.empty, a.data, a.other_hands, a.video, a.hold
            )
            print(f"wrote {a.count} scenes to {out}")

        run_cli(go)
    elif a.command == "calibrate":
        from benchmarks.scenes.calibrate import calibrate

        run_cli(lambda: calibrate(a.model, a.scenes, a.target, a.sides, a.stride, a.skin))
    else:
        from benchmarks.scenes.report import run_report

        run_cli(lambda: run_report(a.models, a.scenes, a.out, a.min_confidence, a.format))


if __name__ == "__main__":
    main()
