"""A run's features a chunk of rows at a time, with torch: read from their file as they are
needed, or cut from the drawn ones: what `run`, `compare`, `bench` (a file of several chunks)
and `export --verify` pass through the network."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

import torch

from mlpcli.engine.network import TORCH_DTYPES, located_at_inputs
from mlpcli.model import memory
from mlpcli.model.config import Config


def feature_chunks(
    config: Config, drawn: torch.Tensor, device: torch.device, rows: range | None
) -> Iterator[torch.Tensor]:
    """The features of `rows`, `memory.chunk_rows` rows at a time from `rows.start`, cast and
    on `device`: read from their file chunk by chunk (no row outside `rows`, but that the
    last share reads to the file's end, whose row count is checked there), or cut from the
    `drawn` features (no rows where they are read). `rows` None: every row of a file whose
    rows are counted as they are read (standard input, streamed)."""
    if config.inputs is None:
        assert rows is not None
        for span in chunk_spans(config, rows):
            yield drawn[span.start : span.stop]
        return
    from mlpcli.data import features as feature_files

    dtype = TORCH_DTYPES[config.dtype]
    reading = feature_files.reading_of(vars(config))
    first = 0 if rows is None else rows.start
    blocks = feature_files.chunks(config.inputs, reading, _step(config, rows), config.batch, first)
    left = None if rows is None else len(rows)
    last = rows is None or rows.stop == config.batch  # the last share reads on: the count is
    while left is None or left or last:  # checked at the file's end
        with located_at_inputs(config):  # a bad value in a later chunk
            block = next(blocks, None)
        if block is None:
            return
        taken = block if left is None else block[:left]
        if left is not None:
            left -= taken.shape[0]
        if taken.shape[0]:
            with located_at_inputs(config):  # a value past the dtype's range
                cast = feature_files.in_dtype(config.inputs, reading, taken, dtype, device, first)
            first += taken.shape[0]
            yield cast


def chunk_spans(config: Config, rows: range) -> Spans:
    """The rows of each chunk that `feature_chunks` gives of `rows`."""
    return Spans(rows, _step(config, rows))


class Spans(Sequence[range]):
    """`rows` cut into spans of `step` rows from the first, the last one shorter, each made
    when it is asked for (a list of them would grow with the rows: 117 bytes a span)."""

    def __init__(self, rows: range, step: int) -> None:
        self.firsts = range(rows.start, rows.stop, step)
        self.stop, self.step = rows.stop, step

    def __len__(self) -> int:
        return len(self.firsts)

    @overload
    def __getitem__(self, index: int) -> range: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[range]: ...
    def __getitem__(self, index: int | slice) -> range | Sequence[range]:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        first = self.firsts[index]
        return range(first, min(first + self.step, self.stop))


def _step(config: Config, rows: range | None) -> int:
    """Rows a chunk of `rows`: `memory.chunk_rows`, at most all of them."""
    chunk = memory.chunk_rows(config)
    return chunk if rows is None else min(chunk, max(1, len(rows)))
