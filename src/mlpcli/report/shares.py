"""One output file that every rank of a `data` run writes, each its own rows as it computes
them (docs/distributed.md), so that no rank holds more than a chunk of the output.

`.npy`: each rank writes straight into its region of rank 0's temporary, which rank 0 sizes
(the shapes give every offset). `.csv`, `.jsonl` and `.parquet`: each rank writes a part file
beside the output (a whole Parquet file, a row group a chunk), which rank 0 appends to its own
once every rank has written (Parquet a row group at a time), removing each part as it goes; a
part is removed by whichever process ends first while it waits. Rank 0 puts the one file in
place as `files.atomic` does: all or nothing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from mlpcli import interrupts
from mlpcli.model.config import Config
from mlpcli.report import files, streams
from mlpcli.report.streams import Writer

if TYPE_CHECKING:
    import numpy as np

T = TypeVar("T")


class Ranks(Protocol):
    """What the writing asks of the process group."""

    rank: int

    def gather(self, value: T) -> list[T] | None:
        """Every rank's `value` on rank 0 (in rank order), None on the others."""

    def shared(self, value: T) -> T:
        """Rank 0's `value`, on every rank."""


def written_by_ranks(path: Path) -> bool:
    """Whether the ranks of a `data` run can write `path` themselves: a format that grows as
    it runs, into a regular file (a FIFO or a device gets rank 0's rows only)."""
    return path.suffix.lower() in streams.SUFFIXES and (path.is_file() or not path.exists())


@contextlib.contextmanager
def written(
    path: Path, config: Config, overrides: Sequence[str], rows: range, ranks: Ranks
) -> Iterator[Writer]:
    """This rank's writer of `rows` of `config`'s output into `path`, started; the file is in
    place once the block has ended on every rank without an error (a collective: every rank
    enters and leaves it together)."""
    if ranks.rank == 0:
        with files.atomic(path) as file, streams.writing(path, file, [overrides]) as writer:
            writer.start(config, overrides)
            if path.suffix.lower() == ".npy":  # its size, for the other ranks' regions
                os.ftruncate(file.fileno(), len(streams.npy_header(config)) + _bytes(config))
            ranks.shared(file.name)
            yield writer
            parts = [Path(name) for name in ranks.gather("") or () if name]
            with contextlib.ExitStack() as removed:  # whatever ends the process
                for part in parts:
                    removed.enter_context(interrupts.writing(part))
                for part in parts:
                    writer.append(part)
                    part.unlink()
        return
    temporary = ranks.shared("")
    if path.suffix.lower() == ".npy":
        with _region(path, Path(temporary), config, rows) as writer:
            yield writer
        ranks.gather("")
        return
    with files.part(path) as file, streams.writing(path, file, [overrides]) as writer:
        writer.start(config, overrides)
        writer.continues()
        yield writer
    with interrupts.writing(Path(file.name)):  # until rank 0 has its name
        ranks.gather(file.name)


def _bytes(config: Config, rows: int | None = None) -> int:
    """The bytes of `rows` rows of `config`'s output in a .npy (all of them by default)."""
    count = config.batch_size if rows is None else rows
    return count * config.layers[-1] * int(config.dtype.output_type[1:])


@contextlib.contextmanager
def _region(path: Path, temporary: Path, config: Config, rows: range) -> Iterator[Writer]:
    """A writer of `rows` at their place in the .npy of `path` that rank 0 is writing at
    `temporary`, flushed to disk when the block ends."""
    offset = len(streams.npy_header(config)) + _bytes(config, rows.start)
    try:
        descriptor = os.open(temporary, os.O_WRONLY)
    except OSError as error:
        raise files.cannot_write(path, error) from None
    try:
        yield _Region(path, descriptor, offset)
        try:
            os.fsync(descriptor)
        except OSError as error:
            raise files.cannot_write(path, error) from None
    finally:
        os.close(descriptor)


class _Region(Writer):
    """Rows written at their offset in a file, one after another (a failed write names the
    output it is part of: a full disk is exit 3)."""

    def __init__(self, path: Path, descriptor: int, offset: int) -> None:
        super().__init__(None, ())
        self.path, self.descriptor, self.offset = path, descriptor, offset

    def add(self, rows: np.ndarray) -> None:
        import numpy as np

        data = np.ascontiguousarray(rows).data.cast("B")
        while data:
            try:
                done = os.pwrite(self.descriptor, data, self.offset)
            except OSError as error:
                raise files.cannot_write(self.path, error) from None
            data, self.offset = data[done:], self.offset + done
