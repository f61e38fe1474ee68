"""Command lines generated from the settings dataclasses: spelling, README, errors (no training)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from benchmarks.arm64.settings import Arm64Settings
from benchmarks.robustness.settings import RobustnessSettings
from benchmarks.settings import BenchSettings
from export.settings import ExportSettings
from runtime.cli import build_parser
from runtime.errors import SettingError
from runtime.evaluate import EvaluateSettings
from runtime.palm.__main__ import FetchSettings
from runtime.webcam import WebcamSettings
from tests.helpers import ROOT, assert_user_error, run_module
from train.settings import TrainSettings

COMMANDS = {
    "train": TrainSettings,
    "export": ExportSettings,
    "runtime.evaluate": EvaluateSettings,
    "runtime.webcam": WebcamSettings,
    "runtime.palm": FetchSettings,
    "benchmarks": BenchSettings,
    "benchmarks.arm64": Arm64Settings,
    "benchmarks.robustness": RobustnessSettings,
}


def _parse(module: str, argv: list[str]):
    parser, _ = build_parser(COMMANDS[module], prog=module, description=None)
    return COMMANDS[module](**vars(parser.parse_args(argv)))


def _readme_commands() -> list[tuple[str, list[str]]]:
    """Every concrete ``python -m <command> ...`` line of the README (not the [usage] blocks)."""
    found, in_code = [], False
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        m = re.search(r"python -m ([\w.]+)(.*)", line)
        if not in_code or not m or m.group(1) not in COMMANDS or "[" in line:
            continue
        tail = m.group(2).split("&&")[0]
        found.append((m.group(1), shlex.split(tail, comments=True)))
    return found


README_COMMANDS = _readme_commands()


def test_the_readme_has_command_lines() -> None:
    assert {m for m, _ in README_COMMANDS} == set(COMMANDS), README_COMMANDS


@pytest.mark.parametrize(
    "module,argv", README_COMMANDS, ids=[" ".join(c[1]) or c[0] for c in README_COMMANDS]
)
def test_every_readme_command_line_parses(module: str, argv: list[str]) -> None:
    _parse(module, argv)


@pytest.mark.parametrize("module", COMMANDS)
def test_flags_are_kebab_case_one_spelling(module: str) -> None:
    parser, flags = build_parser(COMMANDS[module], prog=module, description=None)
    options = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
    assert all(re.fullmatch(r"--[a-z0-9]+(-[a-z0-9]+)*", o) for o in options), options
    assert len(options) == len(set(options))
    # One flag per setting (+ --help); an unset-able bool is the one pair --x / --no-x.
    assert len([a for a in parser._actions if a.option_strings]) == len(flags) + 1


def test_documented_flag_spellings_and_meanings() -> None:
    s = _parse(
        "train", ["--recipe", "notebook", "--no-plots", "--batch-size", "16", "--verbose", "0"]
    )
    assert (s.augment, s.plots, s.batch_size, s.verbose) == (False, False, 16, 0)
    assert _parse("train", []).augment is True
    assert _parse("train", ["--no-flip"]).flip is False and _parse("train", []).flip is None
    s = _parse("export", ["--int8", "--formats", "tflite-int8,onnx-fp32", "tflite-fp16"])
    assert s.int8 and s.formats == ("tflite-int8", "onnx-fp32", "tflite-fp16")
    assert _parse("benchmarks", ["--threads", "4,1,4"]).threads == [1, 4]
    assert _parse("benchmarks.arm64", ["--cpu", "both"]).cpus() == ["cortex-a72", "cortex-a76"]
    with pytest.raises(SystemExit):
        _parse("train", ["--batch_size", "16"])  # no snake_case alias
    with pytest.raises(SystemExit):
        _parse("runtime.webcam", ["--camera", "1", "--source", "x.avi"])  # one or the other
    with pytest.raises(SystemExit):
        _parse("runtime.evaluate", [])  # --model is required


@pytest.mark.parametrize(
    "cls,kwargs,setting",
    [
        (WebcamSettings, {"max_frames": -1}, "max_frames"),
        (WebcamSettings, {"threads": 0}, "threads"),
        (WebcamSettings, {"smooth": 1.0}, "smooth"),
        (WebcamSettings, {"smooth": -0.1}, "smooth"),
        (WebcamSettings, {"min_confidence": 1.5}, "min_confidence"),
        (WebcamSettings, {"roi": -1}, "roi"),
        (WebcamSettings, {"retry_s": 0}, "retry_s"),
        (EvaluateSettings, {"model": "m.tflite", "threads": 0}, "threads"),
        (ExportSettings, {"max_drop": -1}, "max_drop"),
        (ExportSettings, {"threads": 0}, "threads"),
        (BenchSettings, {"threads": [0]}, "threads"),
        (BenchSettings, {"iterations": 0}, "iterations"),
        (Arm64Settings, {"frames": 0}, "frames"),
        (Arm64Settings, {"int8_steps": -1}, "int8_steps"),
        (TrainSettings, {"turn_average": 90.0}, "turn_average"),
        (TrainSettings, {"turn_average": 15.0, "mirror_average": False}, "turn_average"),
    ],
)
def test_bad_settings_name_the_setting(cls: type, kwargs: dict, setting: str) -> None:
    with pytest.raises(SettingError) as info:
        cls(**kwargs)
    assert info.value.setting == setting
    assert str(info.value).startswith(f"{setting} ")  # the Python name, not a flag


def test_log_that_is_a_folder_is_rejected_up_front(tmp_path: Path) -> None:
    with pytest.raises(SettingError, match="is a folder"):
        WebcamSettings(log=str(tmp_path))
    proc = run_module("runtime.webcam", "--headless", "--source", "x.avi", "--log", str(tmp_path))
    assert_user_error(proc, f"--log {tmp_path}: is a folder")


@pytest.mark.parametrize(
    "module,argv,needle",
    [
        ("runtime.webcam", ["--max-frames", "-1"], "--max-frames -1: must be 0"),
        ("runtime.webcam", ["--min-confidence", "2"], "--min-confidence 2.0"),
        ("runtime.webcam", ["--palm-threads", "0"], "--palm-threads 0: must be at least 1"),
        ("runtime.evaluate", ["--model", "m.tflite", "--threads", "0"], "--threads 0"),
        ("export", ["--max-drop", "-1"], "--max-drop -1.0"),
        ("benchmarks", ["--threads", "0"], "--threads [0]"),
    ],
)
def test_cli_errors_name_the_flag_without_a_traceback(module, argv, needle) -> None:
    assert_user_error(run_module(module, *argv, timeout=60), needle)


def test_bad_thread_list_is_a_usage_error(tmp_path: Path) -> None:
    proc = run_module("benchmarks", "--threads", "1,zero", "--models", str(tmp_path))
    assert proc.returncode == 2 and "--threads" in proc.stderr and "Traceback" not in proc.stderr
    assert "expected thread counts like 1,4" in proc.stderr


def test_help_matches_the_readme() -> None:
    bench = run_module("benchmarks", "--help").stdout
    assert "about 20 s" in " ".join(bench.split())
    webcam = " ".join(run_module("runtime.webcam", "--help").stdout.split())
    assert "one image" in webcam


def test_readme_usage_blocks_name_real_flags() -> None:
    """The ``python -m X [--flag V] ...`` synopses: every flag they show exists, one spelling."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"^python -m ([\w.]+) (\[.*?)\n```", text, re.M | re.S)
    assert {m for m, _ in blocks} >= {"train", "export", "benchmarks"}, blocks
    for module, synopsis in blocks:
        parser, _ = build_parser(COMMANDS[module], prog=module, description=None)
        known = {o for a in parser._actions for o in a.option_strings}
        shown = set(re.findall(r"--[\w-]+", synopsis))
        assert shown <= known, (module, shown - known)
