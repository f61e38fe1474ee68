"""A cached Debian bookworm arm64 userland with the runtime's aarch64 wheels, run under qemu.

Raspberry Pi OS Bookworm 64-bit is Debian bookworm arm64 plus the Pi's kernel and firmware; a
user-mode emulator runs only the userland, so this is the part that matters: Debian's own
``python3.11`` and its libraries, fetched, verified and unpacked by Debian's ``mmdebstrap
--variant=extract --arch=arm64`` (no maintainer scripts run, so building needs no emulation),
and the project's base dependencies as the manylinux aarch64 wheels ``pip`` would install on
the Pi.

Each build goes into a temporary folder that is renamed into place only when it is complete and
has passed an import check, so an interrupted build never looks finished. The folder name is a
hash of everything that decides the contents (Debian packages, pinned wheels, CPU descriptions),
so changing the requirements builds a new one.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.arm64.settings import CPUS, CpuModel
from runtime.errors import SignsError
from runtime.fsutil import ensure_writable_dir

DEBIAN_SUITE = "bookworm"  # the base of Raspberry Pi OS Bookworm 64-bit
# mmdebstrap's default for a stable suite: deb.debian.org plus its -updates and -security.
MIRROR_ENV = "SIGNS_DEBIAN_MIRROR"  # e.g. "http://ftp.de.debian.org/debian" to use another one
# apt resolves the rest (libc6, libssl3, ...); libstdc++6 is for the C++ wheels, which
# Python itself does not need.
DEB_PACKAGES = ("python3.11", "libstdc++6")
PYTHON_VERSION = "3.11"  # bookworm's python3
GLIBC_MINOR = 36  # bookworm has glibc 2.36: every manylinux_2_17 .. 2_36 aarch64 wheel runs
# pip does not expand a manylinux tag to the older ones it implies, so list them all.
WHEEL_PLATFORMS = ("manylinux2014_aarch64",) + tuple(
    f"manylinux_2_{minor}_aarch64" for minor in range(17, GLIBC_MINOR + 1)
)
# Names the Pi installs instead of the host's: the device has no display, and the GUI build of
# OpenCV needs libGL, which a server userland (and many Pi images) lacks.
DEVICE_NAMES = {"opencv-python": "opencv-python-headless"}
HOST_ALIASES = {
    "opencv-python-headless": ("opencv-python", "opencv-python-headless", "opencv-contrib-python")
}
TARGET_MARKERS = {  # PEP 508 environment of Python 3.11 on Linux aarch64
    "platform_system": "Linux",
    "sys_platform": "linux",
    "platform_machine": "aarch64",
    "os_name": "posix",
    "python_version": PYTHON_VERSION,
    "python_full_version": f"{PYTHON_VERSION}.2",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}
BUILD_FORMAT = 2  # bump when the layout below changes, so older cache entries are not reused
STALE_BUILD = 6 * 3600  # seconds after which a leftover temporary build folder is deleted
QEMU_NAMES = ("qemu-aarch64-static", "qemu-aarch64")
INSTALL_QEMU = "sudo apt-get update && sudo apt-get install -y qemu-user-static"
INSTALL_MMDEBSTRAP = "sudo apt-get install -y mmdebstrap"  # Debian or Ubuntu hosts


@dataclass(frozen=True)
class Userland:
    """A finished cache entry: ``rootfs/``, ``site/`` (wheels) and one view per CPU."""

    root: Path  # the cache entry folder
    qemu: str  # path of the qemu-aarch64 binary

    @property
    def site(self) -> Path:
        return self.root / "site"

    def view(self, cpu: CpuModel) -> Path:
        """The rootfs as seen with ``cpu``'s /proc/cpuinfo (symlinks + one real proc/ folder)."""
        return self.root / "cpu" / cpu.qemu

    def manifest(self) -> dict:
        return json.loads((self.root / "manifest.json").read_text())

    def python(self, cpu: CpuModel) -> list[str]:
        """argv prefix that runs the emulated Python 3.11 on ``cpu``.

        ``-L`` makes qemu look every absolute path up in the view first (the dynamic loader,
        libraries, the stdlib, /proc/cpuinfo) and fall back to the host's (project, wheels).
        """
        view = self.view(cpu)
        return [self.qemu, "-cpu", cpu.qemu, "-L", str(view), str(view / "usr/bin/python3.11")]

    def env(self, project_root: Path) -> dict[str, str]:
        """A clean environment: nothing from the host's Python setup leaks in."""
        return {
            "PATH": "/usr/bin:/bin",
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "PYTHONPATH": f"{self.site}{os.pathsep}{project_root}",
            "PYTHONNOUSERSITE": "1",
            # pip compiled the wheels' .pyc files at install; keep the emulated run from writing
            # any (the project tree is shared with native runs).
            "PYTHONDONTWRITEBYTECODE": "1",
        }


def find_qemu() -> str:
    """The qemu-aarch64 user-mode emulator on PATH.

    Raises:
        SignsError: not installed (the message says how to install it).
    """
    for name in QEMU_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise SignsError(f"qemu-aarch64-static not found: install it with `{INSTALL_QEMU}`")


# --- what goes in --------------------------------------------------------------------------


def _project_dependencies(project_root: Path) -> list[str]:
    """The base (runtime) dependencies from pyproject.toml, else from the installed metadata."""
    pyproject = project_root / "pyproject.toml"
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = None
    if tomllib is not None and pyproject.is_file():
        return list(tomllib.loads(pyproject.read_text())["project"]["dependencies"])
    try:
        reqs = importlib.metadata.requires("signs-edge") or []
    except importlib.metadata.PackageNotFoundError:
        raise SignsError(f"{pyproject}: not found, and signs-edge is not installed") from None
    return [r for r in reqs if "extra ==" not in r]


def _requirement_class():
    try:
        from packaging.requirements import Requirement
    except ImportError:  # packaging comes with pytest/setuptools; pip always vendors it
        from pip._vendor.packaging.requirements import Requirement
    return Requirement


def _host_version(name: str) -> str:
    for candidate in HOST_ALIASES.get(name, (name,)):
        try:
            return importlib.metadata.version(candidate)
        except importlib.metadata.PackageNotFoundError:
            continue
    raise SignsError(
        f"{name} is not installed on this machine: install the project (pip install -e .) so "
        "the native side runs the same releases as the emulated one"
    )


def device_requirements(project_root: Path) -> list[str]:
    """The base dependencies that apply on Linux aarch64, pinned to the host's versions.

    Pinning makes the comparison about the CPU architecture alone: both sides run the same
    numpy, OpenCV, LiteRT and onnxruntime releases.
    """
    requirement = _requirement_class()
    pinned = []
    for line in _project_dependencies(project_root):
        req = requirement(line)
        if req.marker is not None and not req.marker.evaluate(TARGET_MARKERS):
            continue
        name = DEVICE_NAMES.get(req.name.lower(), req.name.lower())
        pinned.append(f"{name}=={_host_version(name)}")
    return sorted(pinned)


def cache_key(requirements: list[str]) -> str:
    """Hash of everything that decides a cache entry's contents."""
    spec = {
        "format": BUILD_FORMAT,
        "suite": DEBIAN_SUITE,
        "debs": list(DEB_PACKAGES),
        "python": PYTHON_VERSION,
        "platforms": list(WHEEL_PLATFORMS),
        "wheels": requirements,
        "cpuinfo": {name: cpu.cpuinfo() for name, cpu in CPUS.items()},
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


# --- Debian userland -----------------------------------------------------------------------


def _unpack_debian(rootfs: Path) -> None:
    """Debian's arm64 ``DEB_PACKAGES`` and their dependencies, unpacked into ``rootfs``.

    As root mmdebstrap works directly; otherwise it needs user namespaces (its unshare mode).
    """
    mirror = os.environ.get(MIRROR_ENV)
    _run(
        ["mmdebstrap", "--variant=extract", "--arch=arm64", "--include=" + ",".join(DEB_PACKAGES)]
        + [DEBIAN_SUITE, str(rootfs), *([mirror] if mirror else [])],
        f"cannot build the Debian {DEBIAN_SUITE} arm64 userland with mmdebstrap",
        stdin=subprocess.DEVNULL,  # without a mirror argument it would read sources from stdin
    )
    # mmdebstrap adds device nodes and an empty /tmp for a chroot; under qemu -L they would
    # shadow the host's (e.g. a cache folder in /tmp). Only the packages' files are wanted.
    for setup in ("dev", "tmp"):
        shutil.rmtree(rootfs / setup, ignore_errors=True)


def _run(cmd: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + "\n" + proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith(("E:", "ERROR:", "error:"))]
        # apt's (and mmdebstrap's) first E: line names what failed (the last one is a generic
        # summary); pip's last ERROR: line is the one that matters.
        apt_errors = [ln for ln in errors if ln.startswith("E:")]
        reason = (
            apt_errors[0] if apt_errors else (errors or lines or [f"exit {proc.returncode}"])[-1]
        )
        # pip retries an unreachable index with warnings, then says "no matching distribution".
        broken = re.search(r"connection broken by '(\w+)\('([^']*)'", proc.stderr)
        if broken:
            reason = f"index unreachable ({broken[1]}: {broken[2]}); {reason}"
        raise SignsError(f"{what}: {reason}")
    return proc


def _relativize_symlinks(rootfs: Path) -> None:
    """Point absolute symlinks inside the rootfs at rootfs paths, not the host's.

    qemu's ``-L`` resolves the link's own path in the rootfs, but the kernel then follows an
    absolute target on the host (e.g. sitecustomize.py -> /etc/python3.11/...).
    """
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for name in dirnames + filenames:
            link = Path(dirpath) / name
            if link.is_symlink():
                target = os.readlink(link)
                if target.startswith("/"):
                    link.unlink()
                    link.symlink_to(os.path.relpath(rootfs / target.lstrip("/"), link.parent))


def _make_views(root: Path) -> None:
    rootfs = root / "rootfs"
    for cpu in CPUS.values():
        view = root / "cpu" / cpu.qemu
        (view / "proc").mkdir(parents=True)
        for child in sorted(rootfs.iterdir()):
            (view / child.name).symlink_to(Path("..", "..", "rootfs", child.name))
        (view / "proc" / "cpuinfo").write_text(cpu.cpuinfo())


# --- wheels ---------------------------------------------------------------------------------


def _install_wheels(site: Path, requirements: list[str]) -> None:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "-q",
        "--target",
        str(site),
        *(arg for tag in WHEEL_PLATFORMS for arg in ("--platform", tag)),
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_VERSION,
        "--only-binary=:all:",
        *requirements,
    ]
    _run(cmd, f"cannot install the aarch64 wheels {' '.join(requirements)} from the package index")


SMOKE = """
import json, platform, sys
from importlib.metadata import version
import cv2, h5py, numpy, onnxruntime
from runtime.backends import tflite_interpreter_class
_, litert = tflite_interpreter_class()
print(json.dumps({"machine": platform.machine(), "python": platform.python_version(),
    "numpy": numpy.__version__, "opencv": cv2.__version__, "onnxruntime": onnxruntime.__version__,
    "h5py": h5py.__version__, "tflite": litert}))
"""


def smoke_test(userland: Userland, cpu: CpuModel, project_root: Path) -> dict:
    """Import the runtime's dependencies in the emulated Python; return their versions."""
    proc = _run(
        [*userland.python(cpu), "-c", SMOKE],
        f"the emulated Python cannot import the runtime's dependencies ({userland.root})",
        env=userland.env(project_root),
        cwd=project_root,
        timeout=600,
    )
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    if info["machine"] != "aarch64":
        raise SignsError(f"the emulated Python reports machine {info['machine']!r}, not aarch64")
    return info


# --- build ----------------------------------------------------------------------------------


def dir_size(path: Path) -> int:
    """Bytes used by regular files under ``path`` (symlinks not followed)."""
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            p = Path(dirpath) / name
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def _build(tmp: Path, requirements: list[str], qemu: str, project_root: Path, log) -> dict:
    t0 = time.perf_counter()
    rootfs = tmp / "rootfs"
    _unpack_debian(rootfs)
    _relativize_symlinks(rootfs)
    # Empty site-packages in the rootfs, so the emulated Python never falls back to the host's.
    for sub in ("usr/local/lib/python3.11/dist-packages", "usr/lib/python3/dist-packages"):
        (rootfs / sub).mkdir(parents=True, exist_ok=True)
    t_debs = time.perf_counter() - t0
    log(f"  Debian {DEBIAN_SUITE} arm64 userland unpacked by mmdebstrap in {t_debs:.1f} s")
    _make_views(tmp)
    t1 = time.perf_counter()
    _install_wheels(tmp / "site", requirements)
    t_wheels = time.perf_counter() - t1
    log(f"  aarch64 wheels {' '.join(requirements)} installed in {t_wheels:.1f} s")
    t2 = time.perf_counter()
    versions = smoke_test(Userland(tmp, qemu), CPUS["cortex-a72"], project_root)
    t_smoke = time.perf_counter() - t2
    log(f"  import check under emulation passed in {t_smoke:.1f} s")
    return {
        "suite": DEBIAN_SUITE,
        "debs": list(DEB_PACKAGES),  # with their dependencies, resolved by apt
        "wheels": requirements,
        "glibc": f"2.{GLIBC_MINOR}",
        "versions": versions,
        "seconds": {"debs": t_debs, "wheels": t_wheels, "import_check": t_smoke},
        "megabytes": round(dir_size(tmp) / 1e6, 1),
    }


def _remove_stale_builds(cache: Path) -> None:
    """Delete temporary build folders left by killed runs (a live build is minutes old)."""
    for stale in cache.glob(".build-*"):
        try:
            if time.time() - stale.stat().st_mtime > STALE_BUILD:
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            continue


def ensure_userland(
    cache: Path, project_root: Path, log: Callable[[str], None] = print
) -> Userland:
    """The cached userland for the current requirements, built first if needed.

    Raises:
        SignsError: qemu or mmdebstrap missing, the package registries unreachable, or the build's
            import check failed.
    """
    qemu = find_qemu()
    requirements = device_requirements(project_root)
    key = cache_key(requirements)
    entry = cache / key
    if (entry / "manifest.json").is_file():
        return Userland(entry, qemu)
    if shutil.which("mmdebstrap") is None:
        raise SignsError(f"mmdebstrap not found: install it with `{INSTALL_MMDEBSTRAP}`")
    _remove_stale_builds(ensure_writable_dir(cache, "cache folder"))
    tmp = Path(tempfile.mkdtemp(prefix=f".build-{key}-", dir=cache))
    log(f"arm64: building the Debian {DEBIAN_SUITE} arm64 userland in {entry}")
    try:
        manifest = _build(tmp, requirements, qemu, project_root, log)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        try:
            os.rename(tmp, entry)
        except OSError:
            if not (entry / "manifest.json").is_file():
                raise
            shutil.rmtree(tmp)  # a concurrent run finished the same build first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Userland(entry, qemu)
