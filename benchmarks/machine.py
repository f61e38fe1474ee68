"""What machine the numbers come from: CPU model and SIMD features, cores, OS, library versions."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

from runtime.backends import installed_versions

# Features that decide int8 vs float speed: x86 VNNI / AVX-512, Arm dot product (asimddp).
SIMD_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "amx_int8",
    "neon",
    "asimd",
    "asimddp",
    "i8mm",
    "sve",
)
LIBRARIES = (
    "numpy",
    "opencv-python",
    "ai-edge-litert",
    "tflite-runtime",
    "onnxruntime",
    "tensorflow",
    "keras",
    "matplotlib",
)


def cpu_info(cpuinfo: str | None = None) -> tuple[str, list[str]]:
    """(CPU model name, SIMD features of interest) from /proc/cpuinfo, else platform."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    # x86: "model name"; Raspberry Pi (aarch64): "Model" names the board, "CPU part" the core.
    name = fields.get("model name") or fields.get("model") or platform.processor()
    part = fields.get("cpu part")
    if part and "model name" not in fields:
        name = f"{name} (CPU part {part})"
    flags = set((fields.get("flags") or fields.get("features") or "").split())
    return name or platform.machine(), [f for f in SIMD_FLAGS if f in flags]


def library_versions() -> dict[str, str]:
    """Installed versions of :data:`LIBRARIES`, read from package metadata."""
    return installed_versions(LIBRARIES)


def machine_info() -> dict:
    cpu, simd = cpu_info()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        usable = os.cpu_count() or 1
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "host": socket.gethostname(),
        "cpu": cpu,
        "simd": simd,
        "arch": platform.machine(),
        "cores": usable,
        "os": platform.platform(),
        "python": platform.python_version(),
        "libraries": library_versions(),
        "load_avg_start": [round(v, 2) for v in load] if load else None,
    }
