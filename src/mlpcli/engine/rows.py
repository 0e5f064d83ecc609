"""A run's features a chunk of rows at a time, with torch: read from their file as they are
needed, or cut from the drawn ones: what `run`, `compare`, `bench` (a file of several chunks)
and `export --verify` pass through the network."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from mlpcli.engine.network import TORCH_DTYPES, Network, located_at_inputs
from mlpcli.model import memory
from mlpcli.model.config import Config


def feature_chunks(
    config: Config, network: Network, device: torch.device, rows: range
) -> Iterator[torch.Tensor]:
    """The features of `rows`, `memory.chunk_rows` rows at a time from `rows.start`, cast and
    on `device`: read from their file chunk by chunk (no row outside `rows`, but that the
    last share reads to the file's end, whose row count is checked there), or cut from the
    drawn features."""
    if config.inputs is None:
        for span in chunk_spans(config, rows):
            yield network.features[span.start : span.stop]
        return
    from mlpcli.data import features as feature_files

    dtype = TORCH_DTYPES[config.dtype]
    reading = feature_files.reading_of(vars(config))
    blocks = feature_files.chunks(
        config.inputs, reading, _step(config, rows), config.batch_size, rows.start
    )
    left = len(rows)
    while left or rows.stop == config.batch_size:  # the last share reads on: the count is checked
        with located_at_inputs(config):  # a bad value in a later chunk
            block = next(blocks, None)
        if block is None:
            return
        taken = block[:left]
        left -= taken.shape[0]
        if taken.shape[0]:
            yield taken.to(device=device, dtype=dtype)


def chunk_spans(config: Config, rows: range) -> list[range]:
    """The rows of each chunk that `feature_chunks` gives of `rows`."""
    step = _step(config, rows)
    firsts = range(rows.start, rows.stop, step)
    return [range(first, min(first + step, rows.stop)) for first in firsts]


def _step(config: Config, rows: range) -> int:
    """Rows a chunk of `rows`: `memory.chunk_rows`, at most all of them."""
    return min(memory.chunk_rows(config), max(1, len(rows)))
