"""A `data` rank's output rows on their way to rank 0 in row order, with torch: kept in an
unnamed temporary file as the rank computes them, then sent a block at a time once rank 0 has
taken the rows before them. How CSV on stdout over ranks, which rank 0 prints in order, comes
through with no rank holding more than a block (`step` rows: the caller's, the same both sides).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import torch

from mlpcli.engine.rows import Spans
from mlpcli.engine.world import World
from mlpcli.errors import UnavailableError


@contextlib.contextmanager
def spooled(rank: int, width: int, dtype: np.dtype) -> Iterator[Spool]:
    """Rank `rank`'s spool of rows `width` values wide, in a temporary file (in `TMPDIR`) gone
    at the end."""
    folder = tempfile.gettempdir()
    try:
        file = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 (closed below)
    except OSError as error:
        raise _no_room(rank, folder, error) from None
    with file:
        yield Spool(file, width, dtype, (rank, folder))


def _no_room(rank: int, folder: str, error: OSError) -> UnavailableError:
    """The spool's own file failed (a full disk): an error naming its folder."""
    return UnavailableError(
        f"rank {rank}: cannot keep its output rows in {folder} until rank 0 takes them "
        f"({error.strerror or error}); set TMPDIR to a folder with room for them"
    )


class Spool:
    """This rank's output rows, in order, in `file` (in `where`: its rank, its folder)."""

    def __init__(self, file: BinaryIO, width: int, dtype: np.dtype, where: tuple[int, str]) -> None:
        self.file, self.width, self.dtype, self.where = file, width, dtype, where
        self.rows = 0

    def add(self, rows: np.ndarray) -> None:
        """Keep `rows` (rows x `width`) after those before."""
        try:
            self.file.write(np.ascontiguousarray(rows, self.dtype).tobytes())
            self.file.flush()
        except OSError as error:
            raise _no_room(*self.where, error) from None
        self.rows += rows.shape[0]

    def send(self, world: World, step: int) -> None:
        """Every row kept, to rank 0, `step` rows at a time as `received` takes them."""
        self.file.seek(0)
        for block in Spans(range(self.rows), step):
            data = bytearray(self.file.read(len(block) * self.width * self.dtype.itemsize))
            rows = np.frombuffer(data, self.dtype).reshape(len(block), self.width)
            world.send(torch.from_numpy(rows), 0)
            world.flush()


def received(
    world: World, source: int, rows: int, step: int, width: int, dtype: np.dtype
) -> Iterator[np.ndarray]:
    """On rank 0: the `rows` that rank `source` spooled (`width` values of `dtype` a row, as
    `spooled` was given), `step` rows at a time."""
    for block in Spans(range(rows), step):
        out = torch.from_numpy(np.empty((len(block), width), dtype))
        yield world.recv(out, source).numpy()
