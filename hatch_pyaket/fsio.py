"""Files that other builds may read or write at the same time: atomic writes and inter-process locks.

Every file the package publishes (the output folder) or shares (the cache, the cargo target dir)
is written under a unique temporary name in its own folder, flushed to disk, then renamed over the
old one: a reader sees the old content or the new, never a mix, and two writers never share a
temporary name. Steps that must not interleave with another build's (stage a payload, run cargo,
copy the executable out; merge an index file) hold a lock file with `locked`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from hatch_pyaket.errors import BuildError

Report = Callable[[str], None]

# How often a waiting build says it is still waiting, and how often it tries the lock again.
PROGRESS_EVERY = 15.0
_POLL = 0.1
# Windows locks byte ranges, which others then cannot read: lock one byte far past the holder's line.
_WINDOWS_LOCK_OFFSET = 1 << 20


@dataclass(frozen=True)
class Pending:
    """A temporary file being written; it replaces its destination when the `replacing` block ends."""

    path: Path
    file: BinaryIO


@contextlib.contextmanager
def replacing(destination: Path, *, mode: int = 0o644) -> Iterator[Pending]:
    """Write `destination` through a unique temporary file beside it: flushed, fsynced, chmod-ed,
    then renamed over it. If the block raises, the temporary file is removed and `destination` is untouched."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".tmp")
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield Pending(temp, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, destination)
    finally:
        temp.unlink(missing_ok=True)
    _fsync_folder(destination.parent)


def write_atomic(path: Path, content: bytes | str, *, mode: int = 0o644) -> None:
    """Replace `path` with `content` (text is written as UTF-8, newlines as given)."""
    data = content.encode() if isinstance(content, str) else content
    with replacing(path, mode=mode) as pending:
        pending.file.write(data)


def write_stream(path: Path, source: IO[bytes], *, mode: int = 0o644) -> None:
    """Replace `path` with what is left to read from `source`."""
    with replacing(path, mode=mode) as pending:
        shutil.copyfileobj(source, pending.file, 1 << 20)


def write_if_changed(path: Path, content: bytes, *, mode: int = 0o644) -> bool:
    """`write_atomic` unless `path` already holds `content` (its mtime then stays, so cargo sees no change)."""
    try:
        if path.is_file() and path.stat().st_size == len(content) and path.read_bytes() == content:
            return False
    except OSError:
        pass  # replaced or removed while we looked: write it
    write_atomic(path, content, mode=mode)
    return True


def copy_atomic(
    source: Path, destination: Path, *, mode: int = 0o644, check: Callable[[Path], None] | None = None
) -> None:
    """Copy `source` over `destination` atomically; `check(temp)` may inspect the full copy and raise
    to keep `destination` as it was."""
    with replacing(destination, mode=mode) as pending, source.open("rb") as src:
        shutil.copyfileobj(src, pending.file, 1 << 20)
        if check is not None:
            pending.file.flush()
            check(pending.path)


def link_or_copy(source: Path, destination: Path, *, mode: int = 0o644) -> None:
    """A hard link to `source` at `destination` where the file system allows one, else a copy; atomic either way."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".tmp")
    os.close(fd)
    temp = Path(name)
    try:
        temp.unlink()  # os.link needs a free name; mkstemp only reserved a unique one
        os.link(source, temp)
        os.replace(temp, destination)
        return
    except OSError:
        temp.unlink(missing_ok=True)
    copy_atomic(source, destination, mode=mode)


def replace_folder(build: Callable[[Path], None], destination: Path) -> bool:
    """Fill a unique temporary folder beside `destination` with `build(folder)`, then rename it into place.

    Returns False if another process put `destination` there first (its content is then kept).
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".tmp"))
    try:
        build(temp)
        try:
            os.replace(temp, destination)
        except OSError:
            if destination.is_dir():
                return False
            raise
        return True
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX); Windows has no directory handles to sync."""
    if sys.platform == "win32":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename itself is done
    finally:
        os.close(fd)


# --- inter-process locks ---------------------------------------------------------------------


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)


def _set_holder(fd: int, text: str) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    if text:
        os.write(fd, text.encode("utf-8", "replace"))


def holder(path: Path) -> str:
    """Who holds the lock at `path`, as its holder described itself ("pid 123: ..."), or "" if unknown."""
    try:
        with path.open("rb") as handle:
            return handle.read(4096).decode("utf-8", "replace").strip()
    except OSError:
        return ""


@contextlib.contextmanager
def locked(
    path: Path,
    *,
    what: str,
    doing: str = "",
    report: Report | None = None,
    progress_every: float = PROGRESS_EVERY,
) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created if missing) between processes.

    `what` names what the lock guards (for the wait message), `doing` what this holder does with it
    (written into the lock file as "pid N: <doing>", so waiters can say whom they wait for). A waiter
    reports at once, then every `progress_every` seconds. The operating system drops the lock when
    its holder exits, however it exits, so a killed build never leaves a stale lock behind.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise BuildError(
            f"cannot open the lock file {path} that guards {what}: {error}; its folder must be writable by this build"
        ) from None
    try:
        _acquire(fd, path, what, report, progress_every)
        try:
            _set_holder(fd, f"pid {os.getpid()}: {doing}\n" if doing else f"pid {os.getpid()}\n")
            yield
        finally:
            try:
                _set_holder(fd, "")
            finally:
                _unlock(fd)
    finally:
        os.close(fd)


def _acquire(fd: int, path: Path, what: str, report: Report | None, progress_every: float) -> None:
    if _try_lock(fd):
        return
    started = time.monotonic()
    next_report = 0.0
    while True:
        waited = time.monotonic() - started
        if report is not None and waited >= next_report:
            who = holder(path) or "another build"
            if next_report == 0.0:
                report(f"pyaket: waiting for {what}, in use by {who} (lock {path})")
            else:
                report(f"pyaket: still waiting for {what} after {waited:.0f} s, in use by {who}")
            next_report += progress_every
        time.sleep(_POLL)
        if _try_lock(fd):
            if report is not None:
                report(f"pyaket: got {what} after {time.monotonic() - started:.1f} s")
            return
