"""Settings for ``python -m benchmarks.arm64``: one dataclass, plus the emulated CPUs as data."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from runtime.cli import opt
from runtime.errors import SettingError
from runtime.fsutil import cache_dir
from runtime.manifest import DEFAULT_EXPORT_DIR

CACHE_ENV = "SIGNS_ARM64_CACHE"  # overrides the default cache folder, like --cache


def default_cache() -> str:
    """$SIGNS_ARM64_CACHE, else $XDG_CACHE_HOME/signs-edge/arm64, else ~/.cache/signs-edge/arm64."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return env
    return str(cache_dir("arm64"))


@dataclass(frozen=True)
class CpuModel:
    """One Raspberry Pi CPU: the qemu ``-cpu`` model and the ``/proc/cpuinfo`` the board shows.

    LiteRT's XNNPACK picks its kernels from ``/proc/cpuinfo`` (the MIDR fields) and the ELF
    hardware capabilities (which qemu derives from ``-cpu``); the two must describe the same core.
    """

    qemu: str  # qemu-aarch64 -cpu name
    board: str  # the Model: line of the board's /proc/cpuinfo
    part: int  # MIDR part number (ARM: 0xd08 Cortex-A72, 0xd0b Cortex-A76)
    variant: int  # MIDR variant (rNpM: N)
    revision: int  # MIDR revision (rNpM: M)
    features: str  # the Features: line a real board prints
    board_revision: str  # Raspberry Pi board revision code
    cores: int = 4  # both boards have four cores

    def cpuinfo(self) -> str:
        """A ``/proc/cpuinfo`` in the format the Raspberry Pi OS kernel prints."""
        blocks = [
            f"processor\t: {i}\n"
            "BogoMIPS\t: 108.00\n"
            f"Features\t: {self.features}\n"
            "CPU implementer\t: 0x41\n"
            "CPU architecture: 8\n"
            f"CPU variant\t: {self.variant:#x}\n"
            f"CPU part\t: {self.part:#05x}\n"
            f"CPU revision\t: {self.revision}\n"
            for i in range(self.cores)
        ]
        tail = f"Revision\t: {self.board_revision}\nModel\t\t: {self.board}\n"
        return "\n".join(blocks) + "\n" + tail


CPUS: dict[str, CpuModel] = {
    "cortex-a72": CpuModel(
        qemu="cortex-a72",
        board="Raspberry Pi 4 Model B Rev 1.4",
        part=0xD08,
        variant=0x0,
        revision=3,
        features="fp asimd evtstrm crc32 cpuid",
        board_revision="d03114",
    ),
    "cortex-a76": CpuModel(
        qemu="cortex-a76",
        board="Raspberry Pi 5 Model B Rev 1.0",
        part=0xD0B,
        variant=0x4,
        revision=1,
        features=(
            "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm "
            "lrcpc dcpop asimddp"
        ),
        board_revision="d04170",
    ),
}
CPU_CHOICES = [*CPUS, "both"]


@dataclass
class Arm64Settings:
    models: str = opt(
        str(DEFAULT_EXPORT_DIR), help="folder of exported .tflite/.onnx files (python -m export)"
    )
    data: str | None = opt(
        None, help="dataset folder or .h5 file; when omitted, $SIGNS_DATA, else ./data"
    )
    cpu: str = opt(
        "cortex-a72",
        choices=CPU_CHOICES,
        help="emulated CPU: cortex-a72 (Raspberry Pi 4), cortex-a76 (Pi 5) or both",
    )
    cache: str | None = opt(
        None,
        help=f"folder for the arm64 userland; when omitted, ${CACHE_ENV}, else "
        "~/.cache/signs-edge/arm64",
    )
    frames: int = opt(300, help="frames in the generated 640x480 video")
    float_atol: float = opt(
        1e-5, help="largest |native - emulated| difference of a float model's probabilities"
    )
    int8_steps: int = opt(
        1,
        help="8-bit quantization steps the output of a model with int8 compute (tflite-int8, "
        "tflite-dynamic, onnx-int8) may move (x86 vs Arm rounding); labels must match regardless",
    )
    palm_model: str | None = opt(
        None,
        help="palm detector for a second runtime.webcam run with --find-hand; when omitted, the "
        "one python -m runtime.palm fetched, else that run is skipped",
    )
    keep: bool = opt(False, help="keep both runs' outputs (kept anyway on a mismatch)")

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise SettingError("frames", self.frames, "must be at least 1")
        if self.float_atol < 0:
            raise SettingError("float_atol", self.float_atol, "must be >= 0")
        if self.int8_steps < 0:
            raise SettingError("int8_steps", self.int8_steps, "must be >= 0")
        if self.palm_model is not None and not Path(self.palm_model).expanduser().is_file():
            raise SettingError("palm_model", self.palm_model, "no such file")

    def palm_path(self) -> Path | None:
        """The palm detector for the ``--find-hand`` run, or None to skip it."""
        from runtime.palm.fetch import default_path

        if self.palm_model is not None:
            return Path(self.palm_model).expanduser()
        path = default_path()
        return path if path.is_file() else None

    def cpus(self) -> list[str]:
        return list(CPUS) if self.cpu == "both" else [self.cpu]

    def cache_dir(self) -> Path:
        return Path(self.cache or default_cache()).expanduser()
