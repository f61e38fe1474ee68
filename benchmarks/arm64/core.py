"""Run the runtime natively and in the emulated Raspberry Pi userland; compare every output.

On each side (native, then each emulated CPU) these run, several at a time:

1. ``probe.py`` (this package): the evaluation images and the video's frames as that side
   decodes them, and every model's raw probabilities on the *native* inputs, per image and per
   frame through :class:`runtime.pipeline.FramePipeline`;
2. ``python -m runtime.evaluate --model M --data D --json`` for every model;
3. ``python -m runtime.webcam --model M --source VIDEO --headless --log CSV`` for one model, and
   the same with ``--find-hand`` (the palm detector, then the SIGNS network on the hand put on
   the wall) when the palm detector has been fetched.

Both sides run one snapshot of the project's ``runtime`` package, copied at the start, so an
edit to the working tree during the run cannot make the two sides run different code.

The video is lossless (FFV1): lossy codecs (MJPG, MPEG-4) decode to slightly different pixels
with the x86 and aarch64 builds of OpenCV's FFmpeg (measured: every frame, up to 2 grey levels),
which would test the codec, not the runtime.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.arm64 import compare
from benchmarks.arm64.compare import Check
from benchmarks.arm64.rootfs import dir_size, ensure_userland
from benchmarks.arm64.settings import CPUS, Arm64Settings
from benchmarks.video import write_test_video
from runtime.errors import SignsError, ValidationError
from runtime.manifest import Manifest, find_manifest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).resolve().with_name("probe.py")
VIDEO_CODEC = "FFV1"  # lossless, so both sides decode identical pixels
LOG_ROUNDING = 1e-4  # runtime.webcam --log prints confidences with 4 decimals
# The --find-hand run's confidences: the palm detector is a float model whose Arm kernels move
# its palm by hundredths of a pixel (measured: up to 0.07 px in the centre, 0.1 px in the side
# on 640x480 frames), which moves a square or the wall mask by a pixel now and then, and with
# them the reading by a few int8 steps (seen: up to 7). The label per frame must still match.
PALM_CONFIDENCE_ATOL = 0.05
TIMEOUT = 3600  # seconds for one emulated command; a hung emulator must not hang CI


@dataclass
class Job:
    """One command of one side."""

    key: str  # "probe tflite-int8.tflite", "evaluate onnx-fp32.onnx", "webcam", ...
    argv: list[str]  # arguments after the Python interpreter


@dataclass
class Side:
    """One side's outputs: native, or one emulated CPU."""

    name: str  # "native" or the CPU name
    out: Path
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per job, and "total"
    stdout: dict[str, str] = field(default_factory=dict)  # per job

    @property
    def probe(self) -> Path:
        return self.out / "probe"

    @property
    def log(self) -> Path:
        return self.out / "webcam.csv"

    @property
    def palm_log(self) -> Path:
        return self.out / "webcam-find-hand.csv"

    def evaluate(self, model: str) -> dict:
        try:
            return compare.read_evaluate_json(self.stdout[f"evaluate {model}"])
        except ValueError as exc:
            raise ValidationError(
                f"runtime.evaluate --model {model} ({self.name}): unreadable --json output ({exc})"
            ) from None


def find_models(models: Path, log: Callable[[str], None] = print) -> tuple[Manifest, list[Path]]:
    """The export manifest in ``models`` and its files that exist (export-failed ones have none)."""
    manifest = find_manifest(models, "run `python -m export --int8` first")
    files = []
    for entry in manifest.models:
        if entry.path.is_file():
            files.append(entry.path.resolve())
        else:
            log(f"arm64: {entry.format}: no file ({entry.status.value}), not compared")
    if not files:
        raise SignsError(f"{manifest.path}: none of its model files exist; run `python -m export`")
    return manifest, files


def snapshot_runtime(dest: Path) -> Path:
    """Copy the ``runtime`` package and the probe into ``dest``; both sides import from it."""
    shutil.copytree(
        PROJECT_ROOT / "runtime", dest / "runtime", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy2(PROBE, dest / "probe.py")
    return dest


def _jobs(
    side: Side,
    models: list[Path],
    webcam_model: Path,
    data: Path,
    video: Path,
    src: Path,
    reference: Path | None,
    palm: Path | None,
) -> list[Job]:
    """The commands of one side, longest first. ``reference`` None: this is the native side;
    ``palm`` None: no ``--find-hand`` run."""
    probe = [str(src / "probe.py"), "--out", str(side.probe)]
    decode = ["--decode", "--data", str(data), "--video", str(video)]
    jobs = []
    if reference is None:
        # Natively everything is fast: one process decodes, then runs every model on that.
        jobs.append(Job("probe", [*probe, *decode, "--models", *map(str, models)]))
    else:
        # Emulated, inference dominates: one process per model spreads it over the cores.
        for m in models:
            jobs.append(
                Job(f"probe {m.name}", [*probe, "--models", str(m), "--reference", str(reference)])
            )
    webcam = ["-m", "runtime.webcam", "--model", str(webcam_model), "--source", str(video)]
    if palm is not None:
        find_hand = ["--find-hand", "--palm-model", str(palm)]
        jobs.append(
            Job(
                "webcam --find-hand",
                [*webcam, "--headless", "--log", str(side.palm_log), *find_hand],
            )
        )
    jobs.append(Job("webcam", [*webcam, "--headless", "--log", str(side.log)]))
    for m in models:
        jobs.append(
            Job(
                f"evaluate {m.name}",
                ["-m", "runtime.evaluate", "--model", str(m), "--data", str(data), "--json"],
            )
        )
    if reference is not None:
        jobs.append(Job("decode", [*probe, *decode]))
    return jobs


def _call(argv: list[str], what: str, env: dict, cwd: Path, emulated: bool) -> str:
    """Run one command; a failure is a user error natively, a device difference emulated."""
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired:
        raise ValidationError(f"{what} did not finish within {TIMEOUT} s") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()] or ["no output"]
        errors = [ln for ln in lines if ln.startswith("error:")]
        reason = (errors or lines)[-1].removeprefix("error: ")
        where = "under emulation" if emulated else "natively"
        cls = ValidationError if emulated else SignsError
        raise cls(f"{what} failed {where} (exit {proc.returncode}): {reason}")
    return proc.stdout


def _run_side(
    side: Side, python: list[str], env: dict, jobs: list[Job], workers: int, emulated: bool
) -> None:
    """Run ``jobs`` with ``python``, ``workers`` at a time; stdout and timings go to ``side``."""
    side.out.mkdir(parents=True)

    def one(job: Job) -> None:
        t0 = time.perf_counter()
        what = f"{job.key} ({side.name})"
        # cwd: whatever a command writes by default lands in the work folder, not the project.
        side.stdout[job.key] = _call([*python, *job.argv], what, env, side.out, emulated)
        side.seconds[job.key] = time.perf_counter() - t0

    t0 = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        for future in [pool.submit(one, job) for job in jobs]:
            future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    side.seconds["total"] = time.perf_counter() - t0


def _load_json(path: Path) -> dict:
    return json.loads(path.read_text())


def _compare(
    native: Side,
    emulated: Side,
    manifest: Manifest,
    models: list[Path],
    webcam_model: Path,
    src: Path,
    settings: Arm64Settings,
    palm: Path | None,
) -> tuple[list[str], list[Check]]:
    """Lines describing every comparison, and every check made."""
    n_dir, e_dir = native.probe, emulated.probe
    n_inputs, e_inputs = _load_json(n_dir / "inputs.json"), _load_json(e_dir / "inputs.json")
    for info in (n_inputs, e_inputs):
        # The editable install must not shadow the snapshot (see snapshot_runtime).
        if Path(info["runtime_package"]) != src / "runtime":
            raise SignsError(f"the probe imported runtime from {info['runtime_package']}")
    if e_inputs["machine"] != "aarch64":
        raise ValidationError(f"the emulated run reports machine {e_inputs['machine']!r}")
    names = n_inputs["names"]
    frame_names = [f"frame {i}" for i in range(len(n_inputs["frame_sha256"]))]

    images = compare.compare_inputs(
        "images", np.load(n_dir / "images.npy"), np.load(e_dir / "images.npy"), names
    )
    digests = compare.compare_digests("frames", n_inputs["frame_sha256"], e_inputs["frame_sha256"])
    crops = compare.compare_inputs(
        "frame crops", np.load(n_dir / "frames.npy"), np.load(e_dir / "frames.npy"), frame_names
    )
    checks = [images, digests, crops]
    lines = [
        f"  inputs: {images.describe()} (JPEG decode + preprocess), {digests.describe()} "
        f"({VIDEO_CODEC} decode), {crops.describe()} (camera ROI + preprocess)"
    ]
    for model in models:
        name = model.name
        n_info, e_info = _load_json(n_dir / f"{name}.json"), _load_json(e_dir / f"{name}.json")
        kind, tol, step = compare.tolerance(manifest.entry_for(model), n_info, settings)

        def probs(suffix: str, name: str = name) -> tuple[np.ndarray, np.ndarray]:
            return np.load(n_dir / f"{name}.{suffix}.npy"), np.load(e_dir / f"{name}.{suffix}.npy")

        model_checks = [
            compare.compare_probs("images", *probs("images"), names, tol),
            compare.compare_probs("frames", *probs("raw"), frame_names, tol),
            compare.compare_probs(
                "smoothed frames",
                *probs("smoothed"),
                frame_names,
                tol,
                n_info["frame_labels"],
                e_info["frame_labels"],
            ),
            compare.compare_evaluate(
                "runtime.evaluate", native.evaluate(name), emulated.evaluate(name)
            ),
        ]
        for c in model_checks[:3]:
            c.kind, c.step = kind, step
        model_checks[2].kind = f"{kind} smoothed"  # follows the raw frames; not counted twice
        lines.append(
            f"  {name} ({kind}, {e_info['runtime']}): "
            + ", ".join(c.describe() for c in model_checks)
        )
        for c in model_checks:
            c.what = f"{name} {c.what}"
        checks += model_checks

    webcam_info = _load_json(n_dir / f"{webcam_model.name}.json")
    _, tol, step = compare.tolerance(manifest.entry_for(webcam_model), webcam_info, settings)
    runs = [("runtime.webcam --log", native.log, emulated.log, tol + LOG_ROUNDING, "exact")]
    if palm is not None:
        what = "runtime.webcam --find-hand --log"
        runs.append(
            (what, native.palm_log, emulated.palm_log, PALM_CONFIDENCE_ATOL, compare.FIND_HAND)
        )
    for what, n_log, e_log, atol, kind in runs:
        webcam = compare.compare_logs(
            f"{what} ({webcam_model.name}, {len(frame_names)} frames)", n_log, e_log, atol
        )
        webcam.same_word = "labels and confidences identical"
        webcam.step, webcam.kind = step, kind
        checks.append(webcam)
        lines.append(f"  {webcam.describe()}")
    return lines, checks


def _webcam_model(manifest: Manifest, models: list[Path]) -> Path:
    """The model the camera uses by default (the manifest's choice), else the first file."""
    entry = manifest.choose_default()
    return entry.path.resolve() if entry is not None else models[0]


def run(settings: Arm64Settings, log: Callable[[str], None] = print) -> dict:
    """Build or reuse the arm64 userland, run both sides, compare, print one summary per CPU.

    Returns:
        {cpu: {"ok": True, "lines": [...], "seconds": {...}}} when every CPU matched.

    Raises:
        ValidationError: a label differs, or an output differs beyond its tolerance, or a
            command fails under emulation.
        SignsError: qemu or mmdebstrap missing, registries unreachable, no models, no data.
    """
    from runtime.dataset import load_dataset, resolve_data_path

    manifest, models = find_models(Path(settings.models), log)
    data = resolve_data_path(settings.data).resolve()
    split = load_dataset(data).evaluation_split()  # fails fast, with the dataset's own message
    cpus = settings.cpus()
    palm = settings.palm_path()
    if palm is None:
        log("arm64: no palm detector (python -m runtime.palm fetches it): no --find-hand run")

    t0 = time.perf_counter()
    userland = ensure_userland(settings.cache_dir(), PROJECT_ROOT, log)
    built = userland.manifest()
    log(
        f"arm64: userland ready in {time.perf_counter() - t0:.1f} s: Debian "
        f"{built['suite']} arm64, Python {built['versions']['python']}, "
        f"{' '.join(built['wheels'])} ({dir_size(userland.root) / 1e6:.0f} MB in "
        f"{userland.root})"
    )

    work = Path(tempfile.mkdtemp(prefix="signs-arm64-"))
    keep = settings.keep
    try:
        src = snapshot_runtime(work / "src")
        video = work / "signs.avi"
        write_test_video(split.x, video, settings.frames, codec=VIDEO_CODEC, mirror_alternate=True)
        webcam_model = _webcam_model(manifest, models)
        workers = max(1, os.cpu_count() or 1)
        head = f"{len(models)} models, {len(split)} images, {settings.frames} frames"

        native = Side("native", work / "native")
        native_env = {**os.environ, "PYTHONPATH": str(src), "PYTHONDONTWRITEBYTECODE": "1"}
        jobs = _jobs(native, models, webcam_model, data, video, src, None, palm)
        _run_side(native, [sys.executable], native_env, jobs, workers, emulated=False)
        log(f"native: {head} in {native.seconds['total']:.1f} s")

        results, failures = {}, []
        for cpu_name in cpus:
            cpu = CPUS[cpu_name]
            side = Side(cpu_name, work / cpu_name)
            jobs = _jobs(side, models, webcam_model, data, video, src, native.probe, palm)
            _run_side(side, userland.python(cpu), userland.env(src), jobs, workers, emulated=True)
            lines, checks = _compare(
                native, side, manifest, models, webcam_model, src, settings, palm
            )
            lines.append(
                f"  emulated: {len(jobs)} commands in {side.seconds['total']:.0f} s on "
                f"{workers} cores (qemu timing, says nothing about a Raspberry Pi's speed)"
            )
            for line in lines:
                log(line)
            failed = [c for c in checks if not c.ok]
            if failed:
                log(f"arm64 {cpu_name}: {head}: DIFFERENT ({failed[0].describe()})")
                failures.append((cpu_name, failed))
            else:
                tolerances = {
                    "quantized": settings.int8_steps * compare.PROBABILITY_STEP,
                    "float": settings.float_atol,
                    compare.FIND_HAND: PALM_CONFIDENCE_ATOL,
                }
                log(f"arm64 {cpu_name}: {head}: {compare.verdict(checks, tolerances)}")
            results[cpu_name] = {"ok": not failed, "lines": lines, "seconds": side.seconds}
        if failures:
            cpu_name, failed = failures[0]
            raise ValidationError(
                f"arm64 {cpu_name}: {len(failed)} comparison(s) differ from native, first: "
                f"{failed[0].describe()} (both runs kept in {work})"
            )
        return results
    except ValidationError:
        keep = True  # a difference or an emulated crash: the evidence stays for inspection
        raise
    finally:
        if keep:
            log(f"arm64: outputs of both runs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
