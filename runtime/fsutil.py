"""Atomic file writes: a reader never sees a half-written artifact."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The temporary name keeps the suffix, so writers that infer a format from it (Keras,
    matplotlib) still work. On any exception, including KeyboardInterrupt, it is removed.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp makes the file 0600; give it the permissions a plain open() would (umask applied),
    # so artifacts copied to a device or shared with another user stay readable.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def cache_dir(*parts: str) -> Path:
    """``$XDG_CACHE_HOME/signs-edge/...`` (default ``~/.cache/signs-edge/...``): the one cache
    root for hand masks, the arm64 userland and the palm detector. Not created here."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base, "signs-edge", *parts)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes (model files are a few hundred KB: read at once)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def output_error(path: str | os.PathLike[str], problem: str, what: str = "output folder"):
    """The one wording, for every command, of "this output path cannot be written"."""
    from runtime.errors import SignsError

    return SignsError(f"cannot write the {what} {path}: {problem}")


def check_output_dir(path: str | os.PathLike[str], what: str = "output folder") -> Path:
    """Fail before any work, creating nothing, if ``path`` cannot become a writable folder.

    Raises:
        SignsError: ``path`` or the nearest existing folder above it is a file, or not writable.
    """
    path = Path(path)
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        where = "it" if probe == path else probe
        raise output_error(path, f"{where} is a file, not a folder", what)
    if not os.access(probe, os.W_OK | os.X_OK):
        where = "it" if probe == path else probe
        raise output_error(path, f"{where} is not writable", what)
    return path


def check_output_file(path: str | os.PathLike[str], what: str = "output file") -> Path:
    """Fail before any work if a file cannot be written at ``path`` (e.g. it is a folder)."""
    path = Path(path)
    if path.is_dir():
        raise output_error(path, "it is a folder, not a file", what)
    check_output_dir(path.parent, what=f"folder of the {what}")
    return path


def ensure_writable_dir(path: str | os.PathLike[str], what: str = "output folder") -> Path:
    """Create ``path`` if needed and check that files can be written in it."""
    path = check_output_dir(path, what)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test."):
            pass
    except OSError as exc:
        raise output_error(path, str(exc.strerror or exc), what) from None
    return path


@contextlib.contextmanager
def removed_if_interrupted(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield ``path``; if the block fails and the folder did not exist before, remove it again.

    Only an empty folder is removed (``rmdir``): whatever was written there stays for the user
    to see. So Ctrl-C before the first artifact leaves nothing behind.
    """
    path = Path(path)
    existed = path.exists()
    created = [p for p in (path, *path.parents) if not p.exists()]
    try:
        yield path
    except BaseException:
        if not existed:
            for p in created:  # deepest first; stops at the first folder that is not empty
                try:
                    p.rmdir()
                except OSError:
                    break
        raise
