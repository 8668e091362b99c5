"""Crash-safe file primitives: atomic writes, staged directories, safe relative paths.

Temporary files and staging folders carry the writing process's id in their name
(``.dataset.json.<pid>.<random>.tmp``, ``.DATASET.<pid>.<random>.partial``). A write that was
killed leaves one behind; the next write of the same target removes those whose process is gone
(:func:`remove_stale`), so interrupted saves do not pile up. Files and folders get the
permissions the umask allows (``0666 & ~umask``, ``0777 & ~umask``), like any other program's
output; a file that is replaced keeps its own mode.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from toolkit.errors import InputError

#: Longest path component and whole path (bytes) accepted in a media ``file_name`` (Linux limits).
NAME_MAX = 255
PATH_MAX = 4096
_STALE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.(?:tmp|partial)$")


def current_umask() -> int:
    """The process umask, read without changing it where ``/proc`` allows (thread-safe)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # no /proc: the classic swap (not thread-safe, but rare)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # ours: maybe another thread's write in progress
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def remove_stale(directory: str | Path, name: str | None = None) -> list[Path]:
    """Remove temporary files and staging folders left by killed writers.

    Args:
        directory: Where to look.
        name: Only leftovers of this target name (e.g. ``dataset.json``); None for all.

    Returns:
        The paths removed. Leftovers of a process that is still running are kept.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        m = _STALE.match(entry.name)
        if not m or (name is not None and m["name"] != name) or _pid_alive(int(m["pid"])):
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def read_json(path: str | Path) -> Any:
    """Parse a JSON file that the suite wrote (findings, queue, run metrics).

    Args:
        path: The file.

    Returns:
        The parsed document, or None (with a warning naming the file) when it is absent or
        not readable JSON: these files are optional companions of a dataset.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        warnings.warn(f"{path}: ignored, not readable JSON ({exc}).", stacklevel=2)
        return None


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The bytes go to a temporary file in the same directory, are fsynced, then renamed over
    ``path`` (``os.replace`` is atomic on POSIX). The new file keeps the mode of the one it
    replaces, else gets ``0666 & ~umask``. Leftover temporary files of killed writers of the same
    target are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent, path.name)
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~current_umask()
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
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
    half-written (a killed one leaves a ``.partial`` folder that the next staging of the same
    target removes). An existing ``target`` is refused unless ``overwrite`` is true, in which case
    it is replaced only after the new one is complete. The folder gets ``0777 & ~umask``.

    Yields:
        The staging directory to write into.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"{target} already exists; choose another --out or pass --overwrite to replace it."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target.parent, target.name)
    stage = Path(
        tempfile.mkdtemp(
            prefix=f".{target.name}.{os.getpid()}.", suffix=".partial", dir=target.parent
        )
    )
    try:
        os.chmod(stage, 0o777 & ~current_umask())
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    replace_dir(stage, target)


def replace_dir(source: str | Path, target: str | Path) -> None:
    """Put the finished folder ``source`` in place of ``target`` (renames, then an fsync).

    An existing ``target`` is moved aside first and removed after the swap, so a reader sees the
    old folder or the new one, never a mix.

    Args:
        source: The finished folder (on the same file system as ``target``).
        target: Where it belongs.
    """
    source, target = Path(source), Path(target)
    if target.exists():
        trash = target.with_name(f".{target.name}.old")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(target, trash)
        os.replace(source, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(source, target)
    _fsync_dir(target.parent)


def staged_name(path: str | Path) -> Path:
    """The final path of a file inside a :func:`staged_dir` folder (itself otherwise)."""
    path = Path(path)
    for i, part in enumerate(path.parts):
        m = _STALE.match(part)
        if m and part.endswith(".partial"):
            return Path(*path.parts[:i], m["name"], *path.parts[i + 1 :])
    return path


def safe_relpath(
    name: str, what: str = "file_name", path: str | Path | None = None, line: int | None = None
) -> str:
    """Check that ``name`` is a relative POSIX path that stays inside its root.

    Returns:
        The normalised path (``a/./b`` becomes ``a/b``).

    Raises:
        InputError: For absolute paths, ``..`` components, backslashes, empty names, and names
            the file system cannot hold (a component over 255 bytes, the whole over 4096).
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
    check_name_length(name, what, path, line)
    return str(PurePosixPath(*[part for part in p.parts if part != "."]))


def name_length_problem(name: str) -> str | None:
    """Why the file system cannot hold ``name`` (too long), or None when it can."""
    if len(name) <= NAME_MAX and name.isascii():
        return None
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        return "text that is not valid UTF-8 (a lone surrogate)"
    if len(raw) > PATH_MAX:
        return f"at most {PATH_MAX} bytes long, but it has {len(raw)}"
    longest = max(len(part) for part in raw.split(b"/"))
    if longest > NAME_MAX:
        return f"made of parts of at most {NAME_MAX} bytes, but one has {longest}"
    return None


def check_name_length(
    name: str, what: str = "file_name", path: str | Path | None = None, line: int | None = None
) -> None:
    """Raise :class:`InputError` when ``name`` is longer than the file system allows."""
    problem = name_length_problem(name)
    if problem is not None:
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise InputError(f"Expected '{what}' to be {problem} ({shown!r}).", path, line)
