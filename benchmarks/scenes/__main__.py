"""python -m benchmarks.scenes {make,report,calibrate}: the synthetic-scene bench (no camera).

  make       write a scene folder (PNG frames + labels.csv + scenes.json)
  report     score models on a scene folder (accuracy, "no sign", FPS with/without --find-hand)
  calibrate  choose the hand search's threshold on val scenes

`python -m benchmarks.scenes COMMAND --help` lists each command's flags.
"""

from __future__ import annotations

import sys

from benchmarks.scenes.settings import CalibrateSettings, MakeSettings, ReportSettings
from runtime.cli import run_command


def _make(s: MakeSettings) -> None:
    from benchmarks.scenes.make import make_scenes

    out = make_scenes(
        s.out, s.seed, s.count, s.split, s.empty, s.data, s.other_hands, s.video, s.hold
    )
    print(f"wrote {s.count} scenes to {out}")


def _report(s: ReportSettings) -> dict:
    from benchmarks.scenes.report import run_report

    return run_report(
        s.models, s.scenes, s.out, s.min_confidence, s.format, s.search_threshold, s.palm_model
    )


def _calibrate(s: CalibrateSettings) -> dict:
    from benchmarks.scenes.calibrate import calibrate

    return calibrate(s.model, s.scenes, s.target, s.sides, s.stride, s.skin)


COMMANDS = {
    "make": (MakeSettings, _make),
    "report": (ReportSettings, _report),
    "calibrate": (CalibrateSettings, _calibrate),
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        raise SystemExit(0 if argv and argv[0] in ("-h", "--help") else 2)
    cls, fn = COMMANDS[argv[0]]
    run_command(cls, fn, argv[1:], prog=f"python -m benchmarks.scenes {argv[0]}", description=None)


if __name__ == "__main__":
    main()
