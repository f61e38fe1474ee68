"""Fetch the palm detector once: one file out of the ``mediapipe`` wheel on PyPI.

``mediapipe`` cannot be a dependency here (0.10.21, the last release that ships the palm model,
needs numpy<2, protobuf<5, jax and opencv-contrib), but its wheel is a zip on PyPI. ``pip
download`` fetches it (through the user's own pip configuration: index, proxy, certificates),
the one model file is read out of it and checked against :data:`SHA256`, and it is written
atomically to :func:`default_path`. The wheel is deleted again; nothing is installed. The model
is Apache-2.0, like the rest of MediaPipe.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from runtime.errors import SignsError
from runtime.fsutil import cache_dir, file_sha256, write_bytes

REQUIREMENT = "mediapipe==0.10.21"
# Any platform's wheel holds the same model file; this one is asked for everywhere, so an arm64
# Raspberry Pi fetches the same bytes.
PLATFORM = ("manylinux_2_28_x86_64", "3.11")
MEMBER = "mediapipe/modules/palm_detection/palm_detection_full.tflite"
SHA256 = "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54"


def default_path() -> Path:
    """Where ``--find-hand`` looks for the palm detector unless ``--palm-model`` is given."""
    return cache_dir("palm_detection_full.tflite")


def fetch(dest: str | Path | None = None, requirement: str = REQUIREMENT) -> tuple[Path, bool]:
    """Make sure the palm detector is at ``dest`` (default :func:`default_path`).

    Returns:
        The path, and whether it was downloaded now (False: a verified copy was already there).

    Raises:
        SignsError: pip cannot download the wheel, the wheel lacks the model, or the model's
            SHA-256 is not the expected one (nothing is written then).
    """
    dest = Path(dest) if dest is not None else default_path()
    if dest.is_dir():
        raise SignsError(f"{dest}: is a folder; give the path of the .tflite file")
    if dest.is_file() and file_sha256(dest) == SHA256:
        return dest, False
    with tempfile.TemporaryDirectory(prefix="signs-edge-palm-") as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--platform", PLATFORM[0], "--python-version", PLATFORM[1], "--implementation", "cp",
            "--disable-pip-version-check", "--quiet", "--dest", tmp, requirement,
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            lines = [ln for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
            why = lines[-1].strip() if lines else f"exit code {done.returncode}"
            raise SignsError(f"pip download {requirement} failed: {why}")
        try:
            with zipfile.ZipFile(wheels[0]) as whl:
                data = whl.read(MEMBER)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise SignsError(f"{wheels[0].name}: no {MEMBER} in it ({exc})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise SignsError(f"{requirement}: {MEMBER} has SHA-256 {digest}, expected {SHA256}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(dest, data)
    return dest, True
