"""Files mlpcli writes: checked before any work, written atomically after it.

A write goes to a temporary file in the target's folder, is flushed to disk, then renamed over
the target, so a failure or Ctrl-C leaves either the old file or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from mlpcli import interrupts, session
from mlpcli.errors import UnavailableError, UsageError


def check_output(
    path: Path,
    suffixes: Iterable[str],
    inputs: Iterable[Path | None] = (),
    option: str = "--output ",
) -> str:
    """The format that `path`'s suffix names; UsageError, naming the `option` that gave the
    path, when mlpcli cannot write it there."""
    suffix = path.suffix.lower()
    allowed = list(suffixes)
    if path.is_dir():
        raise UsageError(f"{option}{path}: is a directory")
    if suffix not in allowed:
        raise UsageError(
            f"{option}{path}: the suffix names the format; use one of {', '.join(allowed)}"
        )
    if not (folder := _target(path).parent).is_dir():  # a link's target's folder
        raise UsageError(f"{option}{path}: no such directory {folder}")
    for source in inputs:  # the same file by any name: a link, a hard link, another path
        if source is not None and path.exists() and source.exists() and path.samefile(source):
            named = "" if source == path else f" ({source})"
            raise UsageError(f"{option}{path}: is also an input{named}; refusing to overwrite it")
    return suffix.removeprefix(".")


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data`, all or nothing (`atomic`)."""
    with atomic(path) as file:
        file.write(data)


@contextlib.contextmanager
def atomic(path: Path) -> Iterator[BinaryIO]:
    """A file to write `path` through: a temporary in its folder, flushed to disk and renamed
    over `path` when the block ends, removed if it raises; all or nothing however long the
    block runs (a run writes its output as it computes it).

    A new file gets the mode the umask gives (0644 under umask 022); a replaced file keeps its
    permissions (never its setuid, setgid or sticky bit). Temporaries that a killed mlpcli left
    for this path are removed first. A path that is no regular file (a FIFO, a device) is
    written into as it is, never replaced: its reader gets the bytes. A symbolic link is
    written through: its target is replaced, in the target's folder, and the link stays.
    """
    if path.exists() and not path.is_file():
        with _streamed(path) as file:
            yield file
        return
    target = _target(path)
    _remove_stale_temporaries(target)
    temporary = _temporary(target)
    created = False
    try:
        with interrupts.writing(temporary):
            # its permissions only: a result never becomes setuid, setgid or sticky
            mode = stat.S_IMODE(target.stat().st_mode) & 0o777 if target.exists() else None
            with temporary.open("xb") as file:  # named: other ranks write into it (`shares`)
                created = True
                yield file
                if mode is not None:  # once written: a read-only file's ranks write into it
                    os.fchmod(file.fileno(), mode)
                file.flush()
                os.fsync(file.fileno())
            with interrupts.held():  # a signal now waits: the finished file goes in place
                os.replace(temporary, target)
                session.current().put_in_place(path)
    except BaseException as error:
        current = session.current()
        if created and not temporary.exists() and path not in current.written:  # renamed, ended
            current.put_in_place(path)
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise cannot_write(path, error) from None
        raise
    interrupts.raise_waiting()  # a signal that waited for the rename ends the command now


@contextlib.contextmanager
def part(path: Path) -> Iterator[BinaryIO]:
    """A part of `path` that another process appends to it (a rank's share of the rows): a
    temporary beside `path` as `atomic`'s, flushed to disk when the block ends and left for
    that process to remove; removed here if the block raises, or the process must end."""
    temporary = _temporary(_target(path))
    try:
        with interrupts.writing(temporary), temporary.open("xb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise cannot_write(path, error) from None
        raise


def cannot_write(path: Path, error: OSError) -> UsageError | UnavailableError:
    """What a failed write of `path` says: a full disk is the machine's (exit 3)."""
    if isinstance(error, PermissionError):
        return UsageError(f"{path}: permission denied")
    reason = os.strerror(error.errno) if error.errno else str(error)
    kind = UnavailableError if error.errno in (errno.ENOSPC, errno.EDQUOT) else UsageError
    return kind(f"{path}: cannot write: {reason}")


def _target(path: Path) -> Path:
    """The file a write of `path` replaces: a symbolic link's target (the link goes on
    pointing at it), else `path` itself."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _temporary(path: Path) -> Path:
    """A new temporary's name beside `path`, with this process's id (`_remove_stale_temporaries`
    knows it by that)."""
    return path.parent / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"


@contextlib.contextmanager
def _streamed(path: Path) -> Iterator[BinaryIO]:
    """A FIFO or a device, opened and written into; an OSError is the path's error."""
    try:
        with path.open("wb") as file:
            yield file
        session.current().written.append(path)
    except OSError as error:
        raise cannot_write(path, error) from None


def _remove_stale_temporaries(path: Path) -> None:
    """Delete `.NAME.PID.*.tmp` beside `path` whose process is gone (killed with -9)."""
    for temporary in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = temporary.name.removeprefix(f".{path.name}.").split(".", 1)[0]
        if pid.isdecimal() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                temporary.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
