"""Crash-safe file primitives: atomic writes, staged directories, safe relative paths."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from toolkit.errors import InputError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The bytes go to a temporary file in the same directory, are fsynced, then renamed over
    ``path`` (``os.replace`` is atomic on POSIX).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Text variant of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def staged_dir(target: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Build a directory beside ``target`` and move it into place only when the block succeeds.

    On any exception the staging directory is removed, so a failed command leaves nothing
    half-written. An existing ``target`` is refused unless ``overwrite`` is true, in which case it
    is replaced only after the new one is complete.

    Yields:
        The staging directory to write into.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"{target} already exists; choose another --out or pass --overwrite to replace it."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if target.exists():
        trash = target.with_name(f".{target.name}.old")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(target, trash)
        os.replace(stage, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(stage, target)
    _fsync_dir(target.parent)


def safe_relpath(
    name: str, what: str = "file_name", path: str | Path | None = None, line: int | None = None
) -> str:
    """Check that ``name`` is a relative POSIX path that stays inside its root.

    Returns:
        The normalised path (``a/./b`` becomes ``a/b``).

    Raises:
        InputError: For absolute paths, ``..`` components, backslashes or empty names.
    """
    if not isinstance(name, str) or not name.strip():
        raise InputError(
            f"Expected '{what}' to be a non-empty relative path, but got {name!r}.", path, line
        )
    if "\\" in name or "\x00" in name:
        raise InputError(f"Expected '{what}' to use '/' separators, but got {name!r}.", path, line)
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts:
        raise InputError(
            f"Expected '{what}' to be a path inside the dataset, but got {name!r} "
            "(absolute paths and '..' may not escape it).",
            path,
            line,
        )
    return str(PurePosixPath(*[part for part in p.parts if part != "."]))
