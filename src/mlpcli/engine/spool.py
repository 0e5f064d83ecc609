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

from mlpcli.engine.rows import spans
from mlpcli.engine.world import World


@contextlib.contextmanager
def spooled(width: int, dtype: np.dtype) -> Iterator[Spool]:
    """A spool of rows `width` values wide, in a temporary file (in `TMPDIR`) gone at the end."""
    with tempfile.TemporaryFile() as file:
        yield Spool(file, width, dtype)


class Spool:
    """This rank's output rows, in order, in `file`."""

    def __init__(self, file: BinaryIO, width: int, dtype: np.dtype) -> None:
        self.file, self.width, self.dtype = file, width, dtype
        self.rows = 0

    def add(self, rows: np.ndarray) -> None:
        """Keep `rows` (rows x `width`) after those before."""
        self.file.write(np.ascontiguousarray(rows, self.dtype).tobytes())
        self.rows += rows.shape[0]

    def send(self, world: World, step: int) -> None:
        """Every row kept, to rank 0, `step` rows at a time as `received` takes them."""
        self.file.seek(0)
        for block in spans(range(self.rows), step):
            data = bytearray(self.file.read(len(block) * self.width * self.dtype.itemsize))
            rows = np.frombuffer(data, self.dtype).reshape(len(block), self.width)
            world.send(torch.from_numpy(rows), 0)
            world.flush()


def received(
    world: World, source: int, rows: int, step: int, like: np.ndarray
) -> Iterator[np.ndarray]:
    """On rank 0: the `rows` that rank `source` spooled, `step` rows at a time, each block
    as wide and of the dtype of `like`."""
    for block in spans(range(rows), step):
        out = torch.from_numpy(np.empty((len(block), like.shape[1]), like.dtype))
        yield world.recv(out, source).numpy()
