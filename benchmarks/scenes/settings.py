"""Settings of the three scene-bench commands: one dataclass each; the parsers come from them."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.scenes import BACKGROUNDS, DEFAULT_OUT
from runtime.cli import opt
from runtime.errors import SettingError
from runtime.handsearch import DEFAULT_THRESHOLD, check_search_threshold
from runtime.manifest import DEFAULT_EXPORT_DIR
from runtime.pipeline import DEFAULT_MIN_CONFIDENCE, check_min_confidence


@dataclass
class MakeSettings:
    out: str = opt(help="folder to write (replaced if it holds scenes made earlier)")
    seed: int = opt(1, help="the same seed gives the same scenes")
    count: int = opt(300, help="number of 640x480 frames")
    split: str = opt(
        "test",
        choices=tuple(BACKGROUNDS),
        help="test: SIGNS test hands (+ --other-hands) on the test backgrounds; val: validation "
        "hands on the val backgrounds (for choosing the search's settings); dev: validation "
        "hands on the training backgrounds (for choosing the palm detector's score)",
    )
    empty: float = opt(0.3, help="fraction of hand-free scenes")
    data: str | None = opt(None, help="SIGNS data; when omitted, $SIGNS_DATA, else ./data")
    other_hands: str | None = opt(
        None, help="other-hands folder to add to test scenes (e.g. ../shared/other-hands)"
    )
    video: str | None = opt(None, help="also write the scenes as an MJPG .avi here")
    hold: int = opt(10, help="video frames per scene (30 fps)")

    def __post_init__(self) -> None:
        if self.count < 1:
            raise SettingError("count", self.count, "must be at least 1")
        if not 0.0 <= self.empty <= 1.0:
            raise SettingError("empty", self.empty, "must be in [0, 1]")
        if self.hold < 1:
            raise SettingError("hold", self.hold, "must be at least 1")
        if self.video is not None and not self.video.lower().endswith(".avi"):
            raise SettingError("video", self.video, "must be an .avi path (MJPG)")


@dataclass
class ReportSettings:
    scenes: str = opt(help="a scene folder from `make`")
    models: list[str] = opt(
        factory=lambda: [str(DEFAULT_EXPORT_DIR)],
        help="export folders (their --format file) or model files",
    )
    format: str = opt("tflite-int8", help="which file of an export folder")
    min_confidence: float | None = opt(
        None,
        help='below it the label is "no sign"; when omitted, each model\'s value calibrated at '
        f"training time (manifest.json), else {DEFAULT_MIN_CONFIDENCE}",
    )
    search_threshold: float | None = opt(
        None,
        help="--find-hand's threshold on the best window's score; when omitted, each model's "
        f"value calibrated at training time (manifest.json), else {DEFAULT_THRESHOLD}",
    )
    palm_model: str | None = opt(
        None,
        metavar="FILE",
        help="the palm detector for the palm finder's columns; when omitted, the one python -m "
        "runtime.palm fetched, else those columns are skipped",
    )
    out: str = opt(DEFAULT_OUT, help="folder for results.json and results.md")

    def __post_init__(self) -> None:
        check_min_confidence(self.min_confidence)
        check_search_threshold(self.search_threshold)


@dataclass
class CalibrateSettings:
    scenes: str = opt(help="a val scene folder (make --split val)")
    model: str = opt(str(DEFAULT_EXPORT_DIR), help="export folder or model file")
    target: float = opt(0.95, help="no-sign rate wanted on the empty val scenes")
    sides: list[int] | None = opt(None, help="window sides, px; when omitted, the defaults")
    stride: float | None = opt(None, help="stride, fraction of a window; when omitted, default")
    skin: float | None = opt(None, help="skin-fraction proposal (0 = off); when omitted, default")

    def __post_init__(self) -> None:
        if not 0.0 < self.target < 1.0:
            raise SettingError("target", self.target, "must be in (0, 1)")
