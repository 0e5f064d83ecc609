"""Files mlpcli writes: checked before any work, written atomically after it.

A write goes to a temporary file in the target's folder, is flushed to disk, then renamed over
the target, so a failure or Ctrl-C leaves either the old file or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from mlpcli.errors import UnavailableError, UsageError


def check_output(path: Path, suffixes: Iterable[str], inputs: Iterable[Path | None] = ()) -> str:
    """The format that `path`'s suffix names; UsageError when mlpcli cannot write it there."""
    suffix = path.suffix.lower()
    allowed = list(suffixes)
    if suffix not in allowed:
        raise UsageError(
            f"--output {path}: the suffix names the format; use one of {', '.join(allowed)}"
        )
    if path.is_dir():
        raise UsageError(f"--output {path}: is a directory")
    if not path.parent.is_dir():
        raise UsageError(f"--output {path}: no such directory {path.parent}")
    for source in inputs:
        if source is not None and source.exists() and source.resolve() == path.resolve():
            raise UsageError(f"--output {path}: is also an input; refusing to overwrite it")
    return suffix.removeprefix(".")


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data`, all or nothing."""
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, PermissionError):
            raise UsageError(f"{path}: permission denied") from None
        if isinstance(error, OSError):
            reason = os.strerror(error.errno) if error.errno else str(error)
            kind = UnavailableError if error.errno in (errno.ENOSPC, errno.EDQUOT) else UsageError
            raise kind(f"{path}: cannot write: {reason}") from None
        raise
