"""Tensor files someone hands us, read as data and never as code: safetensors, .npy and .npz
headers, without torch (PyTorch's own files are `checkpoints`).

Every problem is a ConfigError located at the file (exit 2; `validate` calls the config that
names it invalid); docs/contract.md section 5.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import stat
import struct
import sys
import warnings
import zipfile
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from mlpcli.data import jsontext
from mlpcli.errors import ConfigError, Location, MlpcliError, UnavailableError, first_line

STDIN_NAME = "<stdin>"  # standard input (`-`) in messages
MAX_MESSAGE = 300  # characters of a message about a file
MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit on its JSON header
# safetensors dtype names and their sizes; mlpcli reads the floating and integer ones
SAFETENSORS_DTYPES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
    "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1,
}  # fmt: skip
FLOATING = ("F64", "F32", "F16", "BF16")
MAX_NPZ_ARRAYS = 4096  # arrays of a .npz read; a network has at most 2 x 1024 W and B


@dataclass(frozen=True)
class Entry:
    """One tensor of a file, as its header describes it."""

    dtype: str  # safetensors' name: F32, BF16, I64 ...
    shape: tuple[int, ...]


T = TypeVar("T")


def by_file(read: Callable[..., T]) -> Callable[..., T]:
    """`read(path, *args)`, cached while the file stays the same (inode, size, modification
    time); stdin, `-`, is read once per stream."""
    cached = functools.cache(lambda path, _, *args: read(path, *args))

    @functools.wraps(read)
    def reader(path: str, *args: Hashable) -> T:
        if path == "-":  # keyed by the stream itself: an id may be a later stream's
            return cached(path, sys.stdin, *args)
        try:
            status = os.stat(path)
        except OSError:
            return read(path, *args)  # which names the problem
        return cached(path, (status.st_ino, status.st_size, status.st_mtime_ns), *args)

    return reader


def bad(path: str | Path, message: str) -> ConfigError:
    """The one-line error for a file that is not what mlpcli needs (a message that quotes the
    file, a 5,000-character name in it, is cut to MAX_MESSAGE characters)."""
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    return ConfigError(Location(str(path)), None, " ".join(message.split()))


@contextlib.contextmanager
def parsed_by_library(path: str | Path, what: str) -> Iterator[None]:
    """Around a library's parser (NumPy's header, torch.load, pyarrow): whatever it raises on a
    bad file, which no library documents in full, is `not a readable {what}` and one line (an
    allocation the file's lengths ask for and memory refuses, too); what it warns is not
    printed."""
    try:
        with warnings.catch_warnings():  # (NumPy's header parser warns about escapes, torch...)
            warnings.simplefilter("ignore")
            yield
    except (MlpcliError, KeyboardInterrupt):
        raise
    except MemoryError as error:  # sizes the file declares (the memory pre-flight passed)
        reason = first_line(error)[:120]
        raise bad(
            path, f"not a readable {what}: it declares more than memory holds ({reason})"
        ) from None
    except Exception as error:
        raise bad(path, f"not a readable {what} ({first_line(error)[:120]})") from None


@contextlib.contextmanager
def mapped(path: str | Path) -> Iterator[None]:
    """Around memory-mapping a file (safetensors, torch.load's mmap): a machine that cannot map
    it (its address space, `ulimit -v`) is exit 3 naming the file, not a bad file."""
    try:
        yield
    except (MlpcliError, KeyboardInterrupt):
        raise
    except Exception as error:
        if "mmap" not in str(error).lower():
            raise
        message = f"{path}: cannot be memory-mapped here ({first_line(error)})"
        raise UnavailableError(message) from None


def regular_size(path: str | Path, what: str) -> int:
    """The size of a regular file; an error for a missing file, a directory, a FIFO or device
    (which would block a read)."""
    try:
        status = Path(path).stat()
    except FileNotFoundError:
        raise bad(path, "no such file") from None
    except OSError as error:
        raise bad(path, f"cannot read: {error.strerror or error}") from None
    if stat.S_ISDIR(status.st_mode):
        raise bad(path, f"is a directory, not {what}")
    if not stat.S_ISREG(status.st_mode):
        raise bad(path, f"not a regular file; {what} must be one")
    return status.st_size


@by_file
def safetensors_header(path: str) -> tuple[dict[str, Entry], dict[str, str]]:
    """The tensors and metadata a .safetensors file holds, checked against the file's size:
    a truncated file, or a header that lies about sizes or offsets, is an error."""
    size = regular_size(path, "a safetensors file")
    try:
        with Path(path).open("rb") as file:  # one open: the length, then the header it gives
            start = file.read(8)
            length = struct.unpack("<Q", start)[0] if len(start) == 8 else -1
            if len(start) < 8:
                raise bad(path, f"truncated: {size} bytes, not a safetensors file")
            if length > min(MAX_HEADER_BYTES, size - 8):
                raise bad(path, f"not a safetensors file (a header of {length} bytes in {size})")
            raw = file.read(length)
    except OSError as error:
        raise bad(path, f"cannot read: {error.strerror or error}") from None
    try:
        header = jsontext.loads(raw)
    except (ValueError, RecursionError) as error:  # not UTF-8, not JSON, a 4,300-digit number
        reason = first_line(error)[:80]
        raise bad(
            path, f"not a safetensors file (its header is not JSON mlpcli reads: {reason})"
        ) from None
    if not isinstance(header, dict):
        raise bad(path, "not a safetensors file (its header is not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise bad(path, "corrupt safetensors header: __metadata__ is not text to text")
    entries: dict[str, Entry] = {}
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        entry, span = _safetensors_entry(path, name, info)
        entries[name] = entry
        spans.append((*span, name))
    end = 0
    for begin, stop, name in sorted(spans):
        if begin != end:
            raise bad(path, f"corrupt safetensors header: {name} starts at byte {begin}, not {end}")
        end = stop
    if 8 + length + end != size:
        message = f"{8 + length + end} bytes by its header, {size} on disk"
        raise bad(path, ("truncated: " if size < 8 + length + end else "corrupt: ") + message)
    return entries, metadata


def _safetensors_entry(path: str, name: str, info: object) -> tuple[Entry, tuple[int, int]]:
    """One header entry, with its byte span; an error when its size and span disagree."""
    if not isinstance(info, dict):
        raise bad(path, f"corrupt safetensors header: {name} is not described")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    valid = (
        dtype in SAFETENSORS_DTYPES
        and isinstance(shape, list)
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
        and isinstance(offsets, list)
        and len(offsets) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in offsets)
    )
    if not valid:
        raise bad(path, f"corrupt safetensors header: {name} has no valid dtype, shape and offsets")
    assert isinstance(shape, list)
    assert isinstance(offsets, list)
    assert isinstance(dtype, str)
    begin, stop = offsets
    expected = math.prod(shape) * SAFETENSORS_DTYPES[dtype]
    if stop - begin != expected:
        message = (
            f"corrupt safetensors header: {name} is {dtype} {shape}, {expected} bytes, "
            f"but spans {stop - begin}"
        )
        raise bad(path, message)
    return Entry(dtype, tuple(shape)), (begin, stop)


NPY_VERSIONS = ((1, 0), (2, 0), (3, 0))  # the .npy format versions NumPy writes and reads


@dataclass(frozen=True)
class NpyHeader:
    """What a .npy header says: the array's dtype, shape and order, and where its data starts."""

    dtype: Any  # numpy.dtype
    shape: tuple[int, ...]
    fortran: bool
    offset: int


@by_file
def npy_header(path: str) -> NpyHeader:
    """The header of a .npy file, checked against its size, without reading the data."""
    size = regular_size(path, "a .npy file")
    try:
        with Path(path).open("rb") as file:
            return npy_header_of(path, file, size)
    except OSError as error:
        raise bad(path, f"cannot read: {error.strerror or error}") from None


def npy_header_of(
    source: str, file: IO[bytes], size: int | None, role: str = "features"
) -> NpyHeader:
    """The header at the start of `file` (`size` bytes in all; None: a pipe's, not known): an
    array of real numbers in any order and byte order; object, complex, boolean, text and
    structured arrays are errors, and so is a file whose size the header does not account
    for."""
    import numpy as np

    with parsed_by_library(source, ".npy file"):
        version = np.lib.format.read_magic(file)
        if version not in NPY_VERSIONS:
            written = ", ".join(f"{major}.{minor}" for major, minor in NPY_VERSIONS)
            major, minor = version
            raise bad(source, f"a .npy of format version {major}.{minor}; NumPy writes {written}")
        read = {(1, 0): np.lib.format.read_array_header_1_0}.get(
            version, np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read(file)
        offset = file.tell()
    if dtype.hasobject or dtype.names is not None or dtype.kind not in "fiu":
        kind = "object" if dtype.hasobject else str(dtype)
        raise bad(source, f"holds an array of {kind}; {role} must be numbers (real ones)")
    expected = offset + math.prod(shape) * dtype.itemsize
    if size is not None and size != expected:
        what = "truncated" if size < expected else "corrupt"
        raise bad(source, f"{what}: {shape} of {dtype} needs {expected} bytes, the file has {size}")
    return NpyHeader(dtype, tuple(shape), bool(fortran), offset)


@by_file
def npz_headers(
    path: str, role: str = "features", source: str | None = None
) -> dict[str, NpyHeader]:
    """The arrays of a .npz (`np.savez`, `np.savez_compressed`) by name (as `np.load` names
    them), each header read from the archive and checked against its size, none of the data
    read; `role` (features, weights) names what they must be in messages, and `source` the file
    (`path` by default: standard input's copy is `<stdin>`)."""
    source = source or path
    regular_size(path, "a .npz file")
    headers: dict[str, NpyHeader] = {}
    with parsed_by_library(source, ".npz file"), zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        if len(members) > MAX_NPZ_ARRAYS:
            message = f"holds {len(members):,} arrays; mlpcli reads up to {MAX_NPZ_ARRAYS}"
            raise bad(source, message)
        for member in members:
            name = member.filename.removesuffix(".npy")
            with archive.open(member) as file:
                headers[name] = npy_header_of(f"{source} ({name})", file, member.file_size, role)
    if not headers:
        raise bad(source, "holds no arrays")
    return headers


@contextlib.contextmanager
def npz_member(path: str, name: str) -> Iterator[IO[bytes]]:
    """Array `name` of a .npz, open at its start (its header is read with `npz_headers`)."""
    with zipfile.ZipFile(path) as archive:
        member = f"{name}.npy" if f"{name}.npy" in archive.namelist() else name
        with archive.open(member) as file:
            yield file


def native(array: Any) -> Any:
    """`array` in memory, C order, native byte order and a type torch holds (unsigned wider
    than a byte as int64, or float64 for 64 bits; long double as float64): one copy at most."""
    import numpy as np

    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind == "f":
        target = f"f{size}" if size in (2, 4, 8) else "f8"
    elif kind == "u" and size > 1:
        target = "i8" if size < 8 else "f8"
    else:
        target = f"{kind}{size}"
    return np.require(array, dtype=np.dtype(target), requirements=["C", "W", "O", "E"])


def numpy_entry(dtype: Any, shape: tuple[int, ...]) -> Entry:
    """An array of a NumPy type as a header entry (safetensors' dtype names, as torch holds
    it); a type that is no real number keeps NumPy's name."""
    kind, size = dtype.kind, dtype.itemsize
    if kind not in "fiu":
        return Entry(str(dtype), shape)
    return Entry({"f": "F", "i": "I", "u": "U"}[kind] + str(8 * min(size, 8)), shape)


def natural_key(name: str) -> list[object]:
    """A sort key for tensor and layer names that orders `fc2` before `fc10`, `layers.2`
    before `layers.10` and `dense_9` before `dense_10`."""
    return [_number_key(part) if part.isdigit() else part for part in _DIGITS.split(name)]


def _number_key(digits: str) -> tuple[int, str]:
    """Digits ordered as their number, without making one (a name may hold 5,000 digits)."""
    significant = digits.lstrip("0")
    return len(significant), significant


_DIGITS = re.compile(r"([0-9]+)")
